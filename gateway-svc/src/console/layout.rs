//! The console's page shell and the small pieces every page uses: the
//! navigation (with the sign-out form), the error box that shows a problem's
//! `detail` next to a form, and how money, times and groups are written.

use axum::{
    http::StatusCode,
    response::{Html, IntoResponse, Response},
};
use chrono::{DateTime, Utc};
use maud::{DOCTYPE, Markup, html};
use shared_events::{Currency, giftcode::GroupStats};

use crate::{ApiError, console::session::Signed};

/// The sections of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Groups,
    Live,
    Wallets,
    Codes,
    Reconciliation,
}

const NAV: [(Nav, &str, &str); 5] = [
    (Nav::Groups, "/console/", "Groups"),
    (Nav::Live, "/console/live", "Live"),
    (Nav::Wallets, "/console/wallets", "Wallets"),
    (Nav::Codes, "/console/codes", "Codes"),
    (
        Nav::Reconciliation,
        "/console/reconciliation",
        "Reconciliation",
    ),
];

fn head(title: &str) -> Markup {
    html! {
        (DOCTYPE)
        head {
            meta charset="utf-8";
            meta name="viewport" content="width=device-width, initial-scale=1";
            title { (title) " · Wallet console" }
            link rel="stylesheet" href="/console/assets/console.css";
            script src="/console/assets/console.js" defer {}
        }
    }
}

/// A signed-in page.
pub fn page(signed: &Signed, nav: Nav, title: &str, body: Markup) -> Response {
    page_with(StatusCode::OK, signed, nav, title, body)
}

pub fn page_with(
    status: StatusCode,
    signed: &Signed,
    nav: Nav,
    title: &str,
    body: Markup,
) -> Response {
    let markup = html! {
        html lang="en" {
            (head(title))
            body {
                a href="#main" class="skip" { "Skip to content" }
                header {
                    nav aria-label="Console" {
                        span class="brand" { "Wallet console" }
                        ul {
                            @for (n, href, label) in NAV {
                                li {
                                    @if n == nav { a href=(href) aria-current="page" { (label) } }
                                    @else { a href=(href) { (label) } }
                                }
                            }
                        }
                        form method="post" action="/console/sign-out" class="sign-out" {
                            input type="hidden" name="csrf" value=(signed.csrf);
                            button type="submit" class="link" { "Sign out" }
                        }
                    }
                }
                main id="main" tabindex="-1" {
                    (body)
                }
            }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// A page outside a session (sign-in, refusals).
pub fn bare(status: StatusCode, title: &str, body: Markup) -> Response {
    let markup = html! {
        html lang="en" {
            (head(title))
            body { main id="main" { (body) } }
        }
    };
    (status, Html(markup.into_string())).into_response()
}

/// A problem's `detail` and field errors, where the form is.
pub fn problem(e: &ApiError) -> Markup {
    html! {
        div role="alert" class="error" {
            strong { (e.detail) }
            " " code { (e.code.as_str()) }
            @if !e.errors.is_empty() {
                ul { @for f in &e.errors { li { code { (f.field) } ": " (f.message) } } }
            }
        }
    }
}

/// The HTTP status a page showing `e` answers with.
pub fn status(e: &ApiError) -> StatusCode {
    StatusCode::from_u16(e.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
}

/// An error page for a signed-in admin.
pub fn error_page(signed: &Signed, nav: Nav, title: &str, e: &ApiError) -> Response {
    page_with(
        status(e),
        signed,
        nav,
        title,
        html! { h1 { (title) } (problem(e)) },
    )
}

/// Minor units with thousands separators and the currency: `12,500 USD`.
pub fn money(minor: i64, currency: &Currency) -> String {
    format!("{} {currency}", thousands(minor))
}

pub fn thousands(n: i64) -> String {
    let digits = n.unsigned_abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

pub fn time(t: &DateTime<Utc>) -> Markup {
    html! { time datetime=(t.to_rfc3339()) { (t.format("%Y-%m-%d %H:%M:%S UTC")) } }
}

/// Redeemed against total, as a bar and in words.
pub fn progress(stats: &GroupStats, capacity: i64) -> Markup {
    let used = stats.redemptions.min(capacity.max(0));
    html! {
        progress value=(used) max=(capacity.max(1)) aria-label="Redeemed" {}
        " " span class="num" { (thousands(stats.redemptions)) " / " (thousands(capacity)) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(-1_234_567), "-1,234,567");
    }
}
