//! Creating groups, streaming their codes once, stats, listing, activation.

use std::collections::HashSet;

use serde_json::{Value, json};
use shared_events::{
    Page,
    giftcode::{
        CodeDetails, CodeStatus, CodeSummary, Group, GroupKind, GroupStatus, Redemption, Timeline,
    },
    subjects::{events, giftcode as ep},
};

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(
    unique_group_streams_every_code_once,
    shared_group_with_custom_code,
    listing_and_activation,
    timeline_counts_each_minute
);

async fn timeline_counts_each_minute(backend: Backend) {
    let app = spawn_app(backend).await;
    let (g, codes) = app
        .create_group(json!({"name": "T", "kind": "unique", "amount": 250, "count": 4}))
        .await
        .expect("created");
    for (i, code) in codes.iter().take(3).enumerate() {
        app.redeem(code, &phone(i)).await.expect("redeem");
    }
    let t: Timeline = app
        .call(ep::GROUPS_TIMELINE, json!({"group_id": g.id, "minutes": 3}))
        .await
        .expect("timeline");
    assert_eq!(
        t.minutes.len(),
        3,
        "every minute of the window, empty ones too"
    );
    assert_eq!((t.to - t.from).num_minutes(), 3);
    let n: i64 = t.minutes.iter().map(|m| m.redemptions).sum();
    let amount: i64 = t.minutes.iter().map(|m| m.amount).sum();
    assert_eq!((n, amount), (3, 750));
    for pair in t.minutes.windows(2) {
        assert_eq!((pair[1].minute - pair[0].minute).num_seconds(), 60);
    }
    let (code, _) = app
        .call_err(
            ep::GROUPS_TIMELINE,
            format!(r#"{{"group_id":"{}","minutes":1441}}"#, g.id).as_bytes(),
        )
        .await;
    assert_eq!(code, "validation_failed");
}

async fn unique_group_streams_every_code_once(backend: Backend) {
    let app = spawn_app(backend).await;
    // 25,000 codes need three code frames of 10,000 at most.
    let (group, codes) = app
        .create_group(json!({"name": "Launch", "kind": "unique", "amount": 500, "count": 25_000, "prefix": "gift"}))
        .await
        .expect("created");
    assert_eq!(codes.len(), 25_000);
    let distinct: HashSet<&String> = codes.iter().collect();
    assert_eq!(distinct.len(), 25_000, "codes are distinct");
    assert!(
        codes
            .iter()
            .all(|c| c.starts_with("GIFT-") && c.len() == 19),
        "{}",
        codes[0]
    );
    assert_eq!(group.kind, GroupKind::Unique);
    assert_eq!(group.prefix.as_deref(), Some("GIFT"));
    assert_eq!(group.currency, "USD");
    assert_eq!(group.stats.total_codes, 25_000);
    assert_eq!(group.stats.unredeemed_codes, 25_000);
    assert_eq!(group.stats.remaining_amount, 12_500_000);
    assert_eq!(group.stats.status, GroupStatus::Active);

    app.wait_outbox_drained(std::time::Duration::from_secs(20))
        .await;
    let created = app.events(events::GROUP_CREATED).await;
    assert_eq!(created.len(), 1, "one group.created event");
    let e = &created[0];
    assert_eq!(e["type"], "giftcode.group.created");
    assert_eq!(e["source"], "giftcode-svc");
    assert_eq!(e["correlation_id"], "test-request-id");
    assert_eq!(e["data"]["group_id"], group.id.to_string());
    assert_eq!(e["data"]["total_codes"], 25_000);
    assert_eq!(e["_msg_id"], e["id"], "Nats-Msg-Id is the event id");

    // Listing shows hints, never codes, in creation order.
    let page: Page<CodeSummary> = app
        .call(ep::CODES_LIST, json!({"group_id": group.id, "limit": 3}))
        .await
        .expect("list");
    assert_eq!(page.items.len(), 3);
    for (item, code) in page.items.iter().zip(&codes) {
        assert_eq!(item.hint, format!("GIFT-****-****-{}", &code[15..]));
        assert_eq!(item.status, CodeStatus::Unredeemed);
    }
    let next: Page<CodeSummary> = app
        .call(
            ep::CODES_LIST,
            json!({"group_id": group.id, "limit": 3, "cursor": page.next_cursor}),
        )
        .await
        .expect("next page");
    assert_eq!(
        next.items[0].hint,
        format!("GIFT-****-****-{}", &codes[3][15..])
    );
}

async fn shared_group_with_custom_code(backend: Backend) {
    let app = spawn_app(backend).await;
    let (group, codes) = app
        .create_group(json!({"name": "First 3", "kind": "shared", "amount": 1000,
                             "max_redemptions": 3, "code": "summer-sale-2026"}))
        .await
        .expect("created");
    assert_eq!(codes, vec!["SUMMER-SALE-2026".to_owned()]);
    assert_eq!(group.stats.total_codes, 1);
    assert_eq!(group.stats.remaining_amount, 3000);
    // The same custom code cannot be created twice, even typed differently.
    let err = app
        .create_group(
            json!({"name": "Again", "kind": "shared", "amount": 1, "max_redemptions": 1,
                             "code": "SUMMER-SA1E-2026"}),
        )
        .await
        .expect_err("duplicate code");
    assert_eq!(err.code().as_str(), "code_exists");

    for i in 0..3 {
        app.redeem("Summer Sale 2026", &phone(i))
            .await
            .expect("within cap");
    }
    let err = app
        .redeem("SUMMER-SALE-2026", &phone(9))
        .await
        .expect_err("cap");
    assert_eq!(err.code().as_str(), "redemption_limit_reached");
    let details: CodeDetails = app
        .call(ep::CODES_LOOKUP, json!({"code": "summersale2026"}))
        .await
        .expect("lookup");
    assert_eq!(details.code.redemptions, 3);
    assert_eq!(details.code.status, CodeStatus::Redeemed);
    assert_eq!(
        details.code.redeemed_by, None,
        "a shared code has many redeemers"
    );
    assert_eq!(details.group.stats.status, GroupStatus::Exhausted);
    assert_eq!(details.group.stats.redeemed_amount, 3000);
    assert_eq!(details.group.stats.remaining_amount, 0);
    let who: Page<Redemption> = app
        .call(ep::REDEMPTIONS_LIST, json!({"group_id": group.id}))
        .await
        .expect("redemptions");
    let mut phones: Vec<String> = who.items.iter().map(|r| r.phone.to_string()).collect();
    phones.sort();
    assert_eq!(phones, vec![phone(0), phone(1), phone(2)]);
    assert_eq!(who.items[0].code_hint, "******-****-2026");
}

async fn listing_and_activation(backend: Backend) {
    let app = spawn_app(backend).await;
    let mut ids = Vec::new();
    for i in 0..5 {
        let (g, _) = app
            .create_group(
                json!({"name": format!("G{i}"), "kind": "unique", "amount": 10, "count": 2}),
            )
            .await
            .expect("created");
        ids.push(g.id);
    }
    let first: Page<Group> = app
        .call(ep::GROUPS_LIST, json!({"limit": 2}))
        .await
        .expect("list");
    assert_eq!(
        first.items.iter().map(|g| g.id).collect::<Vec<_>>(),
        vec![ids[4], ids[3]],
        "newest first"
    );
    let rest: Page<Group> = app
        .call(
            ep::GROUPS_LIST,
            json!({"limit": 10, "cursor": first.next_cursor}),
        )
        .await
        .expect("list");
    assert_eq!(rest.items.len(), 3);
    assert_eq!(rest.next_cursor, None);

    let g: Group = app
        .call(ep::GROUPS_UPDATE, json!({"id": ids[0], "active": false}))
        .await
        .expect("deactivate");
    assert!(!g.active);
    assert_eq!(g.stats.status, GroupStatus::Inactive);
    let again: Group = app
        .call(ep::GROUPS_UPDATE, json!({"id": ids[0], "active": false}))
        .await
        .expect("idempotent");
    assert!(!again.active);
    let g: Group = app
        .call(ep::GROUPS_UPDATE, json!({"id": ids[0], "active": true}))
        .await
        .expect("activate");
    assert!(g.active);
    let fetched: Group = app
        .call(ep::GROUPS_GET, json!({"id": ids[0]}))
        .await
        .expect("get");
    assert_eq!(fetched.stats.status, GroupStatus::Active);
    app.wait_outbox_drained(std::time::Duration::from_secs(20))
        .await;
    let updates: Vec<Value> = app.events(events::GROUP_UPDATED).await;
    let actives: Vec<&Value> = updates.iter().map(|e| &e["data"]["active"]).collect();
    assert_eq!(
        actives,
        vec![&json!(false), &json!(true)],
        "one event per change"
    );
}
