//! Wallets, admin credits and debits: idempotency, overdraft races, errors.

use std::sync::Arc;

use futures::future::join_all;
use serde_json::json;
use shared_events::{
    ErrorCode, Page,
    subjects::{WALLET_EVENTS_STREAM, events, wallet as ep},
    wallet::{Direction, Transaction, Wallet},
};
use tokio::sync::Barrier;

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(
    the_ledger_check_finds_an_account_its_transfers_do_not_explain,
    admin_moves_are_idempotent,
    concurrent_debits_never_overdraw,
    wallets_and_bad_input
);

async fn admin_moves_are_idempotent(backend: Backend) {
    let p = Platform::start(backend, false).await;
    let who = phone(1);
    let first = p.credit(&who, 1000, "k1").await.expect("credit");
    assert!(!first.replayed);
    assert_eq!(first.transaction.balance_after, 1000);
    assert_eq!(first.transaction.direction, Direction::Credit);
    let again = p.credit(&who, 1000, "k1").await.expect("replay");
    assert!(again.replayed);
    assert_eq!(
        again.transaction.id, first.transaction.id,
        "the original transaction"
    );
    let err = p.credit(&who, 999, "k1").await.expect_err("other body");
    assert_eq!(err.code(), ErrorCode::IdempotencyConflict);
    let err = p
        .debit(&who, 1000, "k1")
        .await
        .expect_err("same key, a debit");
    assert_eq!(err.code(), ErrorCode::IdempotencyConflict);

    // Twenty concurrent credits under one key make one transaction.
    let barrier = Arc::new(Barrier::new(20));
    let replies = join_all((0..20).map(|_| {
        let (client, barrier, who) = (p.client.clone(), barrier.clone(), who.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            client
                .call::<_, shared_events::wallet::MoveReply>(
                    ep::CREDITS_CREATE,
                    &json!({"phone": who, "amount": 50, "idempotency_key": "k-race"}),
                    None,
                )
                .await
                .expect("credit")
        })
    }))
    .await;
    let ids: std::collections::HashSet<_> = replies
        .into_iter()
        .map(|r| r.expect("task").transaction.id)
        .collect();
    assert_eq!(ids.len(), 1, "one transaction for one key");
    assert_eq!(p.wallet(&who).await.balance, 1050);

    let d = p.debit(&who, 300, "k2").await.expect("debit");
    assert_eq!(d.transaction.balance_after, 750);
    assert_eq!(d.transaction.direction, Direction::Debit);
    assert_eq!(
        p.debit(&who, 300, "k2")
            .await
            .expect("replay")
            .transaction
            .id,
        d.transaction.id
    );
    let err = p.debit(&who, 10_000, "k3").await.expect_err("too much");
    assert_eq!(err.code(), ErrorCode::InsufficientFunds);
    let err = p.debit(&phone(2), 1, "k4").await.expect_err("no wallet");
    assert_eq!(err.code(), ErrorCode::WalletNotFound);
    assert_eq!(p.wallet(&who).await.balance, 750);

    let txs: Page<Transaction> = p
        .call(ep::TRANSACTIONS_LIST, json!({"phone": who}))
        .await
        .expect("transactions");
    let seen: Vec<(i64, i64)> = txs
        .items
        .iter()
        .map(|t| (t.amount.get(), t.balance_after))
        .collect();
    assert_eq!(
        seen,
        vec![(300, 750), (50, 1050), (1000, 1000)],
        "newest first"
    );
    let check = p.assert_ledger_consistent().await;
    assert_eq!(check.transfers, 3);

    let client = p.client.nats().clone();
    let credited =
        testkit::bus::wait_for_events(&client, WALLET_EVENTS_STREAM, events::WALLET_CREDITED, 2)
            .await;
    assert_eq!(credited.len(), 2);
    assert_eq!(credited[0]["data"]["cause"]["type"], "admin_credit");
    assert_eq!(credited[0]["correlation_id"], "test-request-id");
    let debited =
        testkit::bus::wait_for_events(&client, WALLET_EVENTS_STREAM, events::WALLET_DEBITED, 1)
            .await;
    assert_eq!(debited.len(), 1);
    assert_eq!(debited[0]["data"]["balance_after"], 750);
    // One event per credit: the credit that opened the wallet says so,
    // instead of a wallet.created of its own.
    assert_eq!(credited[0]["data"]["created"], true);
    assert_eq!(credited[1]["data"]["created"], false);
    let created =
        testkit::bus::stream_messages(&client, WALLET_EVENTS_STREAM, events::WALLET_CREATED).await;
    assert!(created.is_empty(), "{created:?}");
}

