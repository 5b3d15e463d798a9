//! The broker's permissions with the real services running. Every test here
//! runs the services as their own NATS users (and `Stack` fails a test whose
//! services were refused anything); this one shows what the users cannot do,
//! by the server's own permission errors.

use serde_json::json;
use shared_events::{
    Envelope,
    events::CodeRedeemed,
    subjects::{GIFTCODE_EVENTS_STREAM, events, giftcode},
};

use crate::helpers::{Stack, phone};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_user_cannot_forge_events_or_take_anothers_requests() {
    let s = Stack::start(&[]).await;
    let group = s
        .create_group(json!({"name": "Perms", "kind": "unique", "amount": 500, "count": 2}))
        .await;
    let code = |i: usize| group["codes"][i].as_str().expect("code").to_owned();
    let (status, body, _) = s.redeem(&code(0), &phone(1)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("credited")));

    // With the gateway's credentials: a code.redeemed that wallet-svc would
    // apply (a credit of 500 to phone 2), refused by the broker.
    let (gateway, mut refused) = s.nats.watch_as("gateway").await;
    let forged = Envelope::new(
        "giftcode-svc",
        None,
        CodeRedeemed {
            redemption_id: shared_events::RedemptionId::generate(),
            group_id: group["id"].as_str().expect("id").parse().expect("uuid"),
            code_id: shared_events::CodeId::generate(),
            code_hint: "GIFT-****-****-0000".into(),
            phone: phone(2).parse().expect("phone"),
            amount: shared_events::Amount::new(500).expect("amount"),
            currency: "USD".parse().expect("USD"),
            redeemed_at: chrono::Utc::now(),
        },
    );
    let payload = serde_json::to_vec(&forged).expect("json");
    gateway
        .publish(events::CODE_REDEEMED, payload.into())
        .await
        .expect("sent");
    gateway.flush().await.expect("flush");
    refused
        .expect_violation("Publish", events::CODE_REDEEMED)
        .await;

    // With wallet-svc's credentials: a share of giftcode.redeem's requests
    // (a subscriber in the services' queue group), refused.
    let (wallet, mut refused) = s.nats.watch_as("wallet").await;
    let _stolen = wallet
        .queue_subscribe(giftcode::REDEEM, "q".into())
        .await
        .expect("sent");
    wallet.flush().await.expect("flush");
    refused
        .expect_violation("Subscription", giftcode::REDEEM)
        .await;

    // giftcode-svc still answers every redeem, and only the real
    // redemptions reached the stream and the ledger.
    let (status, body, _) = s.redeem(&code(1), &phone(3)).await;
    assert_eq!((status, body["status"].as_str()), (200, Some("credited")));
    let ops = s.nats.connect_as("ops").await;
    let redeemed =
        testkit::bus::stream_messages(&ops, GIFTCODE_EVENTS_STREAM, events::CODE_REDEEMED).await;
    let phones: Vec<_> = redeemed
        .iter()
        .map(|e| e["data"]["phone"].clone())
        .collect();
    assert_eq!(phones, vec![json!(phone(1)), json!(phone(3))]);
    let (status, _) = s.get_json(&format!("/wallets/{}", phone(2))).await;
    assert_eq!(status, 404, "the forged credit was not made");
    let (_, wallet) = s.get_json(&format!("/wallets/{}", phone(1))).await;
    assert_eq!(wallet["balance"], 500);
}
