//! Bad input on every endpoint gets its DESIGN.md §9 code and changes nothing.

use serde_json::{Value, json};
use shared_events::{ErrorCode, subjects::giftcode as ep};

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(bad_input_is_refused_and_changes_nothing);

async fn bad_input_is_refused_and_changes_nothing(backend: Backend) {
    let app = spawn_app(backend).await;
    let (group, codes) = app
        .create_group(json!({"name": "G", "kind": "unique", "amount": 5, "count": 2}))
        .await
        .expect("created");
    app.redeem(&codes[0], &phone(1)).await.expect("redeemed");
    app.wait_outbox_drained(std::time::Duration::from_secs(20))
        .await;
    let before = app.counts().await;

    let expect = |word: &str, status: u16, got: (String, String), what: &str| {
        assert_eq!(got.0, word, "{what}");
        assert_eq!(got.1, status.to_string(), "{what}");
    };
    // Every endpoint: broken JSON, and JSON of the wrong shape.
    for subject in ep::ALL {
        expect(
            "malformed_json",
            400,
            app.call_err(subject, b"{\"oops\"").await,
            subject,
        );
        expect(
            "validation_failed",
            422,
            app.call_err(subject, b"{\"bogus_field\": 1}").await,
            subject,
        );
        expect(
            "validation_failed",
            422,
            app.call_err(subject, b"[1, 2]").await,
            subject,
        );
    }

    let gid = group.id.to_string();
    let unknown = uuid::Uuid::now_v7().to_string();
    let cases: Vec<(&str, Value, ErrorCode)> = vec![
        (
            ep::REDEEM,
            json!({"code": codes[1], "phone": "12"}),
            ErrorCode::InvalidPhone,
        ),
        (
            ep::REDEEM,
            json!({"code": codes[1], "phone": "call me"}),
            ErrorCode::InvalidPhone,
        ),
        (
            ep::REDEEM,
            json!({"code": "!!", "phone": phone(2)}),
            ErrorCode::InvalidCode,
        ),
        (
            ep::REDEEM,
            json!({"code": "x".repeat(40), "phone": phone(2)}),
            ErrorCode::InvalidCode,
        ),
        (
            ep::REDEEM,
            json!({"code": "ZZZZ-ZZZZ-ZZZZ", "phone": phone(2)}),
            ErrorCode::CodeNotFound,
        ),
        (
            ep::REDEEM,
            json!({"code": codes[0], "phone": phone(2)}),
            ErrorCode::CodeAlreadyRedeemed,
        ),
        (
            ep::REDEEM,
            json!({"code": 12, "phone": phone(2)}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::GROUPS_GET,
            json!({"id": unknown}),
            ErrorCode::GroupNotFound,
        ),
        (
            ep::GROUPS_GET,
            json!({"id": "not-a-uuid"}),
            ErrorCode::GroupNotFound,
        ),
        (
            ep::GROUPS_UPDATE,
            json!({"id": unknown, "active": false}),
            ErrorCode::GroupNotFound,
        ),
        (
            ep::GROUPS_UPDATE,
            json!({"id": gid, "active": "no"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::GROUPS_LIST,
            json!({"limit": 0}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::GROUPS_LIST,
            json!({"limit": 501}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::GROUPS_LIST,
            json!({"cursor": "garbage"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CODES_LIST,
            json!({"group_id": unknown}),
            ErrorCode::GroupNotFound,
        ),
        (
            ep::CODES_LIST,
            json!({"group_id": gid, "status": "lost"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CODES_LIST,
            json!({"group_id": gid, "limit": -1}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::CODES_LOOKUP,
            json!({"code": "#"}),
            ErrorCode::InvalidCode,
        ),
        (
            ep::CODES_LOOKUP,
            json!({"code": "ZZZZ-ZZZZ-ZZZZ"}),
            ErrorCode::CodeNotFound,
        ),
        (
            ep::REDEMPTIONS_LIST,
            json!({"group_id": unknown}),
            ErrorCode::GroupNotFound,
        ),
        (
            ep::REDEMPTIONS_LIST,
            json!({"group_id": gid, "cursor": "x"}),
            ErrorCode::ValidationFailed,
        ),
        (
            ep::REDEMPTIONS_GET,
            json!({"id": unknown}),
            ErrorCode::NotFound,
        ),
        (
            ep::REDEMPTIONS_GET,
            json!({"id": "1; DROP TABLE codes"}),
            ErrorCode::NotFound,
        ),
    ];
    for (subject, body, code) in cases {
        let got = app
            .call_err(subject, &serde_json::to_vec(&body).expect("json"))
            .await;
        expect(
            code.as_str(),
            code.status(),
            got,
            &format!("{subject} {body}"),
        );
    }

    // Group creation: each bad field is named.
    let past = "2020-01-01T00:00:00Z";
    let bad_groups: Vec<(Value, &str)> = vec![
        (
            json!({"name": "", "kind": "unique", "amount": 1, "count": 1}),
            "name",
        ),
        (
            json!({"name": "x".repeat(101), "kind": "unique", "amount": 1, "count": 1}),
            "name",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 0, "count": 1}),
            "amount",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1_000_000_000_001_i64, "count": 1}),
            "amount",
        ),
        (json!({"name": "n", "amount": 1, "count": 1}), "kind"),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 0}),
            "count",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1_000_001}),
            "count",
        ),
        (json!({"name": "n", "kind": "unique", "amount": 1}), "count"),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1, "code": "MINE1234"}),
            "code",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1, "per_phone_limit": 0}),
            "per_phone_limit",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1, "prefix": "TOO-LONG!"}),
            "prefix",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1, "prefix": "ABCDEFGHIJK"}),
            "prefix",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1, "expires_at": past}),
            "expires_at",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1,
                "starts_at": "2031-01-02T00:00:00Z", "expires_at": "2031-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"name": "n", "kind": "shared", "amount": 1}),
            "max_redemptions",
        ),
        (
            json!({"name": "n", "kind": "shared", "amount": 1, "max_redemptions": 0}),
            "max_redemptions",
        ),
        (
            json!({"name": "n", "kind": "shared", "amount": 1_000_000_000_000_i64, "max_redemptions": 100_000_000}),
            "max_redemptions",
        ),
        (
            json!({"name": "n", "kind": "shared", "amount": 1, "max_redemptions": 5, "code": "ab"}),
            "code",
        ),
        (
            json!({"name": "n", "kind": "shared", "amount": 1, "max_redemptions": 5, "code": "NO SPACES"}),
            "code",
        ),
        (
            json!({"name": "n", "kind": "shared", "amount": 1, "max_redemptions": 5, "per_phone_limit": 1}),
            "per_phone_limit",
        ),
    ];
    for (body, field) in bad_groups {
        let err = app.create_group(body.clone()).await.expect_err("refused");
        match err {
            svc_kit::nats::CallError::Service(e) => {
                assert_eq!(e.code, ErrorCode::ValidationFailed, "{body}");
                assert!(
                    e.errors.iter().any(|f| f.field == field),
                    "{body}: {:?}",
                    e.errors
                );
            }
            other => panic!("{body}: {other}"),
        }
    }
    for (body, word) in [
        (
            json!({"name": "n", "kind": "gold", "amount": 1, "count": 1}),
            "validation_failed",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": "ten", "count": 1}),
            "validation_failed",
        ),
        (
            json!({"name": "n", "kind": "unique", "amount": 1, "count": 1, "starts_at": "yesterday"}),
            "validation_failed",
        ),
    ] {
        let err = app.create_group(body.clone()).await.expect_err("refused");
        assert_eq!(err.code().as_str(), word, "{body}");
    }

    assert_eq!(
        app.counts().await,
        before,
        "no refused request changed a row"
    );
}
