//! The admin console's handlers over plain HTTP: sign-in, the session cookie
//! (on two replicas), sign-out, throttling, CSRF refusals, escaping, the
//! forms (group creation as CSV or page, credits paid once), the timeline
//! route, and the live stream (events, its cap, its end on SIGTERM).

use std::time::Duration;

use futures::StreamExt;
use reqwest::{Method, StatusCode, header};
use serde_json::{Value, json};

use crate::helpers::*;

/// A browser without a browser: a cookie and the page's CSRF token.
pub struct Console {
    pub http: reqwest::Client,
    pub base: String,
    pub cookie: String,
    pub csrf: String,
}

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
}

/// The `value` of the first hidden input named `name`.
pub fn hidden(html: &str, name: &str) -> String {
    let at = html
        .find(&format!("name=\"{name}\" value=\""))
        .unwrap_or_else(|| panic!("no {name} field in:\n{html}"));
    let rest = &html[at + name.len() + 15..];
    rest[..rest.find('"').expect("end")].to_owned()
}

/// `name=value` of a Set-Cookie header named `name`, and its attributes.
fn set_cookie(r: &reqwest::Response, name: &str) -> Option<String> {
    r.headers()
        .get_all(header::SET_COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .map(str::to_owned)
}

/// The sign-in form: its pre-session cookie and CSRF token.
async fn sign_in_form(http: &reqwest::Client, base: &str) -> (String, String) {
    let r = http
        .get(format!("{base}/console/sign-in"))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 200);
    let pre = set_cookie(&r, "console_pre").expect("pre cookie");
    let pre = pre.split(';').next().expect("pair").to_owned();
    let html = r.text().await.expect("html");
    assert!(
        html.contains("name=\"token\""),
        "the token field is named token"
    );
    (pre, hidden(&html, "csrf"))
}

impl Console {
    pub async fn sign_in(base: &str) -> Console {
        let http = no_redirects();
        let (pre, csrf) = sign_in_form(&http, base).await;
        let r = http
            .post(format!("{base}/console/sign-in"))
            .header(header::COOKIE, &pre)
            .form(&[("token", TOKEN), ("csrf", &csrf)])
            .send()
            .await
            .expect("sign in");
        assert_eq!(r.status(), 303);
        let cookie = set_cookie(&r, "console_session").expect("session cookie");
        let cookie = cookie.split(';').next().expect("pair").to_owned();
        let mut c = Console {
            http,
            base: base.to_owned(),
            cookie,
            csrf: String::new(),
        };
        let page = c.get("/console/").await;
        assert_eq!(page.0, 200, "{}", page.1);
        c.csrf = hidden(&page.1, "csrf");
        c
    }

