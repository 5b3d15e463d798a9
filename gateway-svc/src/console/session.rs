//! Console sign-in, sessions and CSRF.
//!
//! A session is a cookie `console_session=<id>.<expiry>.<mac>`: HMAC-SHA256
//! over id and expiry, under a key derived from the admin token. Any gateway
//! replica holding the same token (DESIGN.md §11) accepts it, and rotating the
//! token signs everyone out. The cookie is HttpOnly, SameSite=Strict, scoped
//! to `/console`, and Secure when the request came over HTTPS (directly or as
//! `X-Forwarded-Proto: https` from the TLS proxy in front).
//!
//! Signing out must end the session on every replica, so the signed-out ids
//! are kept in a JetStream key-value bucket (`CONSOLE_SIGNED_OUT`) whose
//! entries age out with the sessions they end. If that bucket cannot be read
//! the console refuses to serve (fail closed) rather than honour a session
//! that may have been ended.
//!
//! CSRF: every state-changing form carries a token derived from the session
//! id (the sign-in form: from a short-lived pre-session cookie), checked in
//! constant time; SameSite=Strict keeps the cookie off cross-site requests as
//! a second line.

use std::{net::SocketAddr, time::Duration};

use async_nats::jetstream::{self, kv};
use axum::{
    Form,
    extract::{ConnectInfo, FromRequestParts, State},
    http::{HeaderMap, HeaderValue, StatusCode, header, request::Parts},
    response::{IntoResponse, Redirect, Response},
};
use hmac::{Hmac, KeyInit, Mac};
use maud::html;
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::Mutex;

use crate::{AppState, console::layout, extract::constant_time_eq, limits};

const COOKIE: &str = "console_session";
const PRE_COOKIE: &str = "console_pre";
const BUCKET: &str = shared_events::subjects::CONSOLE_SIGNED_OUT_BUCKET;

pub struct Sessions {
    key: [u8; 32],
    ttl: Duration,
    attempts: limits::Window,
    signed_out: SignedOut,
}

impl Sessions {
    /// `attempts` sign-ins per client IP every 5 minutes.
    pub fn new(admin_token: &str, ttl: Duration, attempts: u32, nats: async_nats::Client) -> Self {
        let mut h = Sha256::new();
        h.update(b"wallet-platform console session v1\0");
        h.update(admin_token.as_bytes());
        Self {
            key: h.finalize().into(),
            ttl,
            attempts: limits::Window::new(attempts, Duration::from_secs(300)),
            signed_out: SignedOut {
                js: jetstream::new(nats),
                ttl,
                store: Mutex::new(None),
            },
        }
    }

    fn mac(&self, what: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(what.as_bytes());
        hex(&mac.finalize().into_bytes())
    }

    fn csrf_for(&self, sid: &str) -> String {
        self.mac(&format!("csrf.{sid}"))[..32].to_owned()
    }

    /// A new session's cookie value.
    fn issue(&self) -> String {
        let sid = random_hex(16);
        let exp = chrono::Utc::now().timestamp() + self.ttl.as_secs() as i64;
        let body = format!("{sid}.{exp}");
        format!("{body}.{}", self.mac(&body))
    }

    /// The session id of a cookie value whose signature holds and which has
    /// not expired.
    fn verify(&self, value: &str) -> Option<String> {
        let (body, mac) = value.rsplit_once('.')?;
        let (sid, exp) = body.split_once('.')?;
        let exp: i64 = exp.parse().ok()?;
        (constant_time_eq(mac.as_bytes(), self.mac(body).as_bytes())
            && exp > chrono::Utc::now().timestamp())
        .then(|| sid.to_owned())
    }
}

/// The signed-out session ids, shared by the replicas.
struct SignedOut {
    js: jetstream::Context,
    ttl: Duration,
    store: Mutex<Option<kv::Store>>,
}

impl SignedOut {
    /// The bucket, created when missing (first use, or a broker that came
    /// back without its store).
    async fn store(&self, fresh: bool) -> anyhow::Result<kv::Store> {
        let mut cached = self.store.lock().await;
        if let Some(s) = cached.as_ref().filter(|_| !fresh) {
            return Ok(s.clone());
        }
        let store = match self.js.get_key_value(BUCKET).await {
            Ok(s) => s,
            Err(_) => {
                self.js
                    .create_key_value(kv::Config {
                        bucket: BUCKET.into(),
                        description: "Console sessions signed out before they expired".into(),
                        history: 1,
                        max_age: self.ttl,
                        storage: jetstream::stream::StorageType::File,
                        ..Default::default()
                    })
                    .await?
            }
        };
        *cached = Some(store.clone());
        Ok(store)
    }

