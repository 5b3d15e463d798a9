//! Databases made by an earlier build, to prove that today's binaries open
//! them (migrations only go forward). `fixtures/4f46d9f/` holds what the
//! binaries of commit 4f46d9f wrote in a short session, on each engine:
//! a unique group of three codes (`FIX-…`, one redeemed) and a shared code
//! `FIXTURE-SHARED` (one redemption), both credited; an admin credit and an
//! admin debit. `fixture.json` says which is which.
//!
//! - SQLite: the two database files and giftcode-svc's key file, as they were
//!   left after a clean shutdown.
//! - PostgreSQL: `pg_dump --inserts` of each database (psql's backslash
//!   commands removed), restored statement by statement.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Postgres;

/// The code key the PostgreSQL fixture's giftcode-svc ran with.
pub const PG_CODE_KEY: &str = "7f3c1a9e5b2d4f608192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

fn dir(engine: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/4f46d9f")
        .join(engine)
}

/// What the earlier session did, as `fixture.json` records it.
pub fn facts(engine: &str) -> Value {
    let path = dir(engine).join("fixture.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies the SQLite fixture into `into`; returns the giftcode and wallet
/// database URLs (the key file lies beside the giftcode database).
pub fn sqlite(into: &Path) -> (String, String) {
    for file in ["giftcode.db", "giftcode.key", "wallet.db"] {
        std::fs::copy(dir("sqlite").join(file), into.join(file))
            .unwrap_or_else(|e| panic!("copy fixture {file}: {e}"));
    }
    let url = |name: &str| format!("sqlite://{}", into.join(name).display());
    (url("giftcode.db"), url("wallet.db"))
}

/// Restores the PostgreSQL fixture into two fresh databases of `pg`;
/// returns the giftcode and wallet database URLs.
pub async fn postgres(pg: &Postgres) -> (String, String) {
    use sqlx::{Connection, Executor};
    let mut urls = Vec::new();
    for name in ["giftcode", "wallet"] {
        let url = pg.fresh_database().await;
        let path = dir("postgres").join(format!("{name}.sql"));
        let dump =
            std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        let mut conn = sqlx::PgConnection::connect(&url)
            .await
            .unwrap_or_else(|e| panic!("connect {url}: {e}"));
        conn.execute(sqlx::AssertSqlSafe(dump))
            .await
            .unwrap_or_else(|e| panic!("restore {name}.sql: {e}"));
        conn.close().await.ok();
        urls.push(url);
    }
    let wallet = urls.pop().unwrap_or_default();
    let giftcode = urls.pop().unwrap_or_default();
    (giftcode, wallet)
}
