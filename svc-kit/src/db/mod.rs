//! One database handle for SQLite (file or memory) and PostgreSQL (DESIGN.md §2).
//!
//! Queries are written once, in the dialect both engines share ([`query`]),
//! and every write is a closure given to [`Db::write`]: one transaction,
//! written once for both engines. What differs is underneath:
//! - SQLite is driven directly ([`lite`]): reads inline on a few reading
//!   connections, writes on one writer thread that group-commits every write
//!   waiting (one fsync for many), each in its own savepoint.
//! - PostgreSQL goes through sqlx's pool; each write is its own transaction,
//!   and the server group-commits concurrent ones itself.
//!
//! Migrations only go forward. A service's own run first, then svc-kit's (the
//! outbox table every service shares, numbered from 10001), as one set. Its
//! `processed_events` table is written by no one since issue 12 (effects are
//! idempotent by their own durable keys); it stays for databases of earlier
//! builds.

mod conn;
mod lite;
mod value;

use std::{path::Path, time::Duration};

use futures::future::BoxFuture;
use sqlx::{
    AnyPool,
    any::AnyPoolOptions,
    migrate::{MigrateError, Migrator},
};

pub use conn::{Conn, On, Query, SqlError, query};
pub use lite::READERS;

/// What the writes cost, for `/metrics`: how many commits (fsyncs) served
/// how many writes.
#[derive(Clone, Debug, Default)]
pub struct Stats {
    pub commits: prometheus_client::metrics::counter::Counter,
    pub writes: prometheus_client::metrics::counter::Counter,
}
pub use value::{Bind, DecodeError, FromValue, Kind, Row, Value};

use crate::outbox::Queue;

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
    #[error("cannot open the database: {0}")]
    Sqlite(rusqlite::Error),
    #[error("cannot start the database writer: {0}")]
    Thread(std::io::Error),
    #[error("database migration failed: {0}")]
    Migrate(#[from] MigrateError),
    #[error("database migration {version} failed: {source}")]
    Migration {
        version: i64,
        source: rusqlite::Error,
    },
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

/// A write: an async closure over the transaction's connection, written
/// once for both engines. On SQLite it runs on the writer thread, so it must
/// only talk to the database (see [`lite`]).
pub type Write<T, E> =
    Box<dyn for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static>;

#[derive(Clone)]
pub struct Db {
    engine: Engine,
    /// The SQLite file, if any (the code key lives beside it).
    sqlite_path: Option<std::path::PathBuf>,
    /// Where committed outbox rows go to be published.
    outbox: Queue,
    stats: Stats,
}

#[derive(Clone)]
enum Engine {
    Lite {
        writer: lite::Writer,
        /// None for `sqlite::memory:`, whose one connection is the writer's.
        readers: Option<std::sync::Arc<lite::Readers>>,
    },
    Pg(AnyPool),
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("backend", &self.backend())
            .field("sqlite_path", &self.sqlite_path)
            .finish()
    }
}

