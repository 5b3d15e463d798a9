//! Bad input at scale: thousands of requests, each a valid request of one of
//! the API's operations broken in one way chosen at random (a missing or
//! extra field, a wrong type, a bad amount, phone, code, id or cursor, broken
//! JSON, a wrong content type, an oversized body, a bad token). Property: no
//! answer is a 5xx, every refusal is problem+json with a §9 code, none of the
//! writes succeeds, and the platform's state is exactly as before.
//! `RELIABILITY_SEED` replays a run.

use rand::{Rng, RngExt, SeedableRng, rngs::StdRng, seq::IndexedRandom};
use reliability::{
    Scale, phone,
    platform::{Options, Platform, TOKEN},
    verify::Admin,
};
use reqwest::Method;
use serde_json::{Value, json};

/// What must not change: groups, redemptions, wallets, ledger.
async fn snapshot(admin: &Admin) -> Value {
    let (_, r) = admin.get("/reconciliation").await;
    let wallets = admin.all("/wallets").await.len();
    let groups = admin.all("/gift-groups").await;
    json!({
        "redemptions": r["redemptions"], "credits": r["credits"],
        "accounts": r["ledger"]["accounts"], "transfers": r["ledger"]["transfers"],
        "wallets": wallets, "groups": groups.len(),
        "active": groups.iter().map(|g| g["active"].clone()).collect::<Vec<_>>(),
        "ok": r["ok"],
    })
}

fn junk(rng: &mut StdRng) -> Value {
    let choices = [
        json!(null),
        json!(-1),
        json!(0),
        json!(1.5),
        json!(i64::MAX),
        json!(-9_223_372_036_854_775_807_i64),
        json!(18_446_744_073_709_551_615_u64),
        json!(""),
        json!("x".repeat(5_000)),
        json!("☃️💸\u{0}"),
        json!("'; DROP TABLE codes; --"),
        json!([]),
        json!({}),
        json!(true),
        json!("+1"),
        json!("00000000-0000-0000-0000-000000000000"),
    ];
    choices.choose(rng).cloned().unwrap_or(Value::Null)
}

/// A valid body for each write, to be broken.
fn template(op: &str, code: &str, i: usize) -> Value {
    match op {
        "redeem" => json!({"code": code, "phone": phone(500_000 + i)}),
        "group" => json!({"name": "fuzz", "kind": "unique", "amount": 5, "count": 2}),
        "patch" => json!({"active": false}),
        "wallet" => json!({"phone": phone(600_000 + i)}),
        _ => json!({"amount": 5, "description": "fuzz"}),
    }
}

