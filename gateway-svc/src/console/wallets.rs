//! Console pages for wallets: search by phone, a wallet's balance and
//! transactions (each with `balance_after`), and the credit and debit forms.
//! Each render of a form carries a fresh `Idempotency-Key`, so a double
//! submit of one render pays once (DESIGN.md §8).

use axum::{
    Form,
    extract::{Path, Query, State},
    http::StatusCode,
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use shared_events::{
    Amount, ErrorCode, IdempotencyKey, Limit, Phone,
    endpoint::wallet as wl,
    wallet::{Direction, ListTransactionsRequest, MoveRequest, PhoneRequest},
};

use crate::{
    ApiError, AppState,
    console::{
        layout::{self, Nav, money, problem, thousands, time},
        session::Signed,
    },
    extract::RequestId,
};

#[derive(Deserialize, Default)]
pub struct SearchQuery {
    phone: Option<String>,
}

/// `/console/wallets?phone=`: a phone as typed goes to its wallet's page.
pub async fn search(
    signed: Signed,
    State(s): State<AppState>,
    Query(q): Query<SearchQuery>,
) -> Response {
    let typed = q.phone.unwrap_or_default();
    let error = if typed.trim().is_empty() {
        None
    } else {
        match s.phone(typed.trim()) {
            Ok(p) => {
                return Redirect::to(&format!("/console/wallets/{}", p.as_str())).into_response();
            }
            Err(e) => Some(e),
        }
    };
    let status = error.as_ref().map_or(StatusCode::OK, layout::status);
    layout::page_with(
        status,
        &signed,
        Nav::Wallets,
        "Wallets",
        search_form(&typed, error.as_ref()),
    )
}

fn search_form(typed: &str, error: Option<&ApiError>) -> Markup {
    html! {
        h1 { "Wallets" }
        form method="get" action="/console/wallets" class="card narrow" role="search" {
            @if let Some(e) = error { (problem(e)) }
            label for="phone" { "Phone (E.164, or national format)" }
            input id="phone" name="phone" type="tel" value=(typed) required autocomplete="off";
            button type="submit" { "Find wallet" }
        }
    }
}

#[derive(Deserialize, Default)]
pub struct WalletQuery {
    cursor: Option<String>,
    done: Option<String>,
}

pub async fn page(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(phone): Path<String>,
    Query(q): Query<WalletQuery>,
) -> Response {
    let phone = match s.phone(&phone) {
        Ok(p) => p,
        Err(e) => {
            return layout::page_with(
                layout::status(&e),
                &signed,
                Nav::Wallets,
                "Wallets",
                search_form(&phone, Some(&e)),
            );
        }
    };
    render(&signed, &s, &rid, &phone, q, None).await
}

/// The wallet page; `failed` is a move refused, shown beside its form.
async fn render(
    signed: &Signed,
    s: &AppState,
    rid: &str,
    phone: &Phone,
    q: WalletQuery,
    failed: Option<(Direction, MoveForm, ApiError)>,
) -> Response {
    let wallet = s
        .nats
        .request::<wl::WalletsGet>(
            &PhoneRequest {
                phone: phone.clone(),
            },
            Some(rid),
        )
        .await;
    let wallet = match wallet {
        Ok(w) => Some(w),
        // No wallet yet: a credit opens it, so the form is still offered.
        Err(e) if e.code() == ErrorCode::WalletNotFound => None,
        Err(e) => return layout::error_page(signed, Nav::Wallets, "Wallet", &e.into()),
    };
    let txs = match &wallet {
        None => None,
        Some(_) => Some(
            s.nats
                .request::<wl::TransactionsList>(
                    &ListTransactionsRequest {
                        phone: phone.clone(),
                        limit: Limit::new(25),
                        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
                    },
                    Some(rid),
                )
                .await
                .map_err(ApiError::from),
        ),
    };
    let status = failed
        .as_ref()
        .map_or(StatusCode::OK, |(_, _, e)| layout::status(e));
    let form_for = |d: Direction| -> Markup {
        match &failed {
            Some((fd, f, e)) if *fd == d => move_form(signed, phone, d, Some(f), Some(e)),
            _ => move_form(signed, phone, d, None, None),
        }
    };
    let body = html! {
        h1 { "Wallet " (phone.as_str()) }
        @if let Some(done) = &q.done {
            p role="status" class="notice" { (done) " recorded." }
        }
        @match &wallet {
            Some(w) => {
                dl class="stats" {
                    div { dt { "Balance" } dd class="num big" id="balance" { (money(w.balance, &w.currency)) } }
                    div { dt { "Opened" } dd { (time(&w.created_at)) } }
                    div { dt { "Updated" } dd { (time(&w.updated_at)) } }
                }
            }
            None => p { "This phone has no wallet yet. A credit opens it." },
        }
        div class="two" {
            (form_for(Direction::Credit))
            @if wallet.is_some() { (form_for(Direction::Debit)) }
        }
        @if let Some(txs) = &txs {
            section aria-labelledby="txs" {
                h2 id="txs" { "Transactions" }
                @match txs {
                    Err(e) => (problem(e)),
                    Ok(page) if page.items.is_empty() => p { "No transactions yet." },
                    Ok(page) => {
                        div class="table-wrap" {
                            table {
                                thead { tr {
                                    th scope="col" { "When" } th scope="col" { "Kind" } th scope="col" { "Amount" }
                                    th scope="col" { "Balance after" } th scope="col" { "Reference" } th scope="col" { "Description" }
                                } }
                                tbody {
                                    @for t in &page.items {
                                        tr {
                                            td { (time(&t.created_at)) }
                                            td { (t.kind.as_str()) }
                                            td class={ "num " @if t.direction == Direction::Debit { "debit" } } {
                                                @if t.direction == Direction::Debit { "−" } @else { "+" }
                                                (money(t.amount.get(), &t.currency))
                                            }
                                            td class="num" { (thousands(t.balance_after)) }
                                            td { code { (t.reference) } }
                                            td { @if let Some(d) = &t.description { (d) } }
                                        }
                                    }
                                }
                            }
                        }
                        @if let Some(next) = &page.next_cursor {
                            p { a href={ "/console/wallets/" (phone.as_str()) "?cursor=" (next) } { "Older transactions →" } }
                        }
                    }
                }
            }
        }
    };
    layout::page_with(status, signed, Nav::Wallets, phone.as_str(), body)
}

fn word(d: Direction) -> &'static str {
    match d {
        Direction::Credit => "credit",
        Direction::Debit => "debit",
    }
}