async fn concurrent_debits_never_overdraw(backend: Backend) {
    let p = Platform::start(backend, false).await;
    let who = phone(3);
    p.credit(&who, 5000, "fund").await.expect("credit");
    let barrier = Arc::new(Barrier::new(100));
    let results = join_all((0..100).map(|i| {
        let (client, barrier, who) = (p.client.clone(), barrier.clone(), who.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            client
                .call::<_, shared_events::wallet::MoveReply>(
                    ep::DEBITS_CREATE,
                    &json!({"phone": who, "amount": 100 + (i % 3), "idempotency_key": format!("d{i}")}),
                    None,
                )
                .await
        })
    }))
    .await;
    let mut spent = 0;
    let mut refused = 0;
    for r in results {
        match r.expect("task") {
            Ok(reply) => {
                assert!(reply.transaction.balance_after >= 0);
                spent += reply.transaction.amount.get();
            }
            Err(e) => {
                assert_eq!(e.code(), ErrorCode::InsufficientFunds);
                refused += 1;
            }
        }
    }
    let wallet: Wallet = p.wallet(&who).await;
    assert!(wallet.balance >= 0);
    assert_eq!(
        wallet.balance,
        5000 - spent,
        "balance is what the successful debits left"
    );
    assert!(
        refused > 0 && wallet.balance < 102,
        "the wallet was drained: {wallet:?}"
    );
    let txs: Page<Transaction> = p
        .call(ep::TRANSACTIONS_LIST, json!({"phone": who, "limit": 500}))
        .await
        .expect("transactions");
    assert_eq!(txs.items.len() as i64, 1 + (100 - refused));
    p.assert_ledger_consistent().await;
}