/// Breaks a valid body in one way that must be refused.
fn break_body(rng: &mut StdRng, op: &str, mut body: Value) -> Value {
    let obj = body.as_object_mut().expect("object");
    let keys: Vec<String> = obj.keys().cloned().collect();
    match rng.random_range(0..6) {
        0 => {
            // Drop a required field.
            let required: &[&str] = match op {
                "redeem" => &["code", "phone"],
                "group" => &["name", "amount"],
                "patch" => &["active"],
                "wallet" => &["phone"],
                _ => &["amount"],
            };
            obj.remove(*required.choose(rng).unwrap_or(&"amount"));
        }
        1 => {
            obj.insert("unexpected".into(), junk(rng));
        }
        2 => {
            let key = keys.choose(rng).cloned().unwrap_or_default();
            // A junk value that is still valid for this field is skipped
            // by choosing a type no field accepts.
            obj.insert(key, json!([junk(rng)]));
        }
        3 if obj.contains_key("amount") => {
            let bad = [
                json!(0),
                json!(-5),
                json!(i64::MIN),
                json!(1e300),
                json!("5"),
            ];
            obj.insert(
                "amount".into(),
                bad.choose(rng).cloned().unwrap_or_default(),
            );
        }
        4 if obj.contains_key("phone") => {
            let bad = [
                "12",
                "+1555",
                "phone",
                "+99999999999999999",
                "",
                "+1 (415) 555-267",
            ];
            obj.insert(
                "phone".into(),
                json!(bad.choose(rng).copied().unwrap_or("")),
            );
        }
        _ if op == "group" => {
            let bad = [
                json!({"count": 0}),
                json!({"count": -3}),
                json!({"count": 100_000_000}),
                json!({"kind": "shared", "count": 2}),
                json!({"kind": "weird"}),
                json!({"amount": 0}),
                json!({"name": ""}),
                json!({"expires_at": "2000-01-01T00:00:00Z"}),
                json!({"starts_at": "not a date"}),
                json!({"per_phone_limit": 0}),
            ];
            if let Some(Value::Object(b)) = bad.choose(rng) {
                for (k, v) in b {
                    obj.insert(k.clone(), v.clone());
                }
            }
        }
        _ => {
            obj.insert("unexpected".into(), json!(1));
        }
    }
    body
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_input_at_scale_changes_nothing() {
    let _one = reliability::one_at_a_time().await;
    let scale = Scale::from_env();
    let requests = scale.pick(2_000, 20_000);
    let seed: u64 = std::env::var("RELIABILITY_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| rand::rng().next_u64());
    eprintln!("fuzz seed: {seed} (RELIABILITY_SEED={seed} replays this run)");
    let mut rng = StdRng::seed_from_u64(seed);

    let p = Platform::start(Options::default()).await;
    let base = p.api_bases()[0].clone();
    let admin = Admin::new(&base, TOKEN);
    // Something to refuse against: a group with a redeemed code, a wallet.
    let (_, group) = admin
        .post(
            "/gift-groups",
            json!({"name": "target", "kind": "unique", "amount": 7, "count": 3}),
        )
        .await;
    let gid = group["id"].as_str().expect("group").to_owned();
    let code = group["codes"][0].as_str().expect("code").to_owned();
    let (status, _) = admin
        .post("/redemptions", json!({"code": code, "phone": phone(1)}))
        .await;
    assert_eq!(status, 200);
    let before = snapshot(&admin).await;
    assert_eq!(before["ok"], true, "{before}");

    let http = reqwest::Client::new();
    let mut by_status = std::collections::BTreeMap::<u16, usize>::new();
    for i in 0..requests {
        let ops = [
            ("redeem", Method::POST, "/redemptions".to_owned()),
            ("group", Method::POST, "/gift-groups".to_owned()),
            ("patch", Method::PATCH, format!("/gift-groups/{gid}")),
            ("wallet", Method::POST, "/wallets".to_owned()),
            (
                "credit",
                Method::POST,
                format!("/wallets/{}/credits", phone(1)),
            ),
            (
                "debit",
                Method::POST,
                format!("/wallets/{}/debits", phone(1)),
            ),
            ("read", Method::GET, String::new()),
        ];
        let (op, method, path) = ops.choose(&mut rng).cloned().expect("op");
        let mut req;
        let how: u32 = rng.random_range(0..10);
        if op == "read" {
            let junk_id = ["nope", "%00", "..%2F..%2Fetc", "-1", &"9".repeat(300), "+1"]
                .choose(&mut rng)
                .copied()
                .unwrap_or("x")
                .to_owned();
            let paths = [
                format!("/redemptions/{junk_id}"),
                format!("/gift-groups/{junk_id}"),
                format!("/gift-groups/{junk_id}/codes"),
                format!("/gift-groups/{gid}/codes?status={junk_id}"),
                format!("/gift-groups?limit={junk_id}"),
                format!("/gift-groups?cursor={junk_id}"),
                format!("/wallets/{junk_id}"),
                format!("/wallets/{junk_id}/transactions?limit=0"),
                format!("/gift-codes/{junk_id}"),
            ];
            req = http
                .get(format!(
                    "{base}{}",
                    paths.choose(&mut rng).cloned().unwrap_or_default()
                ))
                .bearer_auth(TOKEN);
        } else {
            req = http.request(method, format!("{base}{path}"));
            // One Authorization header: reqwest appends, it does not replace.
            let token = match how {
                0 if op != "redeem" => "wrong-token",
                4 if op != "redeem" => "",
                _ => TOKEN,
            };
            req = req.bearer_auth(token);
            req = req.header("idempotency-key", format!("fuzz-{seed}-{i}"));
            let body = template(op, &code, i);
            req = match how {
                1 => req
                    .header("content-type", "application/json")
                    .body("{\"code\": "),
                2 => req
                    .header("content-type", "text/plain")
                    .body(body.to_string()),
                3 => req
                    .header("content-type", "application/json")
                    .body(format!("{{\"pad\": \"{}\"}}", "x".repeat(100_000))),
                4 if op != "redeem" => req.json(&body),
                _ if op == "redeem" && how < 6 => {
                    // Well-formed, but a code that does not exist or is taken.
                    let bad = ["NOPE-NOPE-NOPE", "", "x", code.as_str()];
                    let c = bad.choose(&mut rng).copied().unwrap_or("");
                    let who = if c == code { phone(2) } else { phone(3) };
                    req.json(&json!({"code": c, "phone": who}))
                }
                _ => req.json(&break_body(&mut rng, op, body)),
            };
        }
        let r = req.send().await.expect("the gateway answers");
        let status = r.status().as_u16();
        let ctype = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_owned();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        *by_status.entry(status).or_default() += 1;
        assert!(
            status < 500,
            "request {i} ({op}) got {status}: {body} (seed {seed})"
        );
        if op != "read" {
            assert!(
                status >= 400,
                "request {i} ({op}) was meant to be refused but got {status}: {body} (seed {seed})"
            );
        }
        if status >= 400 {
            assert_eq!(ctype, "application/problem+json", "request {i}: {body}");
            assert!(body["code"].is_string(), "request {i}: {body}");
        }
    }
    let after = snapshot(&admin).await;
    assert_eq!(
        after, before,
        "refused requests changed the state (seed {seed})"
    );
    eprintln!("fuzz: {requests} bad requests, answers by status {by_status:?}, state unchanged");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("reliability-fuzz.txt");
    let _ = std::fs::write(
        path,
        format!(
            "scenario: fuzz\nseed: {seed}\nrequests: {requests}\nanswers by status: {by_status:?}\nstate unchanged: yes\n"
        ),
    );
}
