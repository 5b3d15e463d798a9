//! Exactly once in effect (DESIGN.md §6): the same `code.redeemed` delivered
//! again, republished under a new message id or a new event id, or redelivered
//! after a consumer died between commit and ack, credits once.

use std::{
    process::{Command, Stdio},
    time::Duration,
};

use async_nats::jetstream::{self, message::PublishMessage};
use chrono::Utc;
use serde_json::json;
use shared_events::{
    Amount, CodeId, Envelope, GroupId, RedemptionId,
    events::CodeRedeemed,
    reconciliation::ItemPage,
    subjects::{GIFTCODE_EVENTS_STREAM, WALLET_EVENTS_STREAM, events, wallet as ep},
    wallet::{CreditNotice, Funding, Transaction},
};
use uuid::Uuid;

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(
    duplicates_credit_once,
    a_backlog_is_credited_in_batches_once_each,
    redelivery_after_a_crash_credits_once
);

fn redeemed(phone: &str, amount: i64) -> Envelope<CodeRedeemed> {
    Envelope::new(
        "giftcode-svc",
        Some("req-1".into()),
        CodeRedeemed {
            redemption_id: RedemptionId::generate(),
            group_id: GroupId::generate(),
            code_id: CodeId::generate(),
            code_hint: "****-****-7KQ2".into(),
            phone: phone.parse().expect("phone"),
            amount: Amount::new(amount).expect("amount"),
            currency: "USD".parse().expect("USD"),
            redeemed_at: Utc::now(),
        },
    )
}

async fn publish(client: &async_nats::Client, msg_id: &str, payload: Vec<u8>) {
    let js = jetstream::new(client.clone());
    js.send_publish(
        events::CODE_REDEEMED,
        PublishMessage::build()
            .payload(payload.into())
            .message_id(msg_id),
    )
    .await
    .expect("publish")
    .await
    .expect("ack");
}

/// Waits until the consumer has acked everything in the stream.
async fn wait_consumed(client: &async_nats::Client) {
    let js = jetstream::new(client.clone());
    eventually(Duration::from_secs(30), "consumer caught up", || {
        let js = js.clone();
        async move {
            let Ok(stream) = js.get_stream(GIFTCODE_EVENTS_STREAM).await else {
                return false;
            };
            let Ok(mut c) = stream
                .get_consumer::<jetstream::consumer::pull::Config>(wallet_svc::REDEMPTIONS_CONSUMER)
                .await
            else {
                return false;
            };
            c.info()
                .await
                .is_ok_and(|i| i.num_pending == 0 && i.num_ack_pending == 0)
        }
    })
    .await;
}

async fn duplicates_credit_once(backend: Backend) {
    let p = Platform::start(backend, false).await;
    let client = p.client.nats().clone();
    let who = phone(5);
    let event = redeemed(&who, 700);
    let bytes = serde_json::to_vec(&event).expect("json");
    publish(&client, &event.id.to_string(), bytes.clone()).await;
    // The same event under a new message id (JetStream keeps both).
    publish(&client, "another-msg-id", bytes).await;
    // The same redemption under a new event id.
    let mut again = event.clone();
    again.id = Uuid::now_v7();
    publish(
        &client,
        &again.id.to_string(),
        serde_json::to_vec(&again).expect("json"),
    )
    .await;
    // An unreadable message is set aside and does not block the ones after it.
    publish(&client, "garbage", b"{not an event".to_vec()).await;
    let other = redeemed(&phone(6), 1);
    publish(
        &client,
        &other.id.to_string(),
        serde_json::to_vec(&other).expect("json"),
    )
    .await;
    wait_consumed(&client).await;

    assert_eq!(p.wallet(&who).await.balance, 700, "credited once");
    assert_eq!(p.wallet(&phone(6)).await.balance, 1);
    let txs: shared_events::Page<Transaction> = p
        .call(ep::TRANSACTIONS_LIST, json!({"phone": who}))
        .await
        .expect("txs");
    assert_eq!(txs.items.len(), 1);
    assert_eq!(txs.items[0].reference, event.data.redemption_id.to_string());
    let funding: Funding = p
        .call(ep::FUNDING_GET, json!({"group_id": event.data.group_id}))
        .await
        .expect("funding");
    assert_eq!((funding.debited, funding.transfers), (700, 1));
    // The ledger answers for the redemption's credit, and only for a credit
    // that was made.
    let credit: CreditNotice = p
        .call(
            ep::REDEMPTIONS_GET,
            json!({"redemption_id": event.data.redemption_id}),
        )
        .await
        .expect("credit");
    assert_eq!(
        (credit.transaction_id, credit.phone.as_str(), credit.balance),
        (txs.items[0].id, who.as_str(), 700)
    );
    let none = p
        .call::<CreditNotice>(
            ep::REDEMPTIONS_GET,
            json!({"redemption_id": Uuid::now_v7()}),
        )
        .await
        .expect_err("no such credit");
    assert_eq!(none.code(), shared_events::ErrorCode::NotFound);
    // The reconciliation walk, a page of one at a time: both credits, in
    // redemption-id order, and nothing after.
    let mut walked = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page: ItemPage = p
            .call(ep::RECONCILIATION_PAGE, json!({"limit": 1, "after": after}))
            .await
            .expect("page");
        walked.extend(page.items);
        after = page.next;
        if after.is_none() {
            break;
        }
    }
    let mut expected = vec![
        (event.data.redemption_id, event.data.group_id, 700),
        (other.data.redemption_id, other.data.group_id, 1),
    ];
    expected.sort();
    let walked: Vec<_> = walked
        .iter()
        .map(|i| (i.redemption_id, i.group_id, i.amount.get()))
        .collect();
    assert_eq!(walked, expected);
    p.assert_ledger_consistent().await;
    let credited =
        testkit::bus::wait_for_events(&client, WALLET_EVENTS_STREAM, events::WALLET_CREDITED, 2)
            .await;
    let for_event: Vec<_> = credited
        .iter()
        .filter(|e| e["data"]["cause"]["id"] == event.data.redemption_id.to_string())
        .collect();
    assert_eq!(for_event.len(), 1, "one wallet.credited for the redemption");
    assert_eq!(for_event[0]["data"]["balance_after"], 700);
    assert_eq!(
        for_event[0]["correlation_id"], "req-1",
        "the correlation id travels on"
    );
}

