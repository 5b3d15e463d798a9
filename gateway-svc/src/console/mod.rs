//! The admin console at `/console/`: HTML rendered here from compile-checked
//! templates (maud, which escapes every value it interpolates), a stylesheet
//! and one small script served from the binary, no CDN. It calls the same
//! typed NATS endpoints as the JSON API, so it can do nothing the API cannot.
//! Its pages are left out of the OpenAPI document.
//!
//! Every response carries a Content-Security-Policy that allows only this
//! origin's script and style, and `Cache-Control: no-store`: console pages
//! hold balances, phones and, once, codes.

mod groups;
mod layout;
pub mod live;
mod reconcile;
pub mod session;
mod wallets;

use axum::{
    Router,
    extract::Request,
    http::{HeaderValue, header},
    middleware::{self, Next},
    response::{IntoResponse, Redirect, Response},
    routing::{get, post},
};

use crate::AppState;

pub use live::Hub;
pub use session::Sessions;

const CSS: &str = include_str!("../../assets/console.css");
const JS: &str = include_str!("../../assets/console.js");

const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
                   connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// The console's routes, all under `/console`.
pub fn router() -> Router<AppState> {
    Router::new()
        .route("/console", get(|| async { Redirect::to("/console/") }))
        .route("/console/", get(groups::list))
        .route(
            "/console/sign-in",
            get(session::sign_in_page).post(session::sign_in),
        )
        .route("/console/sign-out", post(session::sign_out))
        .route("/console/groups/new", get(groups::new_form))
        .route("/console/groups", post(groups::create))
        .route("/console/groups/{id}", get(groups::page))
        .route("/console/groups/{id}/active", post(groups::set_active))
        .route(
            "/console/groups/{id}/codes/{code_id}/active",
            post(groups::set_code_active),
        )
        .route("/console/redemptions/{id}/reverse", post(groups::reverse))
        .route(
            "/console/codes",
            get(groups::code_form).post(groups::code_lookup),
        )
        .route("/console/wallets", get(wallets::search))
        .route("/console/wallets/{phone}", get(wallets::page))
        .route(
            "/console/wallets/{phone}/{direction}",
            post(wallets::move_money),
        )
        .route("/console/live", get(live::page))
        .route("/console/live/events", get(live::events))
        .route("/console/reconciliation", get(reconcile::page))
        .route("/console/assets/console.css", get(css))
        .route("/console/assets/console.js", get(js))
        .layer(middleware::from_fn(headers))
}

/// The security headers of every console response.
async fn headers(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    resp
}

async fn css() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        CSS,
    )
}

async fn js() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "max-age=300"),
        ],
        JS,
    )
}
