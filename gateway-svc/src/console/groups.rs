//! Console pages for groups and codes: the list with each group's stats, the
//! create form (codes as the streamed CSV, or in the page for small groups:
//! the create call is the only moment they exist, DESIGN.md §3), a group's
//! page (stats, redemptions per minute, redeemers, codes, activate), and the
//! lookup of one code.

use axum::{
    Form,
    extract::{Path, Query, State},
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Redirect, Response},
};
use maud::{Markup, html};
use serde::Deserialize;
use shared_events::{
    ErrorCode, GroupId, Limit,
    endpoint::giftcode as gc,
    giftcode::{
        CodeDetails, CodeStatus, CreateGroupRequest, GetGroupRequest, Group, GroupKind,
        ListCodesRequest, ListGroupsRequest, ListRedemptionsRequest, LookupCodeRequest, Timeline,
        TimelineRequest, UpdateGroupRequest,
    },
};
use svc_kit::nats::wire::decode_value;

use crate::{
    ApiError, AppState,
    console::{
        layout::{self, Nav, money, problem, thousands, time},
        session::Signed,
    },
    extract::RequestId,
    groups::{collect_codes, csv_response, start_create},
};

/// Groups whose codes the create form may show in the page; bigger ones are
/// given as CSV only.
const SHOW_MAX: i64 = 100;

/// How many a group can be redeemed: its codes, or a shared code's cap.
pub fn capacity(g: &Group) -> i64 {
    match g.kind {
        GroupKind::Unique => g.stats.total_codes,
        GroupKind::Shared => g.max_redemptions.unwrap_or(0),
    }
}

fn kind(g: &Group) -> &'static str {
    match g.kind {
        GroupKind::Unique => "unique",
        GroupKind::Shared => "shared",
    }
}

#[derive(Deserialize, Default)]
pub struct CursorQuery {
    cursor: Option<String>,
}