/// Events that piled up while wallet-svc was down arrive in one fetch and are
/// applied in one transaction: every one credits once, a phone credited twice
/// in the batch sees both, a duplicate inside the batch changes nothing, and an
/// unreadable message in the middle is set aside without failing the rest.
async fn a_backlog_is_credited_in_batches_once_each(backend: Backend) {
    let mut p = Platform::start(backend, false).await;
    let client = p.client.nats().clone();
    p.stop_wallet().await;
    let mut events = Vec::new();
    for i in 0..120 {
        // Phones 0..100, and phones 0..20 a second time.
        events.push(redeemed(&phone(i % 100), 10 + i as i64));
    }
    for (i, e) in events.iter().enumerate() {
        let bytes = serde_json::to_vec(e).expect("json");
        publish(&client, &e.id.to_string(), bytes.clone()).await;
        if i == 60 {
            publish(&client, "garbage-in-batch", b"[1, 2".to_vec()).await;
            // The same event again, under another message id.
            publish(&client, "dup-in-batch", bytes).await;
        }
    }
    p.start_wallet().await;
    wait_consumed(&client).await;
    for who in 0..100 {
        let expected: i64 = events
            .iter()
            .enumerate()
            .filter(|(i, _)| i % 100 == who)
            .map(|(_, e)| e.data.amount.get())
            .sum();
        assert_eq!(p.wallet(&phone(who)).await.balance, expected, "phone {who}");
    }
    let check = p.assert_ledger_consistent().await;
    assert_eq!(check.transfers, 120, "one transfer per event: {check:?}");
    let credited =
        testkit::bus::wait_for_events(&client, WALLET_EVENTS_STREAM, events::WALLET_CREDITED, 120)
            .await;
    assert_eq!(credited.len(), 120, "one wallet.credited per event");
}

/// The real binary, told to exit right after committing a credit and before
/// acking it; restarted, it receives the event again and changes nothing.
async fn redelivery_after_a_crash_credits_once(backend: Backend) {
    let mut p = Platform::start(backend, false).await;
    p.stop_wallet().await;
    let client = p.client.nats().clone();
    let who = phone(7);
    let event = redeemed(&who, 250);
    publish(
        &client,
        &event.id.to_string(),
        serde_json::to_vec(&event).expect("json"),
    )
    .await;

    let binary = |crash: bool| {
        Command::new(env!("CARGO_BIN_EXE_wallet-svc"))
            .env("NATS_URL", p.nats.url())
            .env("WALLET_DATABASE_URL", &p.wallet_config.kit.database_url)
            .env("WALLET_HTTP_ADDR", "127.0.0.1:0")
            .env("WALLET_CONSUMER_ACK_WAIT_MS", "1000")
            .env("WALLET_FAULT_CRASH_AFTER_COMMIT", crash.to_string())
            .env("RUST_LOG", "error")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start wallet-svc")
    };
    let mut crashing = binary(true);
    let status = tokio::task::spawn_blocking(move || crashing.wait())
        .await
        .expect("join")
        .expect("wait");
    assert_eq!(status.code(), Some(70), "it died between commit and ack");

    let mut second = binary(false);
    wait_consumed(&client).await;
    let js = jetstream::new(client.clone());
    let mut consumer = js
        .get_stream(GIFTCODE_EVENTS_STREAM)
        .await
        .expect("stream")
        .get_consumer::<jetstream::consumer::pull::Config>(wallet_svc::REDEMPTIONS_CONSUMER)
        .await
        .expect("consumer");
    let info = consumer.info().await.expect("info");
    assert!(
        info.delivered.consumer_sequence >= 2,
        "the event was delivered again: {info:?}"
    );
    p.start_wallet().await;
    assert_eq!(p.wallet(&who).await.balance, 250, "credited once");
    p.assert_ledger_consistent().await;
    let _ = second.kill();
    let _ = second.wait();
}
