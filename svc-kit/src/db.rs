//! One database handle for SQLite (file or memory) and PostgreSQL (DESIGN.md §2).
//!
//! Queries are written once in the dialect both engines share (`$1` placeholders,
//! `ON CONFLICT`, `RETURNING`, `BIGINT`/`TEXT` columns) and run through sqlx's
//! `Any` driver. The engine-specific parts live here: connection pragmas, pool
//! shapes and how a write transaction begins.
//!
//! SQLite allows one writer at a time. Rather than let many connections fight for
//! the write lock (and fail with `SQLITE_BUSY` when a read transaction tries to
//! upgrade), writes go through a pool of exactly one connection and start with
//! `BEGIN IMMEDIATE`; reads use a separate pool and never block on writes (WAL).
//!
//! Migrations only go forward. A service's own run first, then svc-kit's (the
//! outbox and processed-event tables every service shares, numbered from
//! 10001), as one set.

use std::{path::Path, str::FromStr, time::Duration};

use sqlx::{
    Any, AnyPool, Row, Transaction,
    any::{AnyPoolOptions, AnyRow},
    migrate::{MigrateError, Migrator},
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("unsupported database URL {0:?}: use sqlite://PATH, sqlite::memory: or postgres://…")]
    UnsupportedUrl(String),
    #[error("cannot create the database directory {path}: {source}")]
    CreateDir {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot connect to the database: {0}")]
    Connect(sqlx::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] MigrateError),
}

/// The migrations of one service, one set per engine.
pub struct Migrations {
    pub sqlite: &'static Migrator,
    pub postgres: &'static Migrator,
}

/// The migrations of the crate that calls it (`./migrations/sqlite` and
/// `./migrations/postgres` beside its `Cargo.toml`), as [`Migrations`]:
/// `pub const MIGRATIONS: Migrations = svc_kit::migrations!();`
#[macro_export]
macro_rules! migrations {
    () => {{
        static SQLITE: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/sqlite");
        static POSTGRES: ::sqlx::migrate::Migrator = ::sqlx::migrate!("./migrations/postgres");
        $crate::db::Migrations {
            sqlite: &SQLITE,
            postgres: &POSTGRES,
        }
    }};
}

static KIT_SQLITE: Migrator = sqlx::migrate!("./migrations/sqlite");
static KIT_POSTGRES: Migrator = sqlx::migrate!("./migrations/postgres");

impl Migrations {
    /// The service's migrations and then svc-kit's, for `backend`.
    pub fn for_backend(&self, backend: Backend) -> Migrator {
        let (own, kit) = match backend {
            Backend::Sqlite => (self.sqlite, &KIT_SQLITE),
            Backend::Postgres => (self.postgres, &KIT_POSTGRES),
        };
        let mut all: Vec<_> = own.iter().chain(kit.iter()).cloned().collect();
        all.sort_by_key(|m| m.version);
        Migrator::with_migrations(all)
    }
}

/// Stored data this build cannot read: a row decoder met a word or a value it
/// does not know. Never turned into a default.
#[derive(Debug, thiserror::Error)]
#[error("column {column} holds {value:?}: {reason}")]
pub struct DecodeError {
    pub column: &'static str,
    pub value: String,
    pub reason: String,
}

