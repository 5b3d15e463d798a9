//! Concurrency: many requests at once must never over-redeem a code, a shared
//! cap or a per-phone limit (DESIGN.md §7 step 2). Every attempt is in flight at
//! the same time; the counts that come back, in replies, in the database and in
//! the event stream, must be exact.

use std::{collections::HashMap, sync::Arc, time::Duration};

use futures::future::join_all;
use serde_json::json;
use shared_events::{
    giftcode::Group,
    subjects::{events, giftcode as ep},
};
use tokio::sync::Barrier;

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(
    unique_codes_race,
    shared_cap_race,
    per_phone_limit_race,
    past_its_bound_a_request_is_refused_at_once
);

/// Fires every `(code, phone)` attempt at once; returns outcome word → count.
async fn race(app: &TestApp, attempts: Vec<(String, String)>) -> HashMap<String, usize> {
    let barrier = Arc::new(Barrier::new(attempts.len()));
    let results = join_all(attempts.into_iter().map(|(code, phone)| {
        let (client, barrier) = (app.client.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let r: Result<shared_events::giftcode::RedeemReply, _> = client
                .call(ep::REDEEM, &json!({"code": code, "phone": phone}), None)
                .await;
            match r {
                Ok(reply) if !reply.replayed => "ok".to_owned(),
                Ok(_) => "replayed".to_owned(),
                Err(e) => e.code().as_str().to_owned(),
            }
        })
    }))
    .await;
    let mut tally = HashMap::new();
    for r in results {
        *tally.entry(r.expect("task")).or_insert(0) += 1;
    }
    tally
}

async fn stats(app: &TestApp, id: shared_events::GroupId) -> Group {
    app.call(ep::GROUPS_GET, json!({"id": id}))
        .await
        .expect("group")
}

async fn unique_codes_race(backend: Backend) {
    let app = spawn_app(backend).await;
    let (group, codes) = app
        .create_group(json!({"name": "Race", "kind": "unique", "amount": 100, "count": 200}))
        .await
        .expect("created");
    let attempts = codes
        .iter()
        .enumerate()
        .flat_map(|(i, c)| (0..5).map(move |k| (c.clone(), phone(i * 5 + k))))
        .collect();
    let tally = race(&app, attempts).await;
    assert_eq!(tally.get("ok"), Some(&200), "{tally:?}");
    assert_eq!(tally.get("code_already_redeemed"), Some(&800), "{tally:?}");
    let g = stats(&app, group.id).await;
    assert_eq!(g.stats.redemptions, 200);
    assert_eq!(g.stats.redeemed_codes, 200);
    assert_eq!(g.stats.redeemed_amount, 20_000);
    app.wait_outbox_drained(Duration::from_secs(60)).await;
    assert_eq!(
        app.events(events::CODE_REDEEMED).await.len(),
        200,
        "one event per redemption"
    );
}

async fn shared_cap_race(backend: Backend) {
    let app = spawn_app(backend).await;
    let (group, codes) = app
        .create_group(
            json!({"name": "First 100", "kind": "shared", "amount": 100, "max_redemptions": 100}),
        )
        .await
        .expect("created");
    let attempts = (0..1000).map(|i| (codes[0].clone(), phone(i))).collect();
    let tally = race(&app, attempts).await;
    assert_eq!(tally.get("ok"), Some(&100), "{tally:?}");
    assert_eq!(
        tally.get("redemption_limit_reached"),
        Some(&900),
        "{tally:?}"
    );
    let g = stats(&app, group.id).await;
    assert_eq!(g.stats.redemptions, 100);
    assert_eq!(g.stats.remaining_amount, 0);
    app.wait_outbox_drained(Duration::from_secs(60)).await;
    let events = app.events(events::CODE_REDEEMED).await;
    assert_eq!(events.len(), 100);
    let phones: std::collections::HashSet<&str> = events
        .iter()
        .filter_map(|e| e["data"]["phone"].as_str())
        .collect();
    assert_eq!(phones.len(), 100, "100 different phones");
}

async fn per_phone_limit_race(backend: Backend) {
    let app = spawn_app(backend).await;
    let (group, codes) = app
        .create_group(json!({"name": "Limit", "kind": "unique", "amount": 7, "count": 60, "per_phone_limit": 3}))
        .await
        .expect("created");
    // Five phones, each trying twelve different codes at once, plus the same
    // phone repeating one code: every phone ends with exactly three.
    let mut attempts: Vec<(String, String)> = codes
        .iter()
        .enumerate()
        .map(|(i, c)| (c.clone(), phone(i % 5)))
        .collect();
    attempts.extend((0..5).map(|p| (codes[p].clone(), phone(p))));
    let tally = race(&app, attempts).await;
    assert_eq!(tally.get("ok"), Some(&15), "{tally:?}");
    let g = stats(&app, group.id).await;
    assert_eq!(g.stats.redemptions, 15);
    let page: shared_events::Page<shared_events::giftcode::Redemption> = app
        .call(
            ep::REDEMPTIONS_LIST,
            json!({"group_id": group.id, "limit": 100}),
        )
        .await
        .expect("list");
    let mut per_phone: HashMap<String, usize> = HashMap::new();
    for r in page.items {
        *per_phone.entry(r.phone.to_string()).or_default() += 1;
    }
    assert_eq!(per_phone.len(), 5);
    assert!(per_phone.values().all(|n| *n == 3), "{per_phone:?}");
}

/// Past `MAX_IN_FLIGHT` a request is refused at once with
/// `service_unavailable` and a `retry_after`, not queued; what was taken in
/// is recorded, and nothing else.
async fn past_its_bound_a_request_is_refused_at_once(backend: Backend) {
    let app = spawn_app_with(backend, &["--max-in-flight=2"]).await;
    let (group, codes) = app
        .create_group(json!({"name": "G", "kind": "unique", "amount": 1, "count": 200}))
        .await
        .expect("created");
    let barrier = Arc::new(Barrier::new(codes.len()));
    let results = join_all(codes.into_iter().enumerate().map(|(i, code)| {
        let (client, barrier) = (app.client.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            client
                .call::<_, shared_events::giftcode::RedeemReply>(
                    ep::REDEEM,
                    &json!({"code": code, "phone": phone(i)}),
                    None,
                )
                .await
        })
    }))
    .await;
    let (mut ok, mut refused) = (0, 0);
    for r in results {
        match r.expect("task") {
            Ok(_) => ok += 1,
            Err(svc_kit::nats::CallError::Service(e)) => {
                assert_eq!(e.code.as_str(), "service_unavailable", "{e}");
                assert_eq!(e.retry_after, Some(1));
                refused += 1;
            }
            Err(other) => panic!("{other}"),
        }
    }
    assert!(refused > 0, "200 at once through a bound of 2 refused none");
    let g = stats(&app, group.id).await;
    assert_eq!(g.stats.redemptions, ok, "exactly the ones taken in");
}
