//! The reconciliation page: the check of `GET /api/v1/reconciliation`, its
//! verdict in green or red, and its findings.

use axum::{extract::State, response::Response};
use maud::{Markup, html};

use crate::{
    AppState,
    console::{
        layout::{self, Nav, thousands, time},
        session::Signed,
    },
    extract::RequestId,
    reconciliation::{Finding, report},
};

pub async fn page(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
) -> Response {
    let r = match report(&s, &rid).await {
        Ok(r) => r,
        Err(e) => return layout::error_page(&signed, Nav::Reconciliation, "Reconciliation", &e),
    };
    let body = html! {
        h1 { "Reconciliation" }
        @if r.ok {
            p class="verdict ok" role="status" { "✓ The books reconcile." }
        } @else {
            p class="verdict bad" role="status" { "✗ The books do not reconcile." }
        }
        p {
            "Checked " (time(&r.checked_at)) ": " (thousands(r.redemptions as i64)) " redemptions recorded, "
            (thousands(r.credits as i64)) " credits made. While redeems are in flight a redemption may show as not yet credited; "
            a href="/console/reconciliation" { "run it again" } " once the platform is quiet."
        }
        section aria-labelledby="findings" {
            h2 id="findings" { "Findings" }
            div class="table-wrap" {
                table {
                    thead { tr { th scope="col" { "Check" } th scope="col" { "Count" } th scope="col" { "Redemptions" } } }
                    tbody {
                        (finding("Recorded, not (yet) credited", &r.uncredited))
                        (finding("Credited more than once", &r.credited_twice))
                        (finding("Credited with no redemption", &r.credited_without_redemption))
                        (finding("Credited with another amount or group", &r.mismatched))
                        (finding("Reversal done on one side only (yet)", &r.reversal_unsettled))
                    }
                }
            }
            @if let Some(age) = r.uncredited.oldest_age_seconds {
                p { "The oldest uncredited redemption has waited " (format!("{age:.1}")) " s." }
            }
        }
        section aria-labelledby="ledger" {
            h2 id="ledger" { "Ledger" }
            dl class="stats" {
                div { dt { "Verdict" } dd { (ok_word(r.ledger.ok)) } }
                div { dt { "Accounts" } dd class="num" { (thousands(r.ledger.accounts)) } }
                div { dt { "Transfers" } dd class="num" { (thousands(r.ledger.transfers)) } }
                div { dt { "Sum of balances" } dd class="num" { (thousands(r.ledger.sum_of_balances)) } }
            }
            @if !r.ledger.inconsistent_accounts.is_empty() {
                p class="error" { "Inconsistent accounts: " @for a in &r.ledger.inconsistent_accounts { code { (a) } " " } }
            }
        }
        section aria-labelledby="per-group" {
            h2 id="per-group" { "Per group" }
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "Group" } th scope="col" { "Redemptions" } th scope="col" { "Redeemed amount" }
                        th scope="col" { "Credits" } th scope="col" { "Credited amount" } th scope="col" { "Verdict" }
                    } }
                    tbody {
                        @for g in &r.groups {
                            tr {
                                td { a href={ "/console/groups/" (g.group_id) } { code { (g.group_id) } } }
                                td class="num" { (thousands(g.redemptions)) }
                                td class="num" { (thousands(g.redeemed_amount)) }
                                td class="num" { (thousands(g.credits)) }
                                td class="num" { (thousands(g.credited_amount)) }
                                td { (ok_word(g.ok)) }
                            }
                        }
                    }
                }
            }
        }
    };
    layout::page(&signed, Nav::Reconciliation, "Reconciliation", body)
}

fn ok_word(ok: bool) -> Markup {
    html! {
        @if ok { span class="badge ok" { "ok" } } @else { span class="badge bad" { "mismatch" } }
    }
}

fn finding(what: &str, f: &Finding) -> Markup {
    html! {
        tr class=(if f.count == 0 { "" } else { "bad" }) {
            td { (what) }
            td class="num" { (thousands(f.count as i64)) }
            td { @for id in &f.redemption_ids { code { (id) } " " } }
        }
    }
}
