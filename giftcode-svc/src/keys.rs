//! Where the code key comes from (DESIGN.md §3): `GIFTCODE_CODE_KEY` if set;
//! otherwise, for a SQLite file, a random key generated on first start and kept
//! beside the database (mode 0600); for `sqlite::memory:` a key that lives as long
//! as the database does; for PostgreSQL nothing — the service refuses to start.
//! The key's fingerprint is stored in the database, so that a changed or lost key
//! is caught at start-up instead of silently turning every code invalid.

use std::{io::Write, path::Path};

use rand::Rng;
use svc_kit::db::{Backend, Db, query};

use crate::{
    codes::{CodeKey, from_hex, to_hex},
    error::{Error, Result},
};

pub async fn load(configured: Option<&str>, db: &Db) -> Result<CodeKey> {
    let key = match configured.filter(|k| !k.trim().is_empty()) {
        Some(hex) => from_hex(hex)
            .and_then(|b| CodeKey::new(&b))
            .ok_or_else(|| {
                Error::Config(format!(
                    "GIFTCODE_CODE_KEY must be hex of at least {} bytes",
                    CodeKey::MIN_BYTES
                ))
            })?,
        None => match (db.backend(), db.sqlite_path()) {
            (Backend::Postgres, _) => {
                return Err(Error::Config(
                    "GIFTCODE_CODE_KEY is required with PostgreSQL (hex, at least 32 bytes)".into(),
                ));
            }
            (Backend::Sqlite, Some(path)) => key_file(&path.with_extension("key"))?,
            (Backend::Sqlite, None) => random_key(),
        },
    };
    check_fingerprint(db, &key).await?;
    Ok(key)
}

fn random_key() -> CodeKey {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    CodeKey::new(&bytes).unwrap_or_else(|| unreachable!("32 bytes is a valid key"))
}

fn key_file(path: &Path) -> Result<CodeKey> {
    let describe =
        |e: std::io::Error| Error::Config(format!("code key file {}: {e}", path.display()));
    match std::fs::read_to_string(path) {
        Ok(text) => from_hex(&text)
            .and_then(|b| CodeKey::new(&b))
            .ok_or_else(|| {
                Error::Config(format!(
                    "code key file {} is not a valid key",
                    path.display()
                ))
            }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let mut bytes = [0u8; 32];
            rand::rng().fill_bytes(&mut bytes);
            let mut opts = std::fs::OpenOptions::new();
            opts.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut opts, 0o600);
            let mut file = opts.open(path).map_err(describe)?;
            file.write_all(to_hex(&bytes).as_bytes())
                .map_err(describe)?;
            file.sync_all().map_err(describe)?;
            tracing::info!(path = %path.display(), "generated a new code key");
            CodeKey::new(&bytes).ok_or_else(|| Error::Config("key generation failed".into()))
        }
        Err(e) => Err(describe(e)),
    }
}

async fn check_fingerprint(db: &Db, key: &CodeKey) -> Result<()> {
    let fp = key.fingerprint();
    // Record ours if none is recorded yet. Replicas starting together on a
    // new PostgreSQL database race here (the reliability suite's scale-out
    // scenario saw one die of the duplicate key): whoever loses reads the
    // winner's below, and both go on only if the keys agree.
    let ours = fp.clone();
    let stored: String = db
        .write(move |tx| {
            Box::pin(async move {
                query(
                    "INSERT INTO meta (key, value) VALUES ('code_key_fingerprint', $1) \
                     ON CONFLICT (key) DO NOTHING",
                )
                .bind(ours)
                .execute(tx)
                .await?;
                query("SELECT value FROM meta WHERE key = 'code_key_fingerprint'")
                    .fetch_one(tx)
                    .await?
                    .get("value")
                    .map_err(Error::from)
            })
        })
        .await?;
    if stored != fp {
        return Err(Error::Config(
            "the code key does not match the one this database was created with; \
             every stored code would be unredeemable"
                .into(),
        ));
    }
    Ok(())
}