/// `/console/`: the groups by name, with their stats.
pub async fn list(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Query(q): Query<CursorQuery>,
) -> Response {
    let req = ListGroupsRequest {
        limit: Limit::new(100),
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let page = match s.nats.request::<gc::GroupsList>(&req, Some(&rid)).await {
        Ok(p) => p,
        Err(e) => return layout::error_page(&signed, Nav::Groups, "Groups", &e.into()),
    };
    let body = html! {
        div class="title-row" {
            h1 { "Groups" }
            a class="button" href="/console/groups/new" { "New group" }
        }
        @if page.items.is_empty() {
            p { "No groups yet. " a href="/console/groups/new" { "Create the first one." } }
        } @else {
            div class="table-wrap" {
                table {
                    thead { tr {
                        th scope="col" { "Name" } th scope="col" { "Kind" } th scope="col" { "Amount" }
                        th scope="col" { "Redeemed" } th scope="col" { "Redeemed amount" }
                        th scope="col" { "Remaining" } th scope="col" { "Status" }
                    } }
                    tbody {
                        @for g in &page.items {
                            tr {
                                td { a href={ "/console/groups/" (g.id) } { (g.name) } }
                                td { (kind(g)) }
                                td class="num" { (money(g.amount.get(), &g.currency)) }
                                td { (layout::progress(&g.stats, capacity(g))) }
                                td class="num" { (money(g.stats.redeemed_amount, &g.currency)) }
                                td class="num" { (money(g.stats.remaining_amount, &g.currency)) }
                                td { span class={ "badge " (status_word(g)) } { (status_word(g)) } }
                            }
                        }
                    }
                }
            }
            @if let Some(next) = &page.next_cursor {
                p { a href={ "/console/?cursor=" (next) } { "More groups →" } }
            }
        }
    };
    layout::page(&signed, Nav::Groups, "Groups", body)
}

fn status_word(g: &Group) -> String {
    serde_json::to_value(g.stats.status)
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What the create form was given, kept to show it again beside an error.
#[derive(Deserialize, Default)]
pub struct CreateForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    name: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    amount: String,
    #[serde(default)]
    count: String,
    #[serde(default)]
    max_redemptions: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    prefix: String,
    #[serde(default)]
    per_phone_limit: String,
    #[serde(default)]
    starts_at: String,
    #[serde(default)]
    expires_at: String,
    #[serde(default)]
    output: String,
}

pub async fn new_form(signed: Signed) -> Response {
    let form = CreateForm {
        kind: "unique".into(),
        ..CreateForm::default()
    };
    layout::page(
        &signed,
        Nav::Groups,
        "New group",
        create_form(&signed, &form, None),
    )
}

fn create_form(signed: &Signed, f: &CreateForm, error: Option<&ApiError>) -> Markup {
    html! {
        h1 { "New group" }
        form method="post" action="/console/groups" class="card" {
            @if let Some(e) = error { (problem(e)) }
            input type="hidden" name="csrf" value=(signed.csrf);
            label for="name" { "Name" }
            input id="name" name="name" value=(f.name) required maxlength="100";
            fieldset {
                legend { "Kind" }
                label class="inline" {
                    input type="radio" name="kind" value="unique" checked[f.kind != "shared"];
                    " Unique: many single-use codes"
                }
                label class="inline" {
                    input type="radio" name="kind" value="shared" checked[f.kind == "shared"];
                    " Shared: one code for the first N phones"
                }
            }
            label for="amount" { "Amount per redemption (minor units: 500 is 5.00)" }
            input id="amount" name="amount" value=(f.amount) inputmode="numeric" required;
            div class="two" {
                (field("count", "Unique: number of codes (1–1,000,000)", &f.count, "text"))
                (field("per_phone_limit", "Unique: redemptions per phone (blank: no limit)", &f.per_phone_limit, "text"))
                (field("max_redemptions", "Shared: how many phones may redeem", &f.max_redemptions, "text"))
                (field("code", "Shared: the code (blank: generated)", &f.code, "text"))
                (field("prefix", "Prefix of generated codes (optional)", &f.prefix, "text"))
            }
            div class="two" {
                (field("starts_at", "Starts at (UTC, optional)", &f.starts_at, "datetime-local"))
                (field("expires_at", "Expires at (UTC, optional)", &f.expires_at, "datetime-local"))
            }
            p class="hint" {
                "The codes exist in full only in this answer: they are stored as digests. "
                "Up to " (SHOW_MAX) " codes can be shown in the page; any group can be downloaded as CSV."
            }
            div class="actions" {
                button type="submit" name="output" value="csv" { "Create and download CSV" }
                button type="submit" name="output" value="page" class="secondary" { "Create and show codes" }
            }
        }
    }
}

/// An optional input with its label.
fn field(name: &str, label: &str, value: &str, kind: &str) -> Markup {
    html! {
        div {
            label for=(name) { (label) }
            input id=(name) name=(name) type=(kind) value=(value) autocomplete="off";
        }
    }
}

/// The form as the API's JSON body: empty fields are left out, numbers are
/// numbers, and what does not parse is passed on for the same §9 refusal the
/// API gives.
fn request_of(f: &CreateForm) -> Result<CreateGroupRequest, ApiError> {
    use serde_json::Value;
    let mut body = serde_json::Map::new();
    let text = |v: &str| Value::String(v.trim().to_owned());
    let number = |v: &str| {
        v.trim()
            .replace([',', '_', ' '], "")
            .parse::<i64>()
            .map_or_else(|_| text(v), Value::from)
    };
    let time = |v: &str| {
        let v = v.trim();
        // datetime-local gives `2026-12-03T14:30` (or with seconds): UTC here.
        let full = if v.len() == 16 {
            format!("{v}:00Z")
        } else {
            format!("{v}Z")
        };
        Value::String(if v.ends_with('Z') { v.to_owned() } else { full })
    };
    body.insert("name".into(), text(&f.name));
    body.insert("kind".into(), text(&f.kind));
    if !f.amount.trim().is_empty() {
        body.insert("amount".into(), number(&f.amount));
    }
    for (field, value) in [
        ("count", &f.count),
        ("max_redemptions", &f.max_redemptions),
        ("per_phone_limit", &f.per_phone_limit),
    ] {
        if !value.trim().is_empty() {
            body.insert(field.into(), number(value));
        }
    }
    for (field, value) in [("code", &f.code), ("prefix", &f.prefix)] {
        if !value.trim().is_empty() {
            body.insert(field.into(), text(value));
        }
    }
    for (field, value) in [("starts_at", &f.starts_at), ("expires_at", &f.expires_at)] {
        if !value.trim().is_empty() {
            body.insert(field.into(), time(value));
        }
    }
    decode_value(Value::Object(body)).map_err(ApiError::from)
}

/// `POST /console/groups`: creates the group, then streams its codes as a CSV
/// download, or shows them in the page (small groups only).
pub async fn create(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Form(f): Form<CreateForm>,
) -> Response {
    if let Err(r) = signed.check(&f.csrf) {
        return r.into_response();
    }
    let refuse = |e: ApiError| {
        layout::page_with(
            layout::status(&e),
            &signed,
            Nav::Groups,
            "New group",
            create_form(&signed, &f, Some(&e)),
        )
    };
    let req = match request_of(&f) {
        Ok(r) => r,
        Err(e) => return refuse(e),
    };
    let in_page = f.output == "page";
    if in_page && req.kind == Some(GroupKind::Unique) && req.count.unwrap_or(0) > SHOW_MAX {
        return refuse(ApiError::field(
            "count",
            &format!(
                "only groups of up to {SHOW_MAX} codes are shown in the page; download this one as CSV"
            ),
        ));
    }
    let (group, frames) = match start_create(&s, &req, &rid).await {
        Ok(created) => created,
        Err(e) => return refuse(e),
    };
    tracing::info!(group_id = %group.id, "group created from the console");
    if !in_page {
        let mut resp = csv_response(&group, frames);
        if let Ok(v) =
            HeaderValue::from_str(&format!("attachment; filename=\"codes-{}.csv\"", group.id))
        {
            resp.headers_mut().insert(header::CONTENT_DISPOSITION, v);
        }
        return resp;
    }
    let codes = match collect_codes(&s, frames).await {
        Ok(c) => c,
        Err(e) => {
            return layout::error_page(&signed, Nav::Groups, "Group created, codes lost", &e);
        }
    };
    let csv: String = std::iter::once("code")
        .chain(codes.iter().map(String::as_str))
        .map(|c| format!("{c}\n"))
        .collect();
    let data_url = format!(
        "data:text/csv;charset=utf-8,{}",
        form_urlencoded::byte_serialize(csv.as_bytes()).collect::<String>()
    );
    let body = html! {
        h1 { "Created: " (group.name) }
        p role="status" class="notice" {
            "Copy or download these codes now: they are not stored and will not be shown again."
        }
        p {
            a class="button" href=(data_url) download={ "codes-" (group.id) ".csv" } { "Download CSV" }
            " "
            a href={ "/console/groups/" (group.id) } { "Go to the group" }
        }
        div class="table-wrap" {
            table class="codes" {
                thead { tr { th scope="col" { "#" } th scope="col" { "Code" } } }
                tbody {
                    @for (i, c) in codes.iter().enumerate() {
                        tr { td class="num" { (i + 1) } td { code { (c) } } }
                    }
                }
            }
        }
    };
    layout::page_with(
        StatusCode::CREATED,
        &signed,
        Nav::Groups,
        "Group created",
        body,
    )
}

#[derive(Deserialize, Default)]
pub struct GroupQuery {
    notice: Option<String>,
    minutes: Option<u32>,
    cursor: Option<String>,
    codes: Option<String>,
    codes_cursor: Option<String>,
}

/// A group: stats, the chart, redeemers, codes, activate/deactivate.
pub async fn page(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(id): Path<String>,
    Query(q): Query<GroupQuery>,
) -> Response {
    let Ok(id) = id.parse::<GroupId>() else {
        let e = ApiError::new(ErrorCode::GroupNotFound, "no group has this id");
        return layout::error_page(&signed, Nav::Groups, "Group", &e);
    };
    let group = match s
        .nats
        .request::<gc::GroupsGet>(&GetGroupRequest { id }, Some(&rid))
        .await
    {
        Ok(g) => g,
        Err(e) => return layout::error_page(&signed, Nav::Groups, "Group", &e.into()),
    };
    let minutes = q
        .minutes
        .unwrap_or(60)
        .clamp(1, TimelineRequest::MAX_MINUTES);
    let status = match q.codes.as_deref() {
        Some("redeemed") => Some(CodeStatus::Redeemed),
        Some("unredeemed") => Some(CodeStatus::Unredeemed),
        _ => None,
    };
    let filter = q
        .codes
        .clone()
        .filter(|_| status.is_some())
        .unwrap_or_default();
    let timeline_req = TimelineRequest {
        group_id: id,
        minutes: Some(minutes),
    };
    let redemptions_req = ListRedemptionsRequest {
        group_id: id,
        limit: Limit::new(20),
        cursor: q.cursor.clone().filter(|c| !c.is_empty()),
    };
    let codes_req = ListCodesRequest {
        group_id: id,
        status,
        limit: Limit::new(20),
        cursor: q.codes_cursor.clone().filter(|c| !c.is_empty()),
    };
    let (timeline, redemptions, codes) = tokio::join!(
        s.nats
            .request::<gc::GroupsTimeline>(&timeline_req, Some(&rid)),
        s.nats
            .request::<gc::RedemptionsList>(&redemptions_req, Some(&rid)),
        s.nats.request::<gc::CodesList>(&codes_req, Some(&rid)),
    );
    let mut redemptions = redemptions.map_err(ApiError::from);
    if let Ok(page) = redemptions.as_mut() {
        crate::redemptions::settle_all(&s, &mut page.items, &rid).await;
    }
    let codes = codes.map_err(ApiError::from);
    let timeline = timeline.map_err(ApiError::from);
    let g = &group;
    let base = format!("/console/groups/{}", g.id);
    let body = html! {
        div class="title-row" {
            h1 { (g.name) }
            form method="post" action={ (base) "/active" } {
                input type="hidden" name="csrf" value=(signed.csrf);
                @if g.active {
                    input type="hidden" name="active" value="false";
                    button type="submit" class="secondary" { "Deactivate" }
                } @else {
                    input type="hidden" name="active" value="true";
                    button type="submit" { "Activate" }
                }
            }
        }
        @if let Some(n) = &q.notice { p role="status" class="notice" { (n) } }
        section aria-labelledby="stats" {
            h2 id="stats" class="sr-only" { "Stats" }
            dl class="stats" {
                div { dt { "Status" } dd { span class={ "badge " (status_word(g)) } { (status_word(g)) } } }
                div { dt { "Kind" } dd { (kind(g)) } }
                div { dt { "Amount" } dd class="num" { (money(g.amount.get(), &g.currency)) } }
                div { dt { "Redeemed" } dd id="redeemed" { (layout::progress(&g.stats, capacity(g))) } }
                div { dt { "Redeemed amount" } dd class="num" id="redeemed-amount" { (money(g.stats.redeemed_amount, &g.currency)) } }
                div { dt { "Remaining" } dd class="num" { (money(g.stats.remaining_amount, &g.currency)) } }
                div { dt { "Reversed" } dd class="num" id="reversed" { (thousands(g.stats.reversed)) } }
                div { dt { "Codes" } dd class="num" { (thousands(g.stats.total_codes)) " (" (thousands(g.stats.unredeemed_codes)) " unredeemed)" } }
                @if let Some(p) = g.per_phone_limit { div { dt { "Per phone" } dd { (p) } } }
                @if let Some(p) = &g.prefix { div { dt { "Prefix" } dd { (p) } } }
                @if let Some(t) = &g.starts_at { div { dt { "Starts" } dd { (time(t)) } } }
                @if let Some(t) = &g.expires_at { div { dt { "Expires" } dd { (time(t)) } } }
                div { dt { "Created" } dd { (time(&g.created_at)) } }
            }
        }
        section aria-labelledby="chart" {
            div class="title-row" {
                h2 id="chart" { "Redemptions per minute" }
                nav aria-label="Chart window" class="tabs" {
                    @for (m, label) in [(60, "1 h"), (360, "6 h"), (1440, "24 h")] {
                        @if m == minutes { a href={ (base) "?minutes=" (m) } aria-current="true" { (label) } }
                        @else { a href={ (base) "?minutes=" (m) } { (label) } }
                    }
                }
            }
            @match &timeline {
                Ok(t) => (chart(t)),
                Err(e) => (problem(e)),
            }
        }
        section aria-labelledby="redeemers" {
            h2 id="redeemers" { "Redeemers" }
            @match &redemptions {
                Err(e) => (problem(e)),
                Ok(page) if page.items.is_empty() => p { "No redemptions yet." },
                Ok(page) => {
                    div class="table-wrap" {
                        table {
                            thead { tr {
                                th scope="col" { "When" } th scope="col" { "Phone" } th scope="col" { "Code" }
                                th scope="col" { "Amount" } th scope="col" { "Status" } th scope="col" { "Reversal" }
                            } }
                            tbody {
                                @for r in &page.items {
                                    tr {
                                        td { (time(&r.redeemed_at)) }
                                        td { a href={ "/console/wallets/" (r.phone.as_str()) } { (r.phone.as_str()) } }
                                        td { code { (r.code_hint) } }
                                        td class="num" { (money(r.amount.get(), &r.currency)) }
                                        td { span class={ "badge " (r.status.as_str()) } { (r.status.as_str()) } }
                                        td { (reversal_cell(&signed, g, r)) }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(next) = &page.next_cursor {
                        p { a href={ (base) "?cursor=" (next) } { "Older redeemers →" } }
                    }
                }
            }
        }
        section aria-labelledby="codes" {
            div class="title-row" {
                h2 id="codes" { "Codes" }
                nav aria-label="Code filter" class="tabs" {
                    @for (f, label) in [("", "All"), ("unredeemed", "Unredeemed"), ("redeemed", "Redeemed")] {
                        @if f == filter { a href={ (base) "?codes=" (f) } aria-current="true" { (label) } }
                        @else { a href={ (base) "?codes=" (f) } { (label) } }
                    }
                }
            }
            @match &codes {
                Err(e) => (problem(e)),
                Ok(page) if page.items.is_empty() => p { "No codes match." },
                Ok(page) => {
                    div class="table-wrap" {
                        table {
                            thead { tr {
                                th scope="col" { "Hint" } th scope="col" { "Status" }
                                th scope="col" { "Redemptions" } th scope="col" { "Redeemed by" } th scope="col" { "At" }
                                th scope="col" { "Enabled" }
                            } }
                            tbody {
                                @for c in &page.items {
                                    tr {
                                        td { code { (c.hint) } }
                                        td { (code_status(c.status)) }
                                        td class="num" { (c.redemptions) }
                                        td { @if let Some(p) = &c.redeemed_by { (p.as_str()) } }
                                        td { @if let Some(t) = &c.redeemed_at { (time(t)) } }
                                        td {
                                            form method="post" action={ (base) "/codes/" (c.id) "/active" } class="inline" {
                                                input type="hidden" name="csrf" value=(signed.csrf);
                                                input type="hidden" name="active" value=(!c.active);
                                                @if c.active {
                                                    span class="badge active" { "enabled" } " "
                                                    button type="submit" class="small secondary" aria-label={ "Disable code " (c.hint) } { "Disable" }
                                                } @else {
                                                    span class="badge inactive" { "disabled" } " "
                                                    button type="submit" class="small" aria-label={ "Enable code " (c.hint) } { "Enable" }
                                                }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                    @if let Some(next) = &page.next_cursor {
                        p { a href={ (base) "?codes=" (filter) "&codes_cursor=" (next) } { "More codes →" } }
                    }
                }
            }
        }
    };
    layout::page(&signed, Nav::Groups, &g.name, body)
}

/// A redemption's reversal: its state, or the form that asks for one.
fn reversal_cell(signed: &Signed, g: &Group, r: &shared_events::giftcode::Redemption) -> Markup {
    use shared_events::giftcode::{RedemptionStatus, ReversalStatus};
    let state = r.reversal.as_ref().map(|v| v.status);
    html! {
        @match state {
            Some(ReversalStatus::Done) => span class="badge reversed" {
                "reversed" @if r.reversal.as_ref().is_some_and(|v| v.release_code) { ", code released" }
            },
            Some(ReversalStatus::Pending) => span class="badge pending" { "reversal pending" },
            _ if r.status != RedemptionStatus::Credited => {},
            _ => {
                @if state == Some(ReversalStatus::Refused) { span class="badge bad" { "refused: insufficient funds" } " " }
                details {
                    summary { "Reverse…" }
                    form method="post" action={ "/console/redemptions/" (r.id) "/reverse" } class="reverse" {
                        input type="hidden" name="csrf" value=(signed.csrf);
                        input type="hidden" name="group_id" value=(g.id);
                        input type="hidden" name="idempotency_key" value=(uuid::Uuid::now_v7());
                        label for={ "reason-" (r.id) } { "Reason" }
                        input id={ "reason-" (r.id) } name="reason" required maxlength="500";
                        label class="inline" {
                            input type="checkbox" name="release_code" value="true";
                            " Release the code"
                        }
                        button type="submit" class="small" { "Reverse " (money(r.amount.get(), &r.currency)) }
                    }
                }
            }
        }
    }
}

fn code_status(s: CodeStatus) -> &'static str {
    match s {
        CodeStatus::Redeemed => "redeemed",
        CodeStatus::Unredeemed => "unredeemed",
    }
}

/// Redemptions per minute as SVG bars, drawn here (no script).
fn chart(t: &Timeline) -> Markup {
    let peak = t
        .minutes
        .iter()
        .map(|m| m.redemptions)
        .max()
        .unwrap_or(0)
        .max(1);
    let total: i64 = t.minutes.iter().map(|m| m.redemptions).sum();
    let n = t.minutes.len().max(1);
    let width = 600.0;
    let step = width / n as f64;
    let label = format!(
        "{} redemption{} in the last {} minutes; at most {} in one minute",
        thousands(total),
        if total == 1 { "" } else { "s" },
        n,
        thousands(peak)
    );
    html! {
        figure class="chart" {
            svg viewBox="0 0 600 120" preserveAspectRatio="none" role="img" aria-label=(label) {
                @for (i, m) in t.minutes.iter().enumerate() {
                    @let h = 110.0 * m.redemptions as f64 / peak as f64;
                    rect x=(format!("{:.2}", i as f64 * step)) y=(format!("{:.2}", 115.0 - h))
                        width=(format!("{:.2}", (step * 0.8).max(0.5))) height=(format!("{:.2}", h)) {
                        title { (m.minute.format("%H:%M")) ": " (m.redemptions) }
                    }
                }
                line x1="0" y1="115.5" x2="600" y2="115.5" {}
            }
            figcaption {
                (label) ". "
                (t.from.format("%H:%M")) "–" (t.to.format("%H:%M UTC"))
            }
        }
    }
}

#[derive(Deserialize)]
pub struct ActiveForm {
    #[serde(default)]
    csrf: String,
    active: bool,
}

pub async fn set_active(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(id): Path<String>,
    Form(f): Form<ActiveForm>,
) -> Response {
    if let Err(r) = signed.check(&f.csrf) {
        return r.into_response();
    }
    let Ok(id) = id.parse::<GroupId>() else {
        let e = ApiError::new(ErrorCode::GroupNotFound, "no group has this id");
        return layout::error_page(&signed, Nav::Groups, "Group", &e);
    };
    let req = UpdateGroupRequest {
        id,
        active: f.active,
    };
    match s.nats.request::<gc::GroupsUpdate>(&req, Some(&rid)).await {
        Ok(_) => Redirect::to(&format!("/console/groups/{id}")).into_response(),
        Err(e) => layout::error_page(&signed, Nav::Groups, "Group", &e.into()),
    }
}

pub async fn code_form(signed: Signed) -> Response {
    layout::page(
        &signed,
        Nav::Codes,
        "Codes",
        code_lookup_form(&signed, "", None),
    )
}

fn code_lookup_form(signed: &Signed, code: &str, error: Option<&ApiError>) -> Markup {
    html! {
        h1 { "Look up a code" }
        // POST, so that a code never sits in a URL, a history or a log.
        form method="post" action="/console/codes" class="card narrow" {
            @if let Some(e) = error { (problem(e)) }
            input type="hidden" name="csrf" value=(signed.csrf);
            label for="code" { "Code" }
            input id="code" name="code" value=(code) autocomplete="off" required;
            button type="submit" { "Look up" }
        }
    }
}

#[derive(Deserialize)]
pub struct CodeForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    code: String,
}

pub async fn code_lookup(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Form(f): Form<CodeForm>,
) -> Response {
    if let Err(r) = signed.check(&f.csrf) {
        return r.into_response();
    }
    let req = LookupCodeRequest {
        code: f.code.trim().to_owned(),
    };
    let details: CodeDetails = match s.nats.request::<gc::CodesLookup>(&req, Some(&rid)).await {
        Ok(d) => d,
        Err(e) => {
            let e = ApiError::from(e);
            return layout::page_with(
                layout::status(&e),
                &signed,
                Nav::Codes,
                "Codes",
                code_lookup_form(&signed, &f.code, Some(&e)),
            );
        }
    };
    let c = &details.code;
    let g = &details.group;
    let body = html! {
        (code_lookup_form(&signed, "", None))
        section class="card" aria-labelledby="found" {
            h2 id="found" { "Code " code { (c.hint) } }
            dl class="stats" {
                div { dt { "Group" } dd { a href={ "/console/groups/" (g.id) } { (g.name) } } }
                div { dt { "Status" } dd { (code_status(c.status)) } }
                div { dt { "Amount" } dd class="num" { (money(g.amount.get(), &g.currency)) } }
                div { dt { "Redemptions" } dd class="num" { (c.redemptions) } }
                @if let Some(p) = &c.redeemed_by { div { dt { "Redeemed by" } dd { a href={ "/console/wallets/" (p.as_str()) } { (p.as_str()) } } } }
                @if let Some(t) = &c.redeemed_at { div { dt { "Redeemed at" } dd { (time(t)) } } }
                div { dt { "Group status" } dd { (status_word(g)) } }
            }
        }
    };
    layout::page(&signed, Nav::Codes, "Codes", body)
}

#[derive(Deserialize)]
pub struct CodeActiveForm {
    #[serde(default)]
    csrf: String,
    active: bool,
}

/// `POST /console/groups/{id}/codes/{code_id}/active`: the code's switch.
pub async fn set_code_active(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path((group_id, code_id)): Path<(String, String)>,
    Form(f): Form<CodeActiveForm>,
) -> Response {
    if let Err(r) = signed.check(&f.csrf) {
        return r.into_response();
    }
    let (Ok(gid), Ok(cid)) = (group_id.parse::<GroupId>(), code_id.parse()) else {
        let e = ApiError::new(ErrorCode::CodeNotFound, "no code has this id");
        return layout::error_page(&signed, Nav::Groups, "Code", &e);
    };
    let req = shared_events::giftcode::UpdateCodeRequest {
        group_id: gid,
        code_id: cid,
        active: f.active,
    };
    match s.nats.request::<gc::CodesUpdate>(&req, Some(&rid)).await {
        Ok(c) => {
            let what = if c.active { "enabled" } else { "disabled" };
            notice_redirect(gid, &format!("Code {} {what}.", c.hint))
        }
        Err(e) => layout::error_page(&signed, Nav::Groups, "Code", &e.into()),
    }
}

#[derive(Deserialize)]
pub struct ReverseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    group_id: String,
    #[serde(default)]
    idempotency_key: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    release_code: Option<String>,
}

/// `POST /console/redemptions/{id}/reverse`: the saga of
/// `POST /api/v1/redemptions/{id}/reversal`, with the form's fresh key.
pub async fn reverse(
    signed: Signed,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(id): Path<String>,
    Form(f): Form<ReverseForm>,
) -> Response {
    if let Err(r) = signed.check(&f.csrf) {
        return r.into_response();
    }
    let refuse = |e: ApiError| layout::error_page(&signed, Nav::Groups, "Reversal refused", &e);
    let Ok(id) = id.parse() else {
        return refuse(ApiError::new(
            ErrorCode::NotFound,
            "no redemption has this id",
        ));
    };
    let Some(key) = shared_events::IdempotencyKey::parse(&f.idempotency_key) else {
        return refuse(ApiError::field(
            "Idempotency-Key",
            shared_events::IdempotencyKey::RULE,
        ));
    };
    let req = shared_events::giftcode::ReverseRequest {
        redemption_id: id,
        reason: f.reason.clone(),
        release_code: f.release_code.is_some(),
        idempotency_key: key,
    };
    match crate::reversals::run(&s, req, &rid).await {
        Ok((done, r)) => {
            let what = if done {
                "reversed"
            } else {
                "reversal asked; pending"
            };
            notice_redirect(
                r.group_id,
                &format!("Redemption of {} {what}.", r.phone.masked()),
            )
        }
        Err(e) => {
            let back = f.group_id.parse::<GroupId>().ok();
            let body = html! {
                h1 { "Reversal refused" }
                (problem(&e))
                @if let Some(g) = back { p { a href={ "/console/groups/" (g) } { "Back to the group" } } }
            };
            layout::page_with(
                layout::status(&e),
                &signed,
                Nav::Groups,
                "Reversal refused",
                body,
            )
        }
    }
}

fn notice_redirect(group: GroupId, notice: &str) -> Response {
    let url = format!(
        "/console/groups/{group}?notice={}",
        form_urlencoded::byte_serialize(notice.as_bytes()).collect::<String>()
    );
    Redirect::to(&url).into_response()
}
