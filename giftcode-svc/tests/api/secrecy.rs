//! Codes exist in plaintext only in the reply that creates them (DESIGN.md §3):
//! not in the database file, not in its write-ahead log, not in any event, and
//! a database refuses a key other than the one it was created with.

use std::time::Duration;

use serde_json::json;
use shared_events::subjects::{events, giftcode as ep};

use crate::helpers::*;

fn forms(code: &str) -> Vec<String> {
    let canonical = giftcode_svc::codes::canonicalize(code).expect("valid");
    vec![code.to_owned(), code.replace('-', ""), canonical]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_code_in_the_sqlite_files_or_events() {
    let mut app = spawn_app(Backend::Sqlite).await;
    let (_, mut codes) = app
        .create_group(json!({"name": "Secret", "kind": "unique", "amount": 1, "count": 50}))
        .await
        .expect("created");
    let (_, shared) = app
        .create_group(
            json!({"name": "Shared", "kind": "shared", "amount": 1, "max_redemptions": 5,
                             "code": "HUSH-HUSH-9Q7Z"}),
        )
        .await
        .expect("created");
    codes.extend(shared);
    for (i, code) in codes.iter().take(10).enumerate() {
        app.redeem(code, &phone(i)).await.expect("redeemed");
    }
    app.redeem("HUSH-HUSH-9Q7Z", &phone(99))
        .await
        .expect("shared redeemed");
    let _: serde_json::Value = app
        .call(ep::CODES_LOOKUP, json!({"code": codes[20]}))
        .await
        .expect("lookup");
    app.wait_outbox_drained(Duration::from_secs(20)).await;
    let mut all_events = Vec::new();
    for subject in [events::GROUP_CREATED, events::CODE_REDEEMED] {
        all_events.extend(app.events(subject).await);
    }
    assert_eq!(all_events.len(), 13);
    let events_text = serde_json::to_string(&all_events).expect("json");
    app.shutdown().await;

    let mut files = Vec::new();
    for entry in std::fs::read_dir(app.dir.path()).expect("dir") {
        let path = entry.expect("entry").path();
        files.push((
            path.display().to_string(),
            std::fs::read(&path).expect("read"),
        ));
    }
    assert!(files.iter().any(|(p, _)| p.ends_with("giftcode.db")));
    let key_file = files
        .iter()
        .find(|(p, _)| p.ends_with("giftcode.key"))
        .expect("key file");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(&key_file.0).expect("meta").permissions(),
    );
    assert_eq!(mode & 0o777, 0o600, "the generated key is private");
    for code in &codes {
        for form in forms(code) {
            for (path, bytes) in &files {
                let hit = bytes.windows(form.len()).any(|w| w == form.as_bytes());
                assert!(!hit, "{form} found in {path}");
            }
            assert!(!events_text.contains(&form), "{form} found in an event");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_plaintext_code_in_postgres() {
    let app = spawn_app(Backend::Postgres).await;
    let (_, codes) = app
        .create_group(json!({"name": "Secret", "kind": "unique", "amount": 1, "count": 20}))
        .await
        .expect("created");
    app.redeem(&codes[0], &phone(1)).await.expect("redeemed");
    let db = app.db().await;
    let rows = svc_kit::db::query(
        "SELECT hint AS t FROM codes UNION ALL SELECT payload FROM outbox \
         UNION ALL SELECT code_hint FROM redemptions UNION ALL SELECT name FROM groups",
    )
    .fetch_all(&db)
    .await
    .expect("dump");
    let text: String = rows
        .iter()
        .map(|r| r.get::<String>("t").expect("t"))
        .collect();
    assert!(text.len() > 100);
    for code in &codes {
        for form in forms(code) {
            assert!(!text.contains(&form), "{form} stored in PostgreSQL");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_refuses_another_key() {
    let mut app = spawn_app(Backend::Sqlite).await;
    app.shutdown().await;
    // The generated key file is replaced by a different key.
    std::fs::write(app.dir.path().join("giftcode.key"), TEST_KEY).expect("write");
    let err = giftcode_svc::App::open(&app.config)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("does not match"), "{err}");
    // PostgreSQL never generates a key.
    let url = testkit::Postgres::shared().fresh_database().await;
    let mut config = config(&app.nats.url(), &url, Backend::Postgres);
    config.code_key = None;
    let err = giftcode_svc::App::open(&config)
        .await
        .err()
        .expect("refused");
    assert!(
        err.to_string().contains("GIFTCODE_CODE_KEY is required"),
        "{err}"
    );
    config.code_key = Some("abcd".into());
    let err = giftcode_svc::App::open(&config)
        .await
        .err()
        .expect("refused");
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
}