impl Db {
    /// Opens (creating if needed) the database at `url` and runs the migrations.
    pub async fn connect(url: &str, migrations: &Migrations) -> Result<Self, DbError> {
        let outbox = Queue::default();
        let stats = Stats::default();
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            sqlx::any::install_default_drivers();
            let pool = AnyPoolOptions::new()
                .max_connections(16)
                .acquire_timeout(Duration::from_secs(10))
                .connect(url)
                .await
                .map_err(DbError::Connect)?;
            migrations.for_backend(Backend::Postgres).run(&pool).await?;
            return Ok(Db {
                engine: Engine::Pg(pool),
                sqlite_path: None,
                outbox,
                stats,
            });
        }
        let migrator = migrations.for_backend(Backend::Sqlite);
        let path = if url == "sqlite::memory:" || url == "sqlite://:memory:" {
            None
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
            Some(std::path::PathBuf::from(path))
        } else {
            return Err(DbError::UnsupportedUrl(url.to_owned()));
        };
        let (p, queue, s) = (path.clone(), outbox.clone(), stats.clone());
        let lite =
            tokio::task::spawn_blocking(move || lite::start(p.as_deref(), &migrator, queue, s))
                .await
                .map_err(|e| DbError::Thread(std::io::Error::other(e.to_string())))??;
        Ok(Db {
            engine: Engine::Lite {
                writer: lite.writer,
                readers: lite.readers,
            },
            sqlite_path: path,
            outbox,
            stats,
        })
    }

    pub fn backend(&self) -> Backend {
        match self.engine {
            Engine::Lite { .. } => Backend::Sqlite,
            Engine::Pg(_) => Backend::Postgres,
        }
    }

    /// The SQLite database file, when the database is one.
    pub fn sqlite_path(&self) -> Option<&Path> {
        self.sqlite_path.as_deref()
    }

    /// Commits and writes so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Where the outbox rows of committed writes go.
    pub(crate) fn outbox(&self) -> &Queue {
        &self.outbox
    }

    /// A connection for reads outside a transaction. Queries also take
    /// `&Db` directly, for a reader of their own.
    pub async fn reader(&self) -> Result<Conn, SqlError> {
        match &self.engine {
            Engine::Lite {
                readers: Some(r), ..
            } => r.get(),
            Engine::Lite { writer, .. } => Ok(Conn::new(conn::Handle::LiteRemote(writer.clone()))),
            Engine::Pg(pool) => Ok(Conn::new(conn::Handle::PgPool(pool.acquire().await?))),
        }
    }

    /// Runs `f` in a write transaction and commits it; its outcome once the
    /// commit is durable. An error from `f` rolls its writes back (on
    /// SQLite, its savepoint in the group commit) and is returned as is.
    /// The outbox rows it added are published once it commits.
    pub async fn write<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
    {
        self.run_write(false, Box::new(f)).await
    }

    /// Like [`Db::write`], for a write of a lot of rows (a big group's
    /// codes): on SQLite it runs alone, with a bigger page cache, and the
    /// log is copied into the database file afterwards in the background.
    pub async fn write_bulk<T, E, F>(&self, f: F) -> Result<T, E>
    where
        F: for<'c> FnOnce(&'c mut Conn) -> BoxFuture<'c, Result<T, E>> + Send + 'static,
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
    {
        self.run_write(true, Box::new(f)).await
    }

    async fn run_write<T, E>(&self, bulk: bool, f: Write<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
    {
        match &self.engine {
            Engine::Lite { writer, .. } => writer.write(bulk, f).await,
            Engine::Pg(pool) => {
                let tx = pool.begin().await.map_err(|e| E::from(e.into()))?;
                let mut conn = Conn::new(conn::Handle::PgTx(tx));
                let out = f(&mut conn).await;
                let staged = std::mem::take(&mut conn.staged);
                let handle = conn.into_handle();
                match out {
                    Ok(v) => {
                        handle.commit().await.map_err(E::from)?;
                        self.stats.commits.inc();
                        self.stats.writes.inc();
                        self.outbox.push(staged);
                        Ok(v)
                    }
                    Err(e) => {
                        handle.rollback().await;
                        Err(e)
                    }
                }
            }
        }
    }

    /// A cheap round trip, for readiness checks.
    pub async fn ping(&self) -> Result<(), SqlError> {
        query("SELECT 1").fetch_one(self).await.map(|_| ())
    }

    pub async fn close(&self) {
        if let Engine::Pg(pool) = &self.engine {
            pool.close().await;
        }
    }
}

impl Backend {
    /// The placeholder of parameter `n` (1-based). PostgreSQL numbers them
    /// (`$n`). SQLite gets anonymous `?`: SQLite resolves each named or
    /// numbered parameter through a linear list, so a statement of thousands
    /// of `$n` parameters would bind in quadratic time. Multi-row statements
    /// must bind in placeholder order.
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
