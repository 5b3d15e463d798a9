//! Migrations only go forward (issue 10): databases written by an earlier
//! build (commit 4f46d9f; `testkit/fixtures/`) open with today's binaries, on
//! both engines. The earlier session's redemptions, wallets, limits and
//! idempotency keys all read back and keep working.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{bus::Backend, fixtures, on_both_backends};

use crate::helpers::{Databases, Stack};

on_both_backends!(a_database_made_by_an_earlier_build_opens_and_works);

async fn a_database_made_by_an_earlier_build_opens_and_works(backend: Backend) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (engine, databases) = match backend {
        Backend::Sqlite => {
            let (giftcode, wallet) = fixtures::sqlite(dir.path());
            let databases = Databases {
                giftcode,
                wallet,
                code_key: None,
            };
            ("sqlite", databases)
        }
        Backend::Postgres => {
            let (giftcode, wallet) = fixtures::postgres(testkit::Postgres::shared()).await;
            let databases = Databases {
                giftcode,
                wallet,
                code_key: Some(fixtures::PG_CODE_KEY.to_owned()),
            };
            ("postgres", databases)
        }
    };
    let facts = fixtures::facts(engine);
    let s = Stack::start_on(dir, databases, &[], &[]).await;
    let text = |v: &Value| v.as_str().expect("a string").to_owned();

    // What the earlier build recorded reads back, credited.
    for r in facts["redemptions"].as_array().expect("redemptions") {
        let (status, got) = s
            .get_json(&format!("/redemptions/{}", text(&r["id"])))
            .await;
        assert_eq!(status, 200, "{got}");
        assert_eq!(got["status"], "credited", "{got}");
        assert_eq!(got["phone"], r["phone"]);
        // The same phone and code again: the original, not a new one.
        let (status, again, _) = s.redeem(&text(&r["code"]), &text(&r["phone"])).await;
        assert_eq!((status, &again["id"]), (200, &r["id"]), "{again}");
    }
    let unique = text(&facts["unique_group"]);
    let codes = facts["unique_codes"].as_array().expect("codes");
    let (_, group) = s.get_json(&format!("/gift-groups/{unique}")).await;
    assert_eq!(group["stats"]["redemptions"], 1, "{group}");

    // A code left unredeemed redeems now, credited on top of the old balance
    // (500 redeemed, 100 debited), and the old per-phone count still holds.
    let first = text(&facts["redemptions"][0]["phone"]);
    let (status, fresh, _) = s.redeem(&text(&codes[1]), &first).await;
    assert_eq!(status, 200, "{fresh}");
    assert_eq!(fresh["wallet"]["balance"], 900, "{fresh}");
    let (status, refused, _) = s.redeem(&text(&codes[2]), &first).await;
    assert_eq!(
        (status, refused["code"].as_str()),
        (409, Some("per_phone_limit_reached")),
        "{refused}"
    );

    // The old idempotency keys are still the old transactions.
    let replay = s
        .admin(Method::POST, "/wallets/+14155550103/credits")
        .header("Idempotency-Key", "fixture-credit")
        .json(&json!({"amount": 700, "description": "welcome"}))
        .send()
        .await
        .expect("credit");
    assert_eq!(replay.status(), 201);
    assert_eq!(replay.headers()["idempotent-replayed"], "true");
    let conflict = s
        .admin(Method::POST, "/wallets/+14155550103/credits")
        .header("Idempotency-Key", "fixture-credit")
        .json(&json!({"amount": 701}))
        .send()
        .await
        .expect("credit");
    assert_eq!(conflict.status(), 409);

    // And the books of both builds add up.
    let (status, report) = s.get_json("/reconciliation").await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["redemptions"], 3, "{report}");
}