    pub async fn get(&self, path: &str) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.text().await.expect("body"))
    }

    pub async fn post(&self, path: &str, form: &[(&str, &str)]) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.base))
            .header(header::COOKIE, &self.cookie)
            .form(form)
            .send()
            .await
            .expect("post")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_signs_in_with_a_strict_cookie_that_both_replicas_accept_until_sign_out() {
    let mut s = Stack::start(&[("RUST_LOG", "debug")]).await;
    let http = no_redirects();

    let r = http
        .get(format!("{}/console/", s.base))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 303, "not signed in: to the sign-in page");
    assert_eq!(r.headers()[header::LOCATION], "/console/sign-in");

    let r = http
        .get(format!("{}/console/sign-in", s.base))
        .send()
        .await
        .expect("get");
    let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .expect("csp");
    assert!(
        csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"),
        "{csp}"
    );
    let pre = set_cookie(&r, "console_pre").expect("pre");
    assert!(
        pre.contains("HttpOnly") && pre.contains("SameSite=Strict"),
        "{pre}"
    );

    // A wrong token: 401 and no session.
    let (pre, csrf) = sign_in_form(&http, &s.base).await;
    let r = http
        .post(format!("{}/console/sign-in", s.base))
        .header(header::COOKIE, &pre)
        .form(&[("token", "wrong"), ("csrf", &csrf)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 401);
    assert!(set_cookie(&r, "console_session").is_none());
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("not the admin token")
    );

    // Without the sign-in form's cookie: a CSRF refusal, even with the token.
    let r = http
        .post(format!("{}/console/sign-in", s.base))
        .form(&[("token", TOKEN), ("csrf", &csrf)])
        .send()
        .await
        .expect("post");
    assert_eq!(r.status(), 403);

    // Over HTTPS (behind the TLS proxy) the cookie is Secure; here it is not.
    let (pre, csrf) = sign_in_form(&http, &s.base).await;
    let r = http
        .post(format!("{}/console/sign-in", s.base))
        .header(header::COOKIE, &pre)
        .header("x-forwarded-proto", "https")
        .form(&[("token", TOKEN), ("csrf", &csrf)])
        .send()
        .await
        .expect("post");
    let cookie = set_cookie(&r, "console_session").expect("session");
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Secure",
        "Max-Age=28800",
    ] {
        assert!(cookie.contains(attr), "{attr} in {cookie}");
    }
    assert!(
        !r.headers()[header::LOCATION]
            .to_str()
            .expect("loc")
            .contains(TOKEN)
    );

    s.create_group(json!({"name": "Spring launch", "kind": "unique", "amount": 500, "count": 2}))
        .await;
    let c = Console::sign_in(&s.base).await;
    assert!(!c.cookie.contains("Secure"));
    let (status, html) = c.get("/console/").await;
    assert_eq!(status, 200);
    assert!(html.contains("Spring launch"), "groups listed by name");

    // The other replica accepts the session; signing out on one ends it on both.
    let replica = s.start_gateway_replica().await;
    let other = Console {
        http: no_redirects(),
        base: replica.clone(),
        cookie: c.cookie.clone(),
        csrf: c.csrf.clone(),
    };
    assert_eq!(other.get("/console/").await.0, 200);
    let r = c.post("/console/sign-out", &[("csrf", "forged")]).await;
    assert_eq!(r.status(), 403, "sign-out needs the CSRF token too");
    let r = c.post("/console/sign-out", &[("csrf", &c.csrf)]).await;
    assert_eq!(r.status(), 303);
    assert!(
        set_cookie(&r, "console_session")
            .expect("cleared")
            .contains("Max-Age=0")
    );
    assert_eq!(c.get("/console/").await.0, 303, "ended here");
    assert_eq!(
        other.get("/console/").await.0,
        303,
        "and on the other replica"
    );

    // Neither the token nor a session id is in a log line, even at debug.
    let sid = c
        .cookie
        .trim_start_matches("console_session=")
        .split('.')
        .next()
        .expect("sid")
        .to_owned();
    for name in ["gateway-svc", "gateway-svc-replica-1"] {
        let log = std::fs::read_to_string(s.dir.path().join(format!("{name}.log"))).expect("log");
        assert!(log.contains("DEBUG"), "{name} logged at debug");
        assert!(
            log.contains("console sign-in") || name != "gateway-svc",
            "{name}: the sign-ins are logged"
        );
        assert!(!log.contains(TOKEN), "the admin token in {name}'s log");
        assert!(!log.contains(&sid), "a session id in {name}'s log");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_attempts_are_throttled_per_address() {
    let s = Stack::start(&[("CONSOLE_SIGNIN_ATTEMPTS", "3")]).await;
    let http = no_redirects();
    let (pre, csrf) = sign_in_form(&http, &s.base).await;
    let mut statuses = Vec::new();
    for token in ["a", "b", "c", TOKEN] {
        let r = http
            .post(format!("{}/console/sign-in", s.base))
            .header(header::COOKIE, &pre)
            .form(&[("token", token), ("csrf", &csrf)])
            .send()
            .await
            .expect("post");
        statuses.push(r.status().as_u16());
        if r.status() == 429 {
            assert!(r.headers().contains_key(header::RETRY_AFTER));
            assert!(set_cookie(&r, "console_session").is_none());
        }
    }
    assert_eq!(statuses, [401, 401, 401, 429], "even the right token waits");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forms_without_the_csrf_token_change_nothing_and_names_are_text() {
    let s = Stack::start(&[]).await;
    let evil = "<script>alert(1)</script>";
    let g = s
        .create_group(json!({"name": evil, "kind": "shared", "amount": 100, "max_redemptions": 5, "code": "EVIL-CODE"}))
        .await;
    let gid = g["id"].as_str().expect("id");
    let c = Console::sign_in(&s.base).await;

    for (path, form) in [
        (
            "/console/groups",
            vec![
                ("name", "X"),
                ("kind", "unique"),
                ("amount", "5"),
                ("count", "1"),
                ("output", "page"),
            ],
        ),
        (
            &*format!("/console/groups/{gid}/active"),
            vec![("active", "false")],
        ),
        (
            "/console/wallets/+14155550100/credit",
            vec![("amount", "5"), ("idempotency_key", "k1")],
        ),
    ] {
        for csrf in [None, Some("0123456789abcdef0123456789abcdef")] {
            let mut form = form.clone();
            if let Some(t) = csrf {
                form.push(("csrf", t));
            }
            let r = c.post(path, &form).await;
            assert_eq!(r.status(), 403, "{path} with csrf {csrf:?}");
        }
    }
    let (_, groups) = s.get_json("/gift-groups").await;
    assert_eq!(
        groups["items"].as_array().expect("items").len(),
        1,
        "no group created"
    );
    assert_eq!(groups["items"][0]["active"], true, "not deactivated");
    assert_eq!(
        s.get_json("/wallets/+14155550100").await.0,
        404,
        "nothing credited"
    );

    let (_, html) = c.get("/console/").await;
    let (_, group_page) = c.get(&format!("/console/groups/{gid}")).await;
    let (_, live) = c.get("/console/live").await;
    let lookup = c
        .post(
            "/console/codes",
            &[("csrf", &c.csrf), ("code", "EVIL-CODE")],
        )
        .await;
    let lookup = lookup.text().await.expect("html");
    for page in [&html, &group_page, &live, &lookup] {
        assert!(
            page.contains("&lt;script&gt;alert(1)&lt;/script&gt;"),
            "escaped in:\n{page}"
        );
        assert!(!page.contains(evil), "never markup");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_create_form_streams_csv_or_shows_small_groups_and_shows_the_api_refusal() {
    let s = Stack::start(&[]).await;
    let c = Console::sign_in(&s.base).await;
    let base = [
        ("csrf", c.csrf.as_str()),
        ("kind", "unique"),
        ("amount", "250"),
    ];

    let mut form = base.to_vec();
    form.extend([
        ("name", "Bulk"),
        ("count", "150"),
        ("prefix", "BULK"),
        ("output", "csv"),
    ]);
    let r = c.post("/console/groups", &form).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/csv; charset=utf-8");
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    assert!(
        r.headers()[header::CONTENT_DISPOSITION]
            .to_str()
            .expect("cd")
            .starts_with("attachment; filename=\"codes-")
    );
    let csv = r.text().await.expect("csv");
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(lines[0], "code");
    assert_eq!(lines.len(), 151);
    assert!(lines[1..].iter().all(|l| l.starts_with("BULK")));
    // The codes are real: one redeems.
    assert_eq!(s.redeem(lines[1], &phone(1)).await.0, 200);

    // Too many to show in the page: refused before anything is created.
    let mut form = base.to_vec();
    form.extend([("name", "Too big"), ("count", "101"), ("output", "page")]);
    let r = c.post("/console/groups", &form).await;
    assert_eq!(r.status(), 422);
    assert!(
        r.text()
            .await
            .expect("html")
            .contains("download this one as CSV")
    );

    // The API's own refusal, next to the form, with the values kept.
    let mut form = base.to_vec();
    form.extend([("name", "Bad"), ("count", "0"), ("output", "page")]);
    let r = c.post("/console/groups", &form).await;
    assert_eq!(r.status(), 422);
    let html = r.text().await.expect("html");
    assert!(
        html.contains("validation_failed") && html.contains("count"),
        "{html}"
    );
    assert!(html.contains("value=\"Bad\""));

    let mut form = base.to_vec();
    form.extend([
        ("name", "Small"),
        ("count", "3"),
        ("expires_at", "2099-01-01T00:00"),
        ("output", "page"),
    ]);
    let r = c.post("/console/groups", &form).await;
    assert_eq!(r.status(), 201);
    assert_eq!(r.headers()[header::CACHE_CONTROL], "no-store");
    let html = r.text().await.expect("html");
    assert!(
        html.contains("data:text/csv"),
        "a download of the shown codes"
    );
    let (_, groups) = s.get_json("/gift-groups").await;
    let names: Vec<&str> = groups["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|g| g["name"].as_str())
        .collect();
    assert_eq!(names.len(), 2, "Bulk and Small, nothing else: {names:?}");
    let small = groups["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|g| g["name"] == "Small")
        .expect("small");
    assert_eq!(small["expires_at"], "2099-01-01T00:00:00Z");
    assert_eq!(small["stats"]["total_codes"], 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_form_submitted_twice_pays_once_and_a_refused_debit_says_why() {
    let s = Stack::start(&[]).await;
    let c = Console::sign_in(&s.base).await;
    let p = phone(7);
    let (status, html) = c
        .get(&format!("/console/wallets?phone={}", p.replace('+', "%2B")))
        .await;
    assert_eq!(status, 303, "a search goes to the wallet page: {html}");
    let (status, html) = c.get(&format!("/console/wallets/{p}")).await;
    assert_eq!(status, 200);
    assert!(html.contains("no wallet yet"));
    let key = hidden(&html, "idempotency_key");
    let form = [
        ("csrf", c.csrf.as_str()),
        ("idempotency_key", &key),
        ("amount", "1,500"),
        ("description", "goodwill"),
    ];
    for _ in 0..2 {
        let r = c.post(&format!("/console/wallets/{p}/credit"), &form).await;
        assert_eq!(r.status(), 303);
    }
    let (_, wallet) = s.get_json(&format!("/wallets/{p}")).await;
    assert_eq!(wallet["balance"], 1500, "one credit for two submits");
    let (_, txs) = s.get_json(&format!("/wallets/{p}/transactions")).await;
    assert_eq!(txs["items"].as_array().expect("items").len(), 1);

    let (_, html) = c.get(&format!("/console/wallets/{p}")).await;
    assert_ne!(
        hidden(&html, "idempotency_key"),
        key,
        "each render gets a fresh key"
    );
    assert!(html.contains("1,500 USD") && html.contains("goodwill"));
    let r = c
        .post(
            &format!("/console/wallets/{p}/debit"),
            &[
                ("csrf", &c.csrf),
                ("idempotency_key", "d-1"),
                ("amount", "2000"),
            ],
        )
        .await;
    assert_eq!(r.status(), 422);
    assert!(r.text().await.expect("html").contains("insufficient_funds"));
    assert_eq!(
        s.get_json(&format!("/wallets/{p}")).await.1["balance"],
        1500
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_timeline_counts_redemptions_per_minute() {
    let s = Stack::start(&[]).await;
    let g = s
        .create_group(json!({"name": "T", "kind": "unique", "amount": 300, "count": 3}))
        .await;
    let gid = g["id"].as_str().expect("id");
    for i in 0..2 {
        let code = g["codes"][i].as_str().expect("code");
        assert_eq!(s.redeem(code, &phone(20 + i)).await.0, 200);
    }
    let (status, t) = s
        .get_json(&format!("/gift-groups/{gid}/timeline?minutes=5"))
        .await;
    assert_eq!(status, 200, "{t}");
    let minutes = t["minutes"].as_array().expect("minutes");
    assert_eq!(minutes.len(), 5);
    let total: i64 = minutes
        .iter()
        .map(|m| m["redemptions"].as_i64().expect("n"))
        .sum();
    let amount: i64 = minutes
        .iter()
        .map(|m| m["amount"].as_i64().expect("amount"))
        .sum();
    assert_eq!((total, amount), (2, 600));
    assert!(
        minutes[4]["redemptions"].as_i64().expect("n") >= 1,
        "in the current minute (or just before)"
    );
    assert_eq!(
        s.get_json(&format!("/gift-groups/{gid}/timeline")).await.1["minutes"]
            .as_array()
            .expect("m")
            .len(),
        60
    );
    let (status, e) = s
        .get_json(&format!("/gift-groups/{gid}/timeline?minutes=0"))
        .await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("validation_failed"))
    );
    let (status, e) = s
        .get_json("/gift-groups/01a22bb9-0000-7000-8000-000000000000/timeline")
        .await;
    assert_eq!((status, e["code"].as_str()), (404, Some("group_not_found")));
    let r = s
        .http
        .request(Method::GET, s.url(&format!("/gift-groups/{gid}/timeline")))
        .send()
        .await
        .expect("get");
    assert_eq!(r.status(), 401);
}

/// Reads SSE frames until one named `event` arrives; its data.
async fn next_event(
    body: &mut (impl futures::Stream<Item = reqwest::Result<bytes::Bytes>> + Unpin),
    buf: &mut String,
    event: &str,
) -> Value {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        while let Some(end) = buf.find("\n\n") {
            let frame: String = buf.drain(..end + 2).collect();
            let name = frame
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or("");
            let data = frame.lines().find_map(|l| l.strip_prefix("data: "));
            if name == event {
                return serde_json::from_str(data.expect("data")).expect("json");
            }
        }
        let chunk = tokio::time::timeout_at(deadline, body.next())
            .await
            .unwrap_or_else(|_| panic!("no {event} event within 30 s"))
            .expect("stream open")
            .expect("chunk");
        buf.push_str(&String::from_utf8_lossy(&chunk));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_live_stream_shows_each_redemption_then_its_credit_and_ends_on_sigterm() {
    let mut s = Stack::start(&[("CONSOLE_MAX_STREAMS", "1"), ("GATEWAY_MAX_IN_FLIGHT", "1")]).await;
    let g = s
        .create_group(json!({"name": "Live", "kind": "unique", "amount": 700, "count": 2}))
        .await;
    let c = Console::sign_in(&s.base).await;
    let open = || {
        c.http
            .get(format!("{}/console/live/events", c.base))
            .header(header::COOKIE, &c.cookie)
            .send()
    };
    let r = open().await.expect("events");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()[header::CONTENT_TYPE], "text/event-stream");
    let mut body = r.bytes_stream();
    let mut buf = String::new();
    let snapshot = next_event(&mut body, &mut buf, "snapshot").await;
    assert_eq!(snapshot[0]["name"], "Live");
    assert_eq!(snapshot[0]["redemptions"], 0);

    // The open stream holds no permit of the request bound (1 here).
    assert_eq!(
        s.get_json("/gift-groups").await.0,
        200,
        "not counted in GATEWAY_MAX_IN_FLIGHT"
    );
    let second = open().await.expect("events");
    assert_eq!(
        second.status(),
        StatusCode::SERVICE_UNAVAILABLE,
        "over CONSOLE_MAX_STREAMS"
    );

    let p = phone(31);
    let (status, redeemed, _) = s.redeem(g["codes"][0].as_str().expect("code"), &p).await;
    assert_eq!(status, 200);
    let e = next_event(&mut body, &mut buf, "redeemed").await;
    assert_eq!(e["redemption_id"], redeemed["id"]);
    assert_eq!(e["group_name"], "Live");
    assert_eq!(e["amount"], 700);
    assert_eq!(e["counted"], false);
    assert_eq!(
        e["phone"],
        format!("•••• {}", &p[p.len() - 4..]),
        "masked to its last 4 digits"
    );
    assert!(!e.to_string().contains(&p[..p.len() - 4]));
    let e = next_event(&mut body, &mut buf, "credited").await;
    assert_eq!(e["redemption_id"], redeemed["id"]);

    // Not counted against the API's bound: a tight GATEWAY_MAX_IN_FLIGHT
    // would otherwise be held by the open stream. The stream ends on SIGTERM.
    s.terminate_gateway()
        .await
        .expect("the gateway exits on SIGTERM with a stream open");
    let rest = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(Ok(_)) = body.next().await {}
    })
    .await;
    assert!(rest.is_ok(), "the stream ended");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_reverses_a_redemption_and_switches_a_code_off() {
    let s = Stack::start(&[]).await;
    let g = s
        .create_group(json!({"name": "Undo", "kind": "unique", "amount": 900, "count": 2}))
        .await;
    let gid = g["id"].as_str().expect("id").to_owned();
    let p = phone(77);
    let (status, r, _) = s.redeem(g["codes"][0].as_str().expect("code"), &p).await;
    assert_eq!(status, 200);
    let rid = r["id"].as_str().expect("id").to_owned();
    let c = Console::sign_in(&s.base).await;

    // The group page offers the reversal with a fresh key; without the CSRF
    // token it changes nothing.
    let (_, html) = c.get(&format!("/console/groups/{gid}")).await;
    assert!(
        html.contains(&format!("/console/redemptions/{rid}/reverse")),
        "{html}"
    );
    let key = hidden(&html, "idempotency_key");
    let form = |csrf: &str| {
        vec![
            ("csrf", csrf.to_owned()),
            ("group_id", gid.clone()),
            ("idempotency_key", key.clone()),
            ("reason", "wrong phone".to_owned()),
            ("release_code", "true".to_owned()),
        ]
    };
    let forged = form("nope");
    let forged: Vec<(&str, &str)> = forged.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        c.post(&format!("/console/redemptions/{rid}/reverse"), &forged)
            .await
            .status(),
        403
    );
    assert_eq!(s.get_json(&format!("/wallets/{p}")).await.1["balance"], 900);

    let good = form(&c.csrf);
    let good: Vec<(&str, &str)> = good.iter().map(|(k, v)| (*k, v.as_str())).collect();
    for _ in 0..2 {
        let r = c
            .post(&format!("/console/redemptions/{rid}/reverse"), &good)
            .await;
        assert_eq!(r.status(), 303, "a double submit answers the same reversal");
    }
    assert_eq!(s.get_json(&format!("/wallets/{p}")).await.1["balance"], 0);
    let (_, txs) = s.get_json(&format!("/wallets/{p}/transactions")).await;
    assert_eq!(
        txs["items"].as_array().expect("items").len(),
        2,
        "one credit, one reversal"
    );
    let (_, html) = c.get(&format!("/console/groups/{gid}")).await;
    assert!(html.contains("reversed, code released"), "{html}");

    // The code's switch: off, and a redeem is 410; on again.
    let (_, codes) = s.get_json(&format!("/gift-groups/{gid}/codes")).await;
    let other = codes["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| {
            c["redemptions"] == 0
                && c["hint"].as_str().is_some_and(|h| {
                    g["codes"][1]
                        .as_str()
                        .expect("code")
                        .ends_with(&h[h.len() - 4..])
                })
        })
        .cloned()
        .expect("the unredeemed code");
    let cid = other["id"].as_str().expect("id");
    let path = format!("/console/groups/{gid}/codes/{cid}/active");
    assert_eq!(
        c.post(&path, &[("csrf", "nope"), ("active", "false")])
            .await
            .status(),
        403
    );
    let r = c
        .post(&path, &[("csrf", &c.csrf), ("active", "false")])
        .await;
    assert_eq!(r.status(), 303);
    let (status, e, _) = s
        .redeem(g["codes"][1].as_str().expect("code"), &phone(78))
        .await;
    assert_eq!((status, e["code"].as_str()), (410, Some("code_inactive")));
    let (_, html) = c.get(&format!("/console/groups/{gid}")).await;
    assert!(html.contains("disabled"), "{html}");
    assert_eq!(
        c.post(&path, &[("csrf", &c.csrf), ("active", "true")])
            .await
            .status(),
        303
    );
    assert_eq!(
        s.redeem(g["codes"][1].as_str().expect("code"), &phone(78))
            .await
            .0,
        200
    );
}
