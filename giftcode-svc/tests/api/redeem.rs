//! The redeem path: matching, replays, refusals, windows, and its event.

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use shared_events::{
    giftcode::{Redemption, RedemptionStatus},
    subjects::{events, giftcode as ep},
};

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(
    redeem_credits_once_and_replays,
    refusals_follow_the_group,
    per_phone_limit_holds
);

async fn redeem_credits_once_and_replays(backend: Backend) {
    let app = spawn_app(backend).await;
    let (group, codes) = app
        .create_group(json!({"name": "G", "kind": "unique", "amount": 250, "count": 2}))
        .await
        .expect("created");
    // Typed sloppily: lower case, spaces, O for 0, L for 1.
    let sloppy = codes[0]
        .to_lowercase()
        .replace('-', " ")
        .replace('0', "o")
        .replace('1', "l");
    let first = app.redeem(&sloppy, "+14155552671").await.expect("redeemed");
    assert!(!first.replayed);
    let r = &first.redemption;
    assert_eq!(r.phone, "+14155552671");
    assert_eq!(r.amount, 250);
    assert_eq!(r.currency, "USD");
    assert_eq!(r.group_id, group.id);
    assert_eq!(r.status, RedemptionStatus::Pending);
    assert_eq!(r.code_hint, format!("****-****-{}", &codes[0][10..]));

    let replay = app.redeem(&codes[0], "+14155552671").await.expect("replay");
    assert!(replay.replayed);
    assert_eq!(
        replay.redemption.id, r.id,
        "the original redemption comes back"
    );

    let other = app.redeem(&codes[0], &phone(7)).await.expect_err("taken");
    assert_eq!(other.code().as_str(), "code_already_redeemed");

    let got: Redemption = app
        .call(ep::REDEMPTIONS_GET, json!({"id": r.id}))
        .await
        .expect("get");
    assert_eq!(&got, r);

    app.wait_outbox_drained(Duration::from_secs(20)).await;
    let redeemed = app.events(events::CODE_REDEEMED).await;
    assert_eq!(
        redeemed.len(),
        1,
        "one event for one redemption, none for the replay"
    );
    let e = &redeemed[0];
    assert_eq!(e["type"], "giftcode.code.redeemed");
    assert_eq!(e["version"], 1);
    assert_eq!(e["correlation_id"], "test-request-id");
    assert_eq!(e["_msg_id"], e["id"]);
    let d = &e["data"];
    assert_eq!(d["redemption_id"], r.id.to_string());
    assert_eq!(d["group_id"], group.id.to_string());
    assert_eq!(d["code_id"], r.code_id.to_string());
    assert_eq!(d["code_hint"], r.code_hint);
    assert_eq!(d["phone"], "+14155552671");
    assert_eq!(d["amount"], 250);
    assert_eq!(d["currency"], "USD");
    assert!(
        d["redeemed_at"].as_str().is_some_and(|t| t.ends_with('Z')),
        "RFC 3339 UTC: {d}"
    );
}

async fn refusals_follow_the_group(backend: Backend) {
    let app = spawn_app(backend).await;
    let (group, codes) = app
        .create_group(json!({"name": "G", "kind": "unique", "amount": 5, "count": 3}))
        .await
        .expect("created");
    let _: serde_json::Value = app
        .call(ep::GROUPS_UPDATE, json!({"id": group.id, "active": false}))
        .await
        .expect("deactivate");
    let err = app
        .redeem(&codes[0], &phone(1))
        .await
        .expect_err("inactive");
    assert_eq!(err.code().as_str(), "code_inactive");
    let _: serde_json::Value = app
        .call(ep::GROUPS_UPDATE, json!({"id": group.id, "active": true}))
        .await
        .expect("activate");
    app.redeem(&codes[0], &phone(1))
        .await
        .expect("active again");

    let tomorrow = Utc::now() + chrono::Duration::days(1);
    let (_, later) = app
        .create_group(
            json!({"name": "Later", "kind": "unique", "amount": 5, "count": 1,
                             "starts_at": tomorrow}),
        )
        .await
        .expect("scheduled");
    let err = app.redeem(&later[0], &phone(1)).await.expect_err("not yet");
    assert_eq!(err.code().as_str(), "code_not_yet_active");

    let soon = Utc::now() + chrono::Duration::milliseconds(1500);
    let (_, brief) = app
        .create_group(
            json!({"name": "Brief", "kind": "unique", "amount": 5, "count": 1,
                             "expires_at": soon}),
        )
        .await
        .expect("expiring");
    while Utc::now() < soon {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let err = app.redeem(&brief[0], &phone(1)).await.expect_err("expired");
    assert_eq!(err.code().as_str(), "code_expired");

    let err = app
        .redeem("ZZZZ-ZZZZ-ZZZZ", &phone(1))
        .await
        .expect_err("unknown");
    assert_eq!(err.code().as_str(), "code_not_found");
    assert_eq!(
        app.counts().await[2],
        1,
        "only the one redemption was recorded"
    );
}

async fn per_phone_limit_holds(backend: Backend) {
    let app = spawn_app(backend).await;
    let (_, codes) = app
        .create_group(
            json!({"name": "G", "kind": "unique", "amount": 5, "count": 4, "per_phone_limit": 2}),
        )
        .await
        .expect("created");
    app.redeem(&codes[0], &phone(1)).await.expect("1st");
    app.redeem(&codes[1], &phone(1)).await.expect("2nd");
    let err = app.redeem(&codes[2], &phone(1)).await.expect_err("3rd");
    assert_eq!(err.code().as_str(), "per_phone_limit_reached");
    // The refused attempt did not burn the code.
    app.redeem(&codes[2], &phone(2))
        .await
        .expect("another phone");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_mode_works() {
    let nats = testkit::NatsServer::start();
    let config = config(&nats.url(), "sqlite::memory:", Backend::Sqlite);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(giftcode_svc::run(config, listener, async {
        let _ = rx.await;
    }));
    let client = connect(&nats.url()).await;
    let mut created = None;
    for _ in 0..100 {
        match create_group_with(
            &client,
            json!({"name": "M", "kind": "unique", "amount": 1, "count": 1}),
        )
        .await
        {
            Ok(c) => {
                created = Some(c);
                break;
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    }
    let (_, codes) = created.expect("memory service answers");
    let reply: shared_events::giftcode::RedeemReply = client
        .call(
            ep::REDEEM,
            &json!({"code": codes[0], "phone": phone(1)}),
            None,
        )
        .await
        .expect("redeemed");
    assert!(!reply.replayed);
    let _ = tx.send(());
    task.await.expect("join").expect("clean stop");
}