/// Typed reads of a row's columns that fail loudly.
pub trait RowExt {
    /// A column read with `FromStr` (ids, phones, currencies, amounts as text).
    fn parsed<T>(&self, column: &'static str) -> Result<T, crate::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display;
    /// A nullable column read with `FromStr`.
    fn parsed_opt<T>(&self, column: &'static str) -> Result<Option<T>, crate::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display;
    /// A column holding one of an enum's words.
    fn word<T>(
        &self,
        column: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, crate::Error>;
    /// A money column: 1 ..= 10^12 minor units.
    fn amount(&self, column: &'static str) -> Result<shared_events::Amount, crate::Error>;
}

fn decode_err(column: &'static str, value: String, reason: impl ToString) -> crate::Error {
    crate::Error::Decode(DecodeError {
        column,
        value,
        reason: reason.to_string(),
    })
}

impl RowExt for AnyRow {
    fn parsed<T>(&self, column: &'static str) -> Result<T, crate::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text: String = self.try_get(column)?;
        text.parse().map_err(|e| decode_err(column, text, e))
    }

    fn parsed_opt<T>(&self, column: &'static str) -> Result<Option<T>, crate::Error>
    where
        T: FromStr,
        T::Err: std::fmt::Display,
    {
        let text: Option<String> = self.try_get(column)?;
        text.map(|t| t.parse().map_err(|e| decode_err(column, t, e)))
            .transpose()
    }

    fn word<T>(
        &self,
        column: &'static str,
        parse: fn(&str) -> Option<T>,
    ) -> Result<T, crate::Error> {
        let text: String = self.try_get(column)?;
        parse(&text).ok_or_else(|| decode_err(column, text, "not a word this build knows"))
    }

    fn amount(&self, column: &'static str) -> Result<shared_events::Amount, crate::Error> {
        let n: i64 = self.try_get(column)?;
        shared_events::Amount::new(n)
            .ok_or_else(|| decode_err(column, n.to_string(), shared_events::Amount::RULE))
    }
}

#[derive(Clone, Debug)]
pub struct Db {
    read: AnyPool,
    write: AnyPool,
    backend: Backend,
    /// The SQLite file, if any (the code key lives beside it).
    sqlite_path: Option<std::path::PathBuf>,
}

/// WAL and `synchronous = FULL`: a commit is on disk when it returns
/// (DESIGN.md §2).
const SQLITE_PRAGMAS: &str = "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; \
     PRAGMA busy_timeout = 10000; PRAGMA foreign_keys = ON;";

/// Page cache sizes, in KiB. A connection's cache fills up to its limit and
/// stays allocated, and the OS caches the file anyway, so they are modest;
/// a bulk transaction (a million codes) raises the writer's for its duration
/// so that it does not spill pages to the log mid-way (BENCHMARKS.md, memory).
const WRITER_CACHE_KIB: u32 = 16_384;
/// Reading connections of a SQLite file (a warm-up prepares each).
pub const READERS: usize = 4;
const BULK_CACHE_KIB: u32 = 32_768;
const READER_CACHE_KIB: u32 = 2_048;

impl Db {
    /// Opens (creating if needed) the database at `url` and runs the migrations.
    pub async fn connect(url: &str, migrations: &Migrations) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let db = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(DbError::Connect)?;
            Db {
                read: pool.clone(),
                write: pool,
                backend: Backend::Postgres,
                sqlite_path: None,
            }
        } else if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            // Every connection to `:memory:` is its own database, so memory mode
            // keeps exactly one connection for good.
            let pool = sqlite_pool(1, WRITER_CACHE_KIB)
                .idle_timeout(None)
                .max_lifetime(None)
                .min_connections(1)
                .connect("sqlite::memory:")
                .await
                .map_err(DbError::Connect)?;
            Db {
                read: pool.clone(),
                write: pool,
                backend: Backend::Sqlite,
                sqlite_path: None,
            }
        } else if let Some(rest) = url.strip_prefix("sqlite:") {
            let rest = rest.trim_start_matches("//");
            let (path, _query) = rest.split_once('?').unwrap_or((rest, ""));
            if path.is_empty() {
                return Err(DbError::UnsupportedUrl(url.to_owned()));
            }
            if let Some(dir) = Path::new(path)
                .parent()
                .filter(|d| !d.as_os_str().is_empty())
            {
                std::fs::create_dir_all(dir).map_err(|source| DbError::CreateDir {
                    path: dir.display().to_string(),
                    source,
                })?;
            }
            let file_url = format!("sqlite://{path}?mode=rwc");
            let write = sqlite_pool(1, WRITER_CACHE_KIB)
                .connect(&file_url)
                .await
                .map_err(DbError::Connect)?;
            let read = sqlite_pool(READERS as u32, READER_CACHE_KIB)
                .connect(&file_url)
                .await
                .map_err(DbError::Connect)?;
            Db {
                read,
                write,
                backend: Backend::Sqlite,
                sqlite_path: Some(path.into()),
            }
        } else {
            return Err(DbError::UnsupportedUrl(url.to_owned()));
        };
        migrations.for_backend(db.backend).run(&db.write).await?;
        Ok(db)
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The SQLite database file, when the database is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// The pool for reads outside a transaction.
    pub fn read(&self) -> &AnyPool {
        &self.read
    }

    /// Begins a write transaction. On SQLite it takes the write lock up front, so
    /// that the transaction can never fail half-way for want of it.
    pub async fn begin(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => self.write.begin_with("BEGIN IMMEDIATE").await,
            Backend::Postgres => self.write.begin().await,
        }
    }

    /// Begins a write transaction that will write a lot (a big group's
    /// codes). On SQLite the writer's page cache grows for it, and the commit
    /// does not checkpoint: copying a few hundred MiB of log into the database
    /// file took about 0.7 s of a million-code creation, and the group is
    /// durable without it (the log is). Call [`Db::end_bulk`] once the
    /// transaction is over, whatever its outcome.
    pub async fn begin_bulk(&self) -> Result<Transaction<'static, Any>, sqlx::Error> {
        let mut tx = self.begin().await?;
        if self.backend == Backend::Sqlite {
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA cache_size = -{BULK_CACHE_KIB}; PRAGMA wal_autocheckpoint = 0;"
            )))
            .execute(&mut *tx)
            .await?;
        }
        Ok(tx)
    }

    /// After [`Db::begin_bulk`]: shrinks the writer's page cache back and
    /// frees what it held, then checkpoints in the background from a reader
    /// connection (WAL lets the writer go on meanwhile) before the writer
    /// checkpoints by itself again.
    pub async fn end_bulk(&self) {
        if self.backend != Backend::Sqlite {
            return;
        }
        let sql = format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA shrink_memory;");
        if let Err(e) = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
            .execute(&self.write)
            .await
        {
            tracing::warn!(error = %e, "cannot shrink the writer's page cache");
        }
        let (read, write) = (self.read.clone(), self.write.clone());
        tokio::spawn(async move {
            if let Err(e) = sqlx::raw_sql("PRAGMA wal_checkpoint(PASSIVE)")
                .execute(&read)
                .await
            {
                tracing::warn!(error = %e, "checkpoint after a bulk write failed");
            }
            if let Err(e) = sqlx::raw_sql("PRAGMA wal_autocheckpoint = 1000")
                .execute(&write)
                .await
            {
                tracing::warn!(error = %e, "cannot turn automatic checkpoints back on");
            }
        });
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), sqlx::Error> {
        sqlx::query("SELECT 1")
            .execute(&self.read)
            .await
            .map(|_| ())
    }

    pub async fn close(&self) {
        self.read.close().await;
        self.write.close().await;
    }
}