async fn wallets_and_bad_input(backend: Backend) {
    let p = Platform::start(backend, false).await;
    let w: Wallet = p
        .call(ep::WALLETS_CREATE, json!({"phone": "+14155550001"}))
        .await
        .expect("create");
    assert_eq!(
        (w.phone.as_str(), w.balance, w.currency.as_str()),
        ("+14155550001", 0, "USD")
    );
    for i in 2..6 {
        let _: Wallet = p
            .call(ep::WALLETS_CREATE, json!({"phone": phone(i)}))
            .await
            .expect("create");
    }
    let before = p.assert_ledger_consistent().await;
    let cases = [
        (
            ep::WALLETS_CREATE,
            json!({"phone": phone(1)}),
            ErrorCode::WalletExists,
        ),
        (
            ep::WALLETS_CREATE,
            json!({"phone": "12"}),
            ErrorCode::InvalidPhone,
        ),
        // On the bus a phone is E.164; national formats are read at the
        // HTTP edge (the gateway), in DEFAULT_REGION.
        (
            ep::WALLETS_CREATE,
            json!({"phone": "(415) 555-0001"}),
            ErrorCode::InvalidPhone,
        ),
        (
            ep::WALLETS_GET,
            json!({"phone": phone(99)}),
            ErrorCode::WalletNotFound,
        ),
        (
            ep::WALLETS_GET,
            json!({"phone": "nope"}),
            ErrorCode::InvalidPhone,
        ),
        (
            ep::WALLETS_LIST,
            json!({"limit": 0}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::WALLETS_LIST,
            json!({"cursor": "x"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::TRANSACTIONS_LIST,
            json!({"phone": phone(99)}),
            ErrorCode::WalletNotFound,
        ),
        (
            ep::TRANSACTIONS_LIST,
            json!({"phone": phone(1), "cursor": "x"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CREDITS_CREATE,
            json!({"phone": phone(1), "amount": 0, "idempotency_key": "a"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CREDITS_CREATE,
            json!({"phone": phone(1), "amount": 1_000_000_000_001_i64, "idempotency_key": "a"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CREDITS_CREATE,
            json!({"phone": phone(1), "amount": 5, "idempotency_key": ""}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CREDITS_CREATE,
            json!({"phone": phone(1), "amount": 5}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CREDITS_CREATE,
            json!({"phone": "x", "amount": 5, "idempotency_key": "a"}),
            ErrorCode::InvalidPhone,
        ),
        (
            ep::DEBITS_CREATE,
            json!({"phone": phone(1), "amount": -5, "idempotency_key": "b"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::DEBITS_CREATE,
            json!({"phone": phone(1), "amount": 5, "idempotency_key": "b"}),
            ErrorCode::InsufficientFunds,
        ),
        // An id that cannot exist is refused where it is read, with the
        // word of its kind: no group has id "nope".
        (
            ep::FUNDING_GET,
            json!({"group_id": "nope"}),
            ErrorCode::GroupNotFound,
        ),
        (
            ep::FUNDING_GET,
            json!({"group_id": 7}),
            ErrorCode::ValidationFailed,
        ),
    ];
    for (subject, body, code) in cases {
        let err = p
            .call::<serde_json::Value>(subject, body.clone())
            .await
            .expect_err("refused");
        assert_eq!(err.code(), code, "{subject} {body}");
    }
    for subject in ep::ALL.iter().filter(|s| **s != ep::LEDGER_CHECK) {
        let msg = p
            .client
            .raw(subject, "{nope".into(), None)
            .await
            .expect("reply");
        let err =
            svc_kit::nats::decode_reply::<serde_json::Value>(subject, &msg).expect_err("malformed");
        assert_eq!(err.code(), ErrorCode::MalformedJson, "{subject}");
    }
    let page: Page<Wallet> = p
        .call(ep::WALLETS_LIST, json!({"limit": 3}))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 3);
    let rest: Page<Wallet> = p
        .call(
            ep::WALLETS_LIST,
            json!({"limit": 3, "cursor": page.next_cursor}),
        )
        .await
        .expect("list");
    assert_eq!(rest.items.len(), 2);
    assert_eq!(rest.next_cursor, None);
    let after = p.assert_ledger_consistent().await;
    assert_eq!(
        (after.accounts, after.transfers),
        (before.accounts, before.transfers),
        "refusals changed nothing"
    );
}

/// `sqlite::memory:` runs the same ledger (DESIGN.md §2).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_mode_works() {
    use clap::Parser;
    let nats = testkit::NatsServer::start();
    let config = wallet_svc::Config::try_parse_from([
        "wallet-svc".to_owned(),
        format!("--nats-url={}", nats.url()),
        "--database-url=sqlite::memory:".to_owned(),
    ])
    .expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(wallet_svc::run(config, listener, async {
        let _ = rx.await;
    }));
    let client = testkit::bus::connect(&nats.url()).await;
    let body = json!({"phone": phone(1), "amount": 42, "idempotency_key": "m1"});
    let mut reply = None;
    for _ in 0..200 {
        if let Ok(r) = client
            .call::<_, shared_events::wallet::MoveReply>(ep::CREDITS_CREATE, &body, None)
            .await
        {
            reply = Some(r);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(
        reply
            .expect("memory wallet answers")
            .transaction
            .balance_after,
        42
    );
    let wallet: Wallet = client
        .call(ep::WALLETS_GET, &json!({"phone": phone(1)}), None)
        .await
        .expect("wallet");
    assert_eq!(wallet.balance, 42);
    let _ = tx.send(());
    task.await.expect("join").expect("clean stop");
}

/// `wallet.ledger.check` compares each account's sums with its transfers:
/// an account whose credits and debits were both raised (its balance, and
/// the sum of all balances, unchanged) is found, and only that one.
async fn the_ledger_check_finds_an_account_its_transfers_do_not_explain(backend: Backend) {
    let p = Platform::start(backend, false).await;
    p.credit(&phone(1), 1000, "k1").await.expect("credit");
    p.credit(&phone(2), 500, "k2").await.expect("credit");
    p.debit(&phone(2), 200, "k3").await.expect("debit");
    p.assert_ledger_consistent().await;

    let db = svc_kit::db::Db::connect(&p.wallet_config.kit.database_url, &wallet_svc::MIGRATIONS)
        .await
        .expect("the wallet database");
    let account: String =
        svc_kit::db::query("SELECT id FROM accounts WHERE kind = 'user' AND credits = 500")
            .fetch_one(&db)
            .await
            .expect("phone 2's account")
            .get("id")
            .expect("id");
    let tampered = account.clone();
    db.write(move |tx| {
        Box::pin(async move {
            svc_kit::db::query(
                "UPDATE accounts SET credits = credits + 7, debits = debits + 7 WHERE id = $1",
            )
            .bind(tampered)
            .execute(tx)
            .await
        })
    })
    .await
    .expect("tamper");
    db.close().await;

    let check: shared_events::wallet::LedgerCheck =
        p.call(ep::LEDGER_CHECK, json!({})).await.expect("check");
    assert!(!check.ok, "{check:?}");
    assert_eq!(check.sum_of_balances, 0, "the balances still sum to zero");
    assert_eq!(check.inconsistent_accounts, vec![account]);
}