fn move_form(
    signed: &Signed,
    phone: &Phone,
    d: Direction,
    previous: Option<&MoveForm>,
    error: Option<&ApiError>,
) -> Markup {
    let w = word(d);
    // A refused submit keeps its key: sending the same form again is the
    // same request. A fresh render gets a fresh one.
    let key = previous
        .map(|f| f.idempotency_key.clone())
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    html! {
        form method="post" action={ "/console/wallets/" (phone.as_str()) "/" (w) } class="card" {
            h2 { @if d == Direction::Credit { "Credit" } @else { "Debit" } }
            @if let Some(e) = error { (problem(e)) }
            input type="hidden" name="csrf" value=(signed.csrf);
            input type="hidden" name="idempotency_key" value=(key);
            label for={ (w) "-amount" } { "Amount (minor units)" }
            input id={ (w) "-amount" } name="amount" inputmode="numeric" required value=[previous.map(|f| &f.amount)];
            label for={ (w) "-description" } { "Description (optional)" }
            input id={ (w) "-description" } name="description" maxlength="500" value=[previous.map(|f| &f.description)];
            button type="submit" { @if d == Direction::Credit { "Credit" } @else { "Debit" } }
        }
    }
}

#[derive(Deserialize, Clone)]
pub struct MoveForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    description: String,
}

/// `POST /console/wallets/{phone}/{credit|debit}`.
pub async fn move_money(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path((phone, direction)): Path<(String, String)>,
    Form(f): Form<MoveForm>,
) -> Response {
    if let Err(r) = signed.check(&f.csrf) {
        return r.into_response();
    }
    let direction = match direction.as_str() {
        "credit" => Direction::Credit,
        "debit" => Direction::Debit,
        _ => {
            let e = ApiError::new(ErrorCode::NotFound, "no such route");
            return layout::error_page(&signed, Nav::Wallets, "Wallet", &e);
        }
    };
    let phone = match s.phone(&phone) {
        Ok(p) => p,
        Err(e) => return layout::error_page(&signed, Nav::Wallets, "Wallet", &e),
    };
    let req = (|| {
        let amount = f
            .amount
            .trim()
            .replace([',', '_', ' '], "")
            .parse::<i64>()
            .ok()
            .and_then(Amount::new)
            .ok_or_else(|| ApiError::field("amount", "a whole number of minor units, above 0"))?;
        let idempotency_key = IdempotencyKey::parse(&f.idempotency_key)
            .ok_or_else(|| ApiError::field("Idempotency-Key", IdempotencyKey::RULE))?;
        let description = Some(f.description.trim().to_owned()).filter(|d| !d.is_empty());
        Ok::<_, ApiError>(MoveRequest {
            phone: phone.clone(),
            amount,
            description,
            idempotency_key,
        })
    })();
    let result = match req {
        Err(e) => Err(e),
        Ok(req) => match direction {
            Direction::Credit => s.nats.request::<wl::CreditsCreate>(&req, Some(&rid)).await,
            Direction::Debit => s.nats.request::<wl::DebitsCreate>(&req, Some(&rid)).await,
        }
        .map_err(ApiError::from),
    };
    match result {
        // Post/redirect/get: a reload does not send the form again.
        Ok(reply) => {
            let done = if reply.replayed {
                format!("{} (already, same form)", word(direction))
            } else {
                word(direction).to_owned()
            };
            let url = format!(
                "/console/wallets/{}?done={}",
                phone.as_str(),
                form_urlencoded::byte_serialize(done.as_bytes()).collect::<String>()
            );
            Redirect::to(&url).into_response()
        }
        Err(e) => {
            render(
                &signed,
                &s,
                &rid,
                &phone,
                WalletQuery::default(),
                Some((direction, f, e)),
            )
            .await
        }
    }
}
