//! Admin routes: bearer auth, the §9 code of each route's refusals, CSV codes,
//! and the rate limits.

use reqwest::Method;
use serde_json::{Value, json};

use crate::helpers::*;

const ADMIN_ROUTES: [(&str, &str); 17] = [
    ("POST", "/gift-groups"),
    ("GET", "/gift-groups"),
    ("GET", "/gift-groups/x"),
    ("PATCH", "/gift-groups/x"),
    ("GET", "/gift-groups/x/codes"),
    ("GET", "/gift-groups/x/redemptions"),
    ("GET", "/gift-groups/x/timeline"),
    ("PATCH", "/gift-groups/x/codes/y"),
    ("POST", "/redemptions/x/reversal"),
    ("GET", "/gift-codes/ABCD-EFGH"),
    ("POST", "/wallets"),
    ("GET", "/wallets"),
    ("GET", "/wallets/+14155550001"),
    ("GET", "/wallets/+14155550001/transactions"),
    ("POST", "/wallets/+14155550001/credits"),
    ("POST", "/wallets/+14155550001/debits"),
    ("GET", "/wallets/+14155550002"),
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_routes_need_the_token_and_refuse_with_their_codes() {
    let s = Stack::start(&[]).await;
    for (method, path) in ADMIN_ROUTES {
        let method: Method = method.parse().expect("method");
        for auth in [None, Some("Bearer wrong"), Some(TOKEN)] {
            if auth == Some(TOKEN) {
                continue;
            }
            let mut req = s.http.request(method.clone(), s.url(path)).json(&json!({}));
            if let Some(a) = auth {
                req = req.header("authorization", a);
            }
            let r = req.send().await.expect("send");
            assert_eq!(r.status(), 401, "{method} {path}");
            let body: Value = r.json().await.expect("json");
            assert_eq!(body["code"], "unauthorized");
        }
    }

    let group = s
        .create_group(json!({"name": "G", "kind": "unique", "amount": 5, "count": 3}))
        .await;
    let gid = group["id"].as_str().expect("id");
    let code = group["codes"][0].as_str().expect("code");
    let checks: Vec<(Method, String, Option<Value>, u16, &str)> = vec![
        (
            Method::GET,
            "/gift-groups/01a22bb9-0000-7000-8000-000000000000".into(),
            None,
            404,
            "group_not_found",
        ),
        (
            Method::GET,
            "/gift-groups?limit=0".into(),
            None,
            422,
            "validation_failed",
        ),
        (
            Method::GET,
            "/gift-groups?limit=abc".into(),
            None,
            422,
            "validation_failed",
        ),
        (
            Method::PATCH,
            format!("/gift-groups/{gid}"),
            Some(json!({"active": "no"})),
            422,
            "validation_failed",
        ),
        (
            Method::GET,
            format!("/gift-groups/{gid}/codes?status=lost"),
            None,
            422,
            "validation_failed",
        ),
        (
            Method::GET,
            "/gift-codes/ZZZZ-ZZZZ-ZZZZ".into(),
            None,
            404,
            "code_not_found",
        ),
        (
            Method::GET,
            "/gift-codes/%21%21".into(),
            None,
            422,
            "invalid_code",
        ),
        (
            Method::POST,
            "/gift-groups".into(),
            Some(json!({"name": "", "kind": "unique", "amount": 1, "count": 1})),
            422,
            "validation_failed",
        ),
        (
            Method::POST,
            "/wallets".into(),
            Some(json!({"phone": "nope"})),
            422,
            "invalid_phone",
        ),
        (
            Method::GET,
            "/wallets/+14155559999".into(),
            None,
            404,
            "wallet_not_found",
        ),
        (Method::GET, "/nowhere".into(), None, 404, "not_found"),
    ];
    for (method, path, body, status, word) in checks {
        let mut req = s.admin(method.clone(), &path);
        if let Some(b) = body {
            req = req.json(&b);
        }
        let r = req.send().await.expect("send");
        assert_eq!(r.status().as_u16(), status, "{method} {path}");
        let problem: Value = r.json().await.expect("json");
        assert_eq!(problem["code"], word, "{method} {path}");
    }

    // Wallets: created, listed, credited and debited under idempotency keys.
    let r = s
        .admin(Method::POST, "/wallets")
        .json(&json!({"phone": phone(1)}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    let r = s
        .admin(Method::POST, "/wallets")
        .json(&json!({"phone": phone(1)}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 409);
    let credit = |key: Option<&'static str>, amount: i64, kind: &'static str| {
        let mut req = s
            .admin(Method::POST, &format!("/wallets/{}/{kind}", phone(1)))
            .json(&json!({"amount": amount, "description": "test"}));
        if let Some(k) = key {
            req = req.header("idempotency-key", k);
        }
        req.send()
    };
    assert_eq!(
        credit(None, 10, "credits").await.expect("send").status(),
        422
    );
    let first = credit(Some("k1"), 1000, "credits").await.expect("send");
    assert_eq!(first.status(), 201);
    assert_eq!(first.headers()["idempotent-replayed"], "false");
    let first: Value = first.json().await.expect("json");
    let again = credit(Some("k1"), 1000, "credits").await.expect("send");
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    let again: Value = again.json().await.expect("json");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(
        credit(Some("k1"), 5, "credits")
            .await
            .expect("send")
            .status(),
        409
    );
    let over = credit(Some("k2"), 5000, "debits").await.expect("send");
    assert_eq!(over.status(), 422);
    assert_eq!(
        over.json::<Value>().await.expect("json")["code"],
        "insufficient_funds"
    );
    assert_eq!(
        credit(Some("k3"), 400, "debits")
            .await
            .expect("send")
            .status(),
        201
    );
    let (_, wallet) = s.get_json(&format!("/wallets/{}", phone(1))).await;
    assert_eq!(wallet["balance"], 600);

    // Deactivation shows on redeem.
    let r = s
        .admin(Method::PATCH, &format!("/gift-groups/{gid}"))
        .json(&json!({"active": false}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 200);
    let (status, body, _) = s.redeem(code, &phone(2)).await;
    assert_eq!(
        (status, body["code"].clone()),
        (410, json!("code_inactive"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn codes_stream_as_csv() {
    let s = Stack::start(&[]).await;
    let r = s
        .admin(Method::POST, "/gift-groups")
        .header("accept", "text/csv")
        .json(&json!({"name": "CSV", "kind": "unique", "amount": 1, "count": 25_000, "prefix": "CSV"}))
        .send()
        .await
        .expect("send");
    assert_eq!(r.status(), 201);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .starts_with("text/csv")
    );
    let gid = r.headers()["x-group-id"].to_str().expect("id").to_owned();
    let text = r.text().await.expect("body");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines[0], "code");
    assert_eq!(lines.len(), 25_001);
    let distinct: std::collections::HashSet<&&str> = lines[1..].iter().collect();
    assert_eq!(distinct.len(), 25_000);
    assert!(
        lines[1..]
            .iter()
            .all(|c| c.starts_with("CSV-") && c.len() == 18)
    );
    let (status, _, _) = s.redeem(lines[7], &phone(3)).await;
    assert_eq!(status, 200, "a CSV code redeems");
    let (_, g) = s.get_json(&format!("/gift-groups/{gid}")).await;
    assert_eq!(g["stats"]["total_codes"], 25_000);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_answer_429_with_retry_after() {
    let s = Stack::start(&[
        ("GATEWAY_RATE_LIMIT_PER_IP", "5"),
        ("GATEWAY_FAILED_REDEEMS_PER_PHONE", "2"),
    ])
    .await;
    // Two failed guesses for one phone, then that phone is blocked.
    for _ in 0..2 {
        let (status, _, _) = s.redeem("ZZZZ-ZZZZ-ZZZZ", &phone(1)).await;
        assert_eq!(status, 404);
    }
    let (status, body, headers) = s.redeem("ZZZZ-ZZZZ-ZZZZ", &phone(1)).await;
    assert_eq!((status, body["code"].clone()), (429, json!("rate_limited")));
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("h")
        .parse()
        .expect("secs");
    assert!((1..=3600).contains(&retry));
    // Five requests a minute from this address (the three above count): the
    // sixth is refused.
    for p in [2, 3] {
        let (status, _, _) = s.redeem("ZZZZ-ZZZZ-ZZZZ", &phone(p)).await;
        assert_eq!(status, 404);
    }
    let (status, _, headers) = s.redeem("ZZZZ-ZZZZ-ZZZZ", &phone(4)).await;
    assert_eq!(status, 429);
    let retry: u64 = headers["retry-after"]
        .to_str()
        .expect("h")
        .parse()
        .expect("secs");
    assert!((1..=60).contains(&retry));
}