    /// The entry of a session: a digest of its id, so that the id itself is
    /// in no subject, stream or debug log.
    fn key(sid: &str) -> String {
        hex(&Sha256::digest(sid.as_bytes())[..16])
    }

    async fn contains(&self, sid: &str) -> anyhow::Result<bool> {
        let key = Self::key(sid);
        match self.store(false).await?.get(&key).await {
            Ok(v) => Ok(v.is_some()),
            Err(_) => Ok(self.store(true).await?.get(&key).await?.is_some()),
        }
    }

    async fn insert(&self, sid: &str) -> anyhow::Result<()> {
        let key = Self::key(sid);
        if self
            .store(false)
            .await?
            .put(&key, "1".into())
            .await
            .is_err()
        {
            self.store(true).await?.put(&key, "1".into()).await?;
        }
        Ok(())
    }
}

/// A signed-in admin. Pages take it first; without a valid session the
/// browser is sent to the sign-in page.
pub struct Signed {
    sid: String,
    pub csrf: String,
}

impl Signed {
    /// Refuses a state-changing form whose CSRF token is not this session's.
    pub fn check(&self, given: &str) -> Result<(), Forged> {
        if constant_time_eq(given.as_bytes(), self.csrf.as_bytes()) {
            Ok(())
        } else {
            Err(Forged)
        }
    }
}

/// A form without this session's CSRF token: 403.
pub struct Forged;

impl IntoResponse for Forged {
    fn into_response(self) -> Response {
        forbidden()
    }
}

fn forbidden() -> Response {
    layout::bare(
        StatusCode::FORBIDDEN,
        "Refused",
        html! {
            p role="alert" class="error" { "This form has expired or did not come from the console. Reload the page and try again." }
        },
    )
}

fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|c| c.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

impl FromRequestParts<AppState> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        let sessions = &s.sessions;
        let Some(sid) = cookie(&parts.headers, COOKIE).and_then(|v| sessions.verify(&v)) else {
            return Err(Redirect::to("/console/sign-in").into_response());
        };
        match sessions.signed_out.contains(&sid).await {
            Ok(false) => {}
            Ok(true) => return Err(Redirect::to("/console/sign-in").into_response()),
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the signed-out sessions");
                return Err(layout::bare(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "Unavailable",
                    html! { p role="alert" class="error" { "The console cannot check sessions right now (NATS JetStream is unavailable). Try again shortly." } },
                ));
            }
        }
        Ok(Signed {
            csrf: sessions.csrf_for(&sid),
            sid,
        })
    }
}

fn secure(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|p| p.eq_ignore_ascii_case("https"))
}

fn set_cookie(
    name: &str,
    value: &str,
    max_age: u64,
    secure: bool,
) -> (header::HeaderName, HeaderValue) {
    let secure = if secure { "; Secure" } else { "" };
    let v = format!(
        "{name}={value}; Path=/console; HttpOnly; SameSite=Strict; Max-Age={max_age}{secure}"
    );
    (
        header::SET_COOKIE,
        HeaderValue::from_str(&v).unwrap_or_else(|_| HeaderValue::from_static("")),
    )
}

pub async fn sign_in_page(State(s): State<AppState>, headers: HeaderMap) -> Response {
    let nonce = random_hex(16);
    let csrf = s.sessions.mac(&format!("pre.{nonce}"));
    let mut resp = sign_in_form(StatusCode::OK, &csrf, None);
    let (k, v) = set_cookie(PRE_COOKIE, &nonce, 3600, secure(&headers));
    resp.headers_mut().append(k, v);
    resp
}

fn sign_in_form(status: StatusCode, csrf: &str, error: Option<&str>) -> Response {
    layout::bare(
        status,
        "Sign in",
        html! {
            form method="post" action="/console/sign-in" class="card narrow" {
                h1 { "Admin console" }
                @if let Some(e) = error { p role="alert" class="error" { (e) } }
                input type="hidden" name="csrf" value=(csrf);
                label for="token" { "Admin token" }
                input id="token" name="token" type="password" autocomplete="current-password" required autofocus;
                p class="hint" { "The gateway's GATEWAY_ADMIN_TOKEN." }
                button type="submit" { "Sign in" }
            }
        },
    )
}

