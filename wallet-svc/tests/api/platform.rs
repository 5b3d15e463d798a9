//! giftcode-svc and wallet-svc together: redemptions through `giftcode.redeem`
//! come back with their credit notice, every one is credited exactly once, and
//! each group's redeemed amount equals what its funding account paid.

use std::{sync::Arc, time::Duration};

use futures::{StreamExt, future::join_all};
use serde_json::json;
use shared_events::{
    Page,
    giftcode::{Group, RedeemInbox, RedeemReply, Redemption, RedemptionStatus},
    subjects::{giftcode as gc, wallet as ep},
    wallet::{CreditNotice, Funding, Wallet},
};
use svc_kit::nats::{ServiceClient, decode_reply};
use tokio::sync::Semaphore;

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(five_hundred_redemptions_credited_once);

/// Redeems and waits for both answers: the redemption, and the credit notice
/// wallet-svc sends to the same inbox (in either order).
async fn redeem(
    client: &ServiceClient,
    code: &str,
    phone: &str,
) -> (RedeemReply, Option<CreditNotice>) {
    let mut sub = client
        .call_stream(gc::REDEEM, &json!({"code": code, "phone": phone}), None)
        .await
        .expect("request");
    let (mut reply, mut notice) = (None, None);
    while reply.is_none() || notice.is_none() {
        let Ok(Some(msg)) = tokio::time::timeout(Duration::from_secs(20), sub.next()).await else {
            break;
        };
        // One tagged enum on the inbox: each message says what it is.
        match decode_reply::<RedeemInbox>(gc::REDEEM, &msg).expect("redeem inbox") {
            RedeemInbox::Credited(n) => notice = Some(n),
            RedeemInbox::Redeemed(r) => reply = Some(r),
        }
    }
    (reply.expect("a redeem reply"), notice)
}

async fn five_hundred_redemptions_credited_once(backend: Backend) {
    let p = Platform::start(backend, true).await;
    let (group, codes) = testkit::bus::create_group(
        &p.client,
        json!({"name": "Five hundred", "kind": "unique", "amount": 100, "count": 500}),
    )
    .await
    .expect("created");
    let limit = Arc::new(Semaphore::new(32));
    let results = join_all(codes.iter().enumerate().map(|(i, code)| {
        let (client, limit, code) = (p.client.clone(), limit.clone(), code.clone());
        tokio::spawn(async move {
            let _permit = limit.acquire().await.expect("permit");
            redeem(&client, &code, &phone(i)).await
        })
    }))
    .await;
    let mut notices = 0;
    for (i, r) in results.into_iter().enumerate() {
        let (reply, notice) = r.expect("task");
        assert!(!reply.replayed);
        if let Some(n) = notice {
            assert_eq!(n.redemption_id, reply.redemption.id);
            assert_eq!(n.phone, phone(i));
            assert_eq!(n.balance, 100);
            notices += 1;
        }
    }
    assert_eq!(notices, 500, "every caller heard of its credit");

    // Quiet: giftcode-svc has seen every wallet.credited.
    let client = p.client.clone();
    let gid = group.id;
    eventually(
        Duration::from_secs(60),
        "all redemptions marked credited",
        || {
            let client = client.clone();
            async move {
                let page: Page<Redemption> = client
                    .call(
                        gc::REDEMPTIONS_LIST,
                        &json!({"group_id": gid, "limit": 500}),
                        None,
                    )
                    .await
                    .expect("list");
                page.items.len() == 500
                    && page.items.iter().all(|r| {
                        r.status == RedemptionStatus::Credited && r.transaction_id.is_some()
                    })
            }
        },
    )
    .await;
    let group: Group = p
        .call(gc::GROUPS_GET, json!({"id": gid}))
        .await
        .expect("group");
    let funding: Funding = p
        .call(ep::FUNDING_GET, json!({"group_id": gid}))
        .await
        .expect("funding");
    assert_eq!(group.stats.redeemed_amount, 50_000);
    assert_eq!(
        funding.debited, group.stats.redeemed_amount,
        "redeemed = paid out"
    );
    assert_eq!(funding.transfers, 500);
    let wallets: Page<Wallet> = p
        .call(ep::WALLETS_LIST, json!({"limit": 500}))
        .await
        .expect("wallets");
    assert_eq!(wallets.items.len(), 500);
    assert!(wallets.items.iter().all(|w| w.balance == 100));
    let check = p.assert_ledger_consistent().await;
    assert_eq!(check.transfers, 500);
}
