//! Every row of DESIGN.md §7's outcome table, over HTTP, against real processes.

use std::time::{Duration, Instant};

use serde_json::{Value, json};
use shared_events::subjects::{GIFTCODE_EVENTS_STREAM, WALLET_EVENTS_STREAM, events};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credited_replayed_and_each_event_seen_once() {
    let s = Stack::start(&[]).await;
    let group = s
        .create_group(json!({"name": "G", "kind": "unique", "amount": 500, "count": 2}))
        .await;
    let code = group["codes"][0].as_str().expect("code").to_owned();

    let r = s
        .http
        .post(s.url("/redemptions"))
        .header("x-request-id", "req-e2e-1")
        .json(&json!({"code": code.to_lowercase(), "phone": "(415) 555-2671"}))
        .send()
        .await
        .expect("redeem");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["x-request-id"], "req-e2e-1");
    let body: Value = r.json().await.expect("json");
    assert_eq!(body["status"], "credited");
    assert!(body["credited_at"].is_string(), "{body}");
    assert_eq!(body["amount"], 500);
    assert_eq!(body["group_id"], group["id"]);
    assert_eq!(body["wallet"]["phone"], "+14155552671");
    assert_eq!(body["wallet"]["balance"], 500);
    assert_eq!(body["wallet"]["currency"], "USD");
    assert!(body["wallet"]["transaction_id"].is_string());

    let (status, again, _) = s.redeem(&code, "+14155552671").await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(
        again["id"], body["id"],
        "a replay returns the original redemption"
    );
    assert_eq!(again["wallet"]["balance"], 500, "and credits nothing more");

    let (status, wallet) = s.get_json("/wallets/+14155552671").await;
    assert_eq!((status, wallet["balance"].clone()), (200, json!(500)));

    // The events of the redeem, each exactly once, with the request id.
    let client = s.nats.connect_as("ops").await;
    let redeemed =
        testkit::bus::wait_for_events(&client, GIFTCODE_EVENTS_STREAM, events::CODE_REDEEMED, 1)
            .await;
    let credited =
        testkit::bus::wait_for_events(&client, WALLET_EVENTS_STREAM, events::WALLET_CREDITED, 1)
            .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (events, kind) in [
        (redeemed, "giftcode.code.redeemed"),
        (credited, "wallet.wallet.credited"),
    ] {
        assert_eq!(events.len(), 1, "{kind} seen once");
        let e = &events[0];
        for field in [
            "id",
            "type",
            "version",
            "occurred_at",
            "source",
            "correlation_id",
            "data",
        ] {
            assert!(e.get(field).is_some(), "{kind} lacks {field}");
        }
        assert_eq!(e["type"], kind);
        assert_eq!(e["correlation_id"], "req-e2e-1");
        assert_eq!(e["_msg_id"], e["id"]);
    }

    // giftcode-svc's own record is settled by asking the ledger (§7 step
    // 4): it says credited, with the ledger's transaction, within seconds.
    let get = json!({ "id": body["id"] }).to_string();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let reply = client
            .request("giftcode.redemptions.get", get.clone().into())
            .await
            .expect("giftcode.redemptions.get");
        let r: Value = serde_json::from_slice(&reply.payload).expect("json");
        if r["status"] == "credited" {
            assert_eq!(r["transaction_id"], body["wallet"]["transaction_id"], "{r}");
            break;
        }
        assert_eq!(r["status"], "pending", "{r}");
        assert!(Instant::now() < deadline, "giftcode-svc never settled: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_while_wallet_is_down_then_credited_once() {
    let mut s = Stack::start(&[("GATEWAY_REDEEM_TIMEOUT_MS", "1000")]).await;
    let group = s
        .create_group(json!({"name": "G", "kind": "unique", "amount": 700, "count": 1}))
        .await;
    let code = group["codes"][0].as_str().expect("code").to_owned();
    s.kill_wallet();

    let (status, body, headers) = s.redeem(&code, &phone(1)).await;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["status"], "pending");
    assert_eq!(body["wallet"], Value::Null);
    let location = headers["location"].to_str().expect("location").to_owned();
    assert_eq!(
        location,
        format!("/api/v1/redemptions/{}", body["id"].as_str().expect("id"))
    );
    // What anyone polling the `Location` sees (a public route, no token).
    let (http, url) = (s.http.clone(), format!("{}{location}", s.base));
    let poll = || async {
        http.get(&url)
            .send()
            .await
            .expect("get")
            .json::<Value>()
            .await
            .expect("json")
    };
    assert_eq!(poll().await["status"], "pending");
    // With the ledger's owner away there is nothing to reconcile against.
    let (status, report) = s.get_json("/reconciliation").await;
    assert_eq!(
        (status, report["code"].as_str()),
        (503, Some("service_unavailable"))
    );

    s.start_wallet();
    let deadline = Instant::now() + Duration::from_secs(60);
    let credited = loop {
        let r = poll().await;
        if r["status"] == "credited" {
            break r;
        }
        assert!(Instant::now() < deadline, "never credited: {r}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(credited["wallet"]["balance"], 700);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let (_, wallet) = s.get_json(&format!("/wallets/{}", phone(1))).await;
    assert_eq!(wallet["balance"], 700, "credited exactly once");
    let (_, txs) = s
        .get_json(&format!("/wallets/{}/transactions", phone(1)))
        .await;
    assert_eq!(txs["items"].as_array().map(Vec::len), Some(1));
    let (_, report) = s.get_json("/reconciliation").await;
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(
        (report["redemptions"].clone(), report["credits"].clone()),
        (json!(1), json!(1))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn giftcode_gone_is_503_and_records_nothing() {
    let mut s = Stack::start(&[]).await;
    let group = s
        .create_group(json!({"name": "G", "kind": "unique", "amount": 5, "count": 1}))
        .await;
    let code = group["codes"][0].as_str().expect("code").to_owned();
    s.kill_giftcode();
    // The broker drops a killed process's subscriptions when it reads the
    // closed socket, a moment after the kill (under CI load, once, after the
    // request had gone to the dead subscription and waited out the 30 s).
    // Wait until it says nobody serves giftcode, then time the redeem.
    let ops = s.nats.connect_as("ops").await;
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        // A ping that reaches the dead subscription waits: bound it.
        let ping = tokio::time::timeout(
            Duration::from_millis(500),
            ops.request("$SRV.PING.giftcode", "".into()),
        )
        .await;
        if let Ok(Err(e)) = ping
            && e.kind() == async_nats::RequestErrorKind::NoResponders
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "giftcode-svc still answers after its kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let started = Instant::now();
    let (status, body, _) = s.redeem(&code, &phone(2)).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["code"], "service_unavailable");
    // The redeem timeout is 30 s here: an answer well before it can only come
    // from NATS's no-responders status, not from waiting. (It is typically a
    // few milliseconds; the bound is loose so a loaded machine cannot fail it.)
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "503 comes at once: {:?}",
        started.elapsed()
    );

    s.start_giftcode();
    s.wait_ready().await;
    let (_, g) = s
        .get_json(&format!(
            "/gift-groups/{}",
            group["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(g["stats"]["redemptions"], 0, "nothing was recorded");
    let (status, _, _) = s.redeem(&code, &phone(2)).await;
    assert_eq!(status, 200, "the code is still good");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_redeems_get_their_codes() {
    let s = Stack::start(&[]).await;
    let group = s
        .create_group(json!({"name": "G", "kind": "unique", "amount": 5, "count": 1}))
        .await;
    let code = group["codes"][0].as_str().expect("code").to_owned();
    let post = |body: String, ctype: &'static str| {
        s.http
            .post(s.url("/redemptions"))
            .header("content-type", ctype)
            .body(body)
            .send()
    };
    let cases: Vec<(String, &str, u16, &str)> = vec![
        (
            json!({"code": code, "phone": "12"}).to_string(),
            "application/json",
            422,
            "invalid_phone",
        ),
        (
            json!({"code": "", "phone": phone(1)}).to_string(),
            "application/json",
            422,
            "invalid_code",
        ),
        (
            json!({"code": "!!!!", "phone": phone(1)}).to_string(),
            "application/json",
            422,
            "invalid_code",
        ),
        (
            json!({"code": "ZZZZ-ZZZZ-ZZZZ", "phone": phone(1)}).to_string(),
            "application/json",
            404,
            "code_not_found",
        ),
        (
            json!({"code": code, "phone": phone(1), "extra": 1}).to_string(),
            "application/json",
            422,
            "validation_failed",
        ),
        (
            json!({"code": code}).to_string(),
            "application/json",
            422,
            "validation_failed",
        ),
        (
            "{\"code\": ".to_owned(),
            "application/json",
            400,
            "malformed_json",
        ),
        (
            json!({"code": code, "phone": phone(1)}).to_string(),
            "text/plain",
            415,
            "unsupported_media_type",
        ),
        (
            format!(
                "{{\"code\": \"{}\", \"phone\": \"x\"}}",
                "A".repeat(100_000)
            ),
            "application/json",
            413,
            "payload_too_large",
        ),
    ];
    // An oversized body is answered, not cut off: the gateway reads it off
    // the connection before its 413, so the client (still sending) does not
    // lose the answer to a reset.
    let big = format!("{{\"pad\": \"{}\"}}", "x".repeat(300_000));
    for i in 0..200 {
        let r = post(big.clone(), "application/json")
            .await
            .unwrap_or_else(|e| panic!("oversized body {i} got no answer: {e}"));
        assert_eq!(r.status(), 413);
    }
    for (body, ctype, status, word) in cases {
        let r = post(body.clone(), ctype).await.expect("send");
        assert_eq!(r.status().as_u16(), status, "{word}");
        assert_eq!(r.headers()["content-type"], "application/problem+json");
        assert!(r.headers().contains_key("x-request-id"));
        let problem: Value = r.json().await.expect("json");
        assert_eq!(problem["code"], word);
        assert_eq!(problem["status"], status);
        for field in ["type", "title", "detail"] {
            assert!(problem[field].is_string(), "{word} lacks {field}");
        }
    }
    let (_, g) = s
        .get_json(&format!(
            "/gift-groups/{}",
            group["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(
        g["stats"]["redemptions"], 0,
        "no refused request recorded anything"
    );
}