#[derive(Deserialize)]
pub struct SignInForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    csrf: String,
}

pub async fn sign_in(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<SignInForm>,
) -> Response {
    let sessions = &s.sessions;
    let ip = peer.ip().to_string();
    let pre = cookie(&headers, PRE_COOKIE).unwrap_or_default();
    let expected = sessions.mac(&format!("pre.{pre}"));
    if pre.is_empty() || !constant_time_eq(form.csrf.as_bytes(), expected.as_bytes()) {
        return forbidden();
    }
    if let Some(wait) = sessions.attempts.blocked(&ip) {
        let mut resp = sign_in_form(
            StatusCode::TOO_MANY_REQUESTS,
            &form.csrf,
            Some(&format!(
                "Too many sign-in attempts from this address. Try again in {wait} s."
            )),
        );
        if let Ok(v) = HeaderValue::from_str(&wait.to_string()) {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return resp;
    }
    sessions.attempts.record(&ip);
    if !constant_time_eq(form.token.as_bytes(), s.admin_token.as_bytes()) {
        tracing::info!(%ip, "console sign-in refused");
        return sign_in_form(
            StatusCode::UNAUTHORIZED,
            &form.csrf,
            Some("That is not the admin token."),
        );
    }
    tracing::info!(%ip, "console sign-in");
    let https = secure(&headers);
    let (k1, v1) = set_cookie(COOKIE, &sessions.issue(), sessions.ttl.as_secs(), https);
    let (k2, v2) = set_cookie(PRE_COOKIE, "", 0, https);
    let mut resp = Redirect::to("/console/").into_response();
    resp.headers_mut().append(k1, v1);
    resp.headers_mut().append(k2, v2);
    resp
}

#[derive(Deserialize)]
pub struct CsrfForm {
    #[serde(default)]
    csrf: String,
}

pub async fn sign_out(
    State(s): State<AppState>,
    signed: Signed,
    headers: HeaderMap,
    Form(form): Form<CsrfForm>,
) -> Response {
    if let Err(r) = signed.check(&form.csrf) {
        return r.into_response();
    }
    if let Err(e) = s.sessions.signed_out.insert(&signed.sid).await {
        tracing::warn!(error = %e, "cannot record a sign-out");
        return layout::bare(
            StatusCode::SERVICE_UNAVAILABLE,
            "Unavailable",
            html! { p role="alert" class="error" { "Could not end the session (NATS JetStream is unavailable); you are still signed in. Try again shortly." } },
        );
    }
    let (k, v) = set_cookie(COOKIE, "", 0, secure(&headers));
    let mut resp = Redirect::to("/console/sign-in").into_response();
    resp.headers_mut().append(k, v);
    resp
}

/// `n` random bytes as hex: session ids, nonces, a generated admin token.
pub(crate) fn random_hex(n: usize) -> String {
    let mut bytes = vec![0u8; n];
    rand::rng().fill_bytes(&mut bytes);
    hex(&bytes)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Sessions signed with `token`, on a client that never connects: these
    /// tests do not touch the bucket.
    async fn sessions(token: &str) -> Sessions {
        let client = async_nats::ConnectOptions::new()
            .retry_on_initial_connect()
            .connect("127.0.0.1:1")
            .await
            .expect("lazy client");
        Sessions::new(token, Duration::from_secs(60), 5, client)
    }

    #[tokio::test]
    async fn a_cookie_verifies_until_tampered_with_or_signed_by_another_token() {
        let s = sessions("token").await;
        let v = s.issue();
        let sid = s.verify(&v).expect("valid");
        assert_eq!(sid.len(), 32);
        let mut tampered = v.clone();
        tampered.replace_range(0..1, if v.starts_with('a') { "b" } else { "a" });
        assert_eq!(s.verify(&tampered), None);
        let (body, _) = v.rsplit_once('.').expect("mac");
        let (sid2, _) = body.split_once('.').expect("exp");
        let stretched = format!("{sid2}.9999999999");
        assert_eq!(s.verify(&format!("{stretched}.{}", s.mac(body))), None);
        let other = sessions("other").await;
        assert_eq!(other.verify(&v), None);
        assert_ne!(s.csrf_for(&sid), other.csrf_for(&sid));
    }
}
