//! `GET /api/v1/reconciliation` finds each kind of damage. The ledger is
//! tampered with behind wallet-svc's back (its SQLite file, while it runs), the
//! way a bug or a bad manual fix would, and each finding names its redemption.

use serde_json::{Value, json};
use sqlx::{Connection, SqliteConnection};

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finds_uncredited_double_mismatched_and_unknown_credits() {
    let s = Stack::start(&[]).await;
    let group = s
        .create_group(json!({"name": "G", "kind": "unique", "amount": 300, "count": 4}))
        .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let code = group["codes"][i].as_str().expect("code");
        let (status, body, _) = s.redeem(code, &phone(i)).await;
        assert_eq!(status, 200, "{body}");
        ids.push(body["id"].as_str().expect("id").to_owned());
    }
    let (_, clean) = s.get_json("/reconciliation").await;
    assert_eq!(clean["ok"], true, "{clean}");
    assert_eq!(
        (clean["redemptions"].clone(), clean["credits"].clone()),
        (json!(3), json!(3))
    );

    let mut db = SqliteConnection::connect(&format!("sqlite://{}", s.wallet_db().display()))
        .await
        .expect("wallet db");
    let copy = |reference: &str, new_reference: &str| {
        format!(
            "INSERT INTO transfers (id, debit_account, credit_account, amount, kind, \
             reference, description, idempotency_key, request_fingerprint, \
             debit_balance_after, credit_balance_after, created_at) \
             SELECT id || '-copy', debit_account, credit_account, amount, \
             kind, '{new_reference}', description, idempotency_key || '-copy', \
             request_fingerprint, debit_balance_after, credit_balance_after, created_at \
             FROM transfers WHERE reference = '{reference}'"
        )
    };
    let stranger = "01936d2e-0000-7000-8000-00000000abcd";
    for sql in [
        format!("DELETE FROM transfers WHERE reference = '{}'", ids[0]),
        copy(&ids[1], &ids[1]),
        format!(
            "UPDATE transfers SET amount = 301 WHERE reference = '{}'",
            ids[2]
        ),
        copy(&ids[2], stranger),
    ] {
        let done = sqlx::query(sqlx::AssertSqlSafe(sql.clone()))
            .execute(&mut db)
            .await
            .expect(&sql);
        assert_eq!(done.rows_affected(), 1, "{sql}");
    }

    let (status, report) = s.get_json("/reconciliation").await;
    assert_eq!(status, 200);
    let finding = |name: &str| -> (Value, Value) {
        (
            report[name]["count"].clone(),
            report[name]["redemption_ids"].clone(),
        )
    };
    assert_eq!(
        finding("uncredited"),
        (json!(1), json!([ids[0]])),
        "{report}"
    );
    // How long the oldest uncredited one has waited: since its redemption.
    let age = report["uncredited"]["oldest_age_seconds"]
        .as_f64()
        .expect("the uncredited say how old the oldest is");
    assert!((0.0..600.0).contains(&age), "{report}");
    assert!(report["uncredited"]["oldest_at"].is_string(), "{report}");
    assert!(
        report["credited_twice"].get("oldest_at").is_none(),
        "only the uncredited have an age"
    );
    assert_eq!(
        finding("credited_twice"),
        (json!(1), json!([ids[1]])),
        "{report}"
    );
    assert_eq!(
        finding("mismatched"),
        (json!(1), json!([ids[2]])),
        "{report}"
    );
    assert_eq!(
        finding("credited_without_redemption"),
        (json!(1), json!([stranger])),
        "{report}"
    );
    assert_eq!(
        (report["redemptions"].clone(), report["credits"].clone()),
        (json!(3), json!(4))
    );
    assert_eq!(report["ok"], false);
    assert_eq!(
        report["groups"][0]["ok"], false,
        "the group's totals disagree too"
    );
    assert_eq!(
        report["ledger"]["ok"], false,
        "the accounts no longer match the transfers"
    );
}