fn sqlite_pool(max: u32, cache_kib: u32) -> AnyPoolOptions {
    AnyPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(30))
        // A SQLite connection is a file handle in this process: it cannot go
        // stale the way a socket can, and the default ping before every
        // acquire was one more round trip to the connection's thread on every
        // read and every transaction (BENCHMARKS.md).
        .test_before_acquire(false)
        .after_connect(move |conn, _meta| {
            Box::pin(async move {
                sqlx::raw_sql(SQLITE_PRAGMAS).execute(&mut *conn).await?;
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "PRAGMA cache_size = -{cache_kib}"
                )))
                .execute(conn)
                .await?;
                Ok(())
            })
        })
}

/// True when `err` is a unique-constraint violation (on either engine).
pub fn is_unique_violation(err: &sqlx::Error) -> bool {
    match err {
        sqlx::Error::Database(e) => e.is_unique_violation(),
        _ => false,
    }
}

impl Backend {
    /// The placeholder of parameter `n` (1-based). PostgreSQL numbers them
    /// (`$n`). SQLite gets anonymous `?`: for numbered or named parameters
    /// SQLite resolves each name through a linear list, and sqlx asks for every
    /// parameter's name, so a statement of thousands of `$n` parameters binds in
    /// quadratic time. Multi-row statements must bind in placeholder order.
    pub fn placeholder(self, n: usize) -> String {
        match self {
            Backend::Sqlite => "?".to_owned(),
            Backend::Postgres => format!("${n}"),
        }
    }

    /// `(…), (…)` for a multi-row `VALUES` of `rows` × `cols` parameters,
    /// numbered from `first`.
    pub fn values_placeholders(self, rows: usize, cols: usize, first: usize) -> String {
        (0..rows)
            .map(|r| {
                let row: Vec<String> = (0..cols)
                    .map(|c| self.placeholder(first + r * cols + c))
                    .collect();
                format!("({})", row.join(", "))
            })
            .collect::<Vec<_>>()
            .join(", ")
    }

    /// The parameters of an `IN (…)` list of `n`, numbered from `first`.
    pub fn list_placeholders(self, n: usize, first: usize) -> String {
        (first..first + n)
            .map(|i| self.placeholder(i))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_follow_the_engine() {
        let pg = Backend::Postgres;
        assert_eq!(
            pg.values_placeholders(2, 3, 1),
            "($1, $2, $3), ($4, $5, $6)"
        );
        assert_eq!(pg.values_placeholders(1, 1, 4), "($4)");
        assert_eq!(pg.list_placeholders(3, 2), "$2, $3, $4");
        let lite = Backend::Sqlite;
        assert_eq!(lite.values_placeholders(2, 2, 1), "(?, ?), (?, ?)");
        assert_eq!(lite.list_placeholders(2, 2), "?, ?");
    }
}
