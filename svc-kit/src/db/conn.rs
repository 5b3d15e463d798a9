//! Queries, written once for both engines (DESIGN.md §2), and the
//! connections they run on.
//!
//! A query is SQL in the dialect both engines share (`$n` placeholders,
//! `ON CONFLICT`, `RETURNING`) and its bound [`Value`]s. It runs on a
//! [`Conn`]: inside a write transaction (the closure given to
//! [`Db::write`](super::Db::write)), or a reading connection
//! ([`Db::reader`](super::Db::reader), or simply `&Db` for reads). On SQLite a
//! statement runs inline on the calling thread, through the connection's
//! cache of prepared statements; on PostgreSQL it goes through sqlx.

use std::{borrow::Cow, sync::Arc};

use sqlx::{
    Any, AnyConnection, Row as _, ValueRef as _,
    any::{AnyRow, AnyTypeInfoKind},
    pool::PoolConnection,
};

use super::{
    Db, lite,
    value::{Bind, Kind, Row, Value},
};
use crate::outbox::Staged;

/// A statement failed, or the transaction it was part of did.
#[derive(Debug, thiserror::Error)]
pub enum SqlError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("postgres: {0}")]
    Postgres(#[from] sqlx::Error),
    #[error("a query expected a row and found none")]
    NoRow,
    #[error("the database writer has stopped")]
    WriterStopped,
    #[error("a write panicked: {0}")]
    Panicked(String),
    /// The transaction this write shared failed: every write in it shares
    /// the cause.
    #[error("the transaction failed: {0}")]
    Commit(Arc<SqlError>),
}

impl SqlError {
    /// A unique-constraint violation (on either engine).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            SqlError::Sqlite(e) => e.sqlite_error().is_some_and(|e| {
                e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
                    || e.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
            }),
            SqlError::Postgres(sqlx::Error::Database(e)) => e.is_unique_violation(),
            SqlError::Commit(e) => e.is_unique_violation(),
            _ => false,
        }
    }
}

/// A connection: a write transaction's, or a reader's.
pub struct Conn {
    handle: Handle,
    /// The outbox rows this transaction added, published from memory once it
    /// commits (see [`crate::outbox`]).
    pub(crate) staged: Vec<Staged>,
}

pub(crate) enum Handle {
    Lite(lite::Handle),
    /// `sqlite::memory:` has one connection, the writer's: its reads go to
    /// the writer's thread, a statement at a time.
    LiteRemote(lite::Writer),
    PgTx(sqlx::Transaction<'static, Any>),
    PgPool(PoolConnection<Any>),
}

impl Conn {
    pub(crate) fn new(handle: Handle) -> Self {
        Self {
            handle,
            staged: Vec::new(),
        }
    }

    /// The SQLite connection, when this is one on this thread.
    pub(crate) fn lite(&self) -> Option<&rusqlite::Connection> {
        match &self.handle {
            Handle::Lite(h) => Some(h.conn()),
            _ => None,
        }
    }

    pub(crate) fn into_handle(self) -> Handle {
        self.handle
    }

    /// Prepares `sql` without running it. On SQLite the statement goes into
    /// the connection's cache, where its first real use finds it (a
    /// start-up warm-up); sqlx prepares a PostgreSQL statement on its first
    /// use on each connection of its pool, so there it does nothing.
    pub async fn prepare(&mut self, sql: &str) -> Result<(), SqlError> {
        match &self.handle {
            Handle::Lite(h) => Ok(h.conn().prepare_cached(sql).map(drop)?),
            Handle::LiteRemote(w) => {
                let sql = sql.to_owned();
                w.read(move |c| c.prepare_cached(&sql).map(drop)).await
            }
            Handle::PgTx(_) | Handle::PgPool(_) => Ok(()),
        }
    }

    async fn execute(&mut self, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
        match &mut self.handle {
            Handle::Lite(h) => Ok(lite::execute(h.conn(), sql, &params)?),
            Handle::LiteRemote(w) => {
                let sql = sql.to_owned();
                w.read(move |c| lite::execute(c, &sql, &params)).await
            }
            Handle::PgTx(tx) => pg_execute(tx, sql, params).await,
            Handle::PgPool(c) => pg_execute(c, sql, params).await,
        }
    }

    async fn fetch(
        &mut self,
        sql: &str,
        params: Vec<Value>,
        limit: Option<usize>,
    ) -> Result<Vec<Row>, SqlError> {
        match &mut self.handle {
            Handle::Lite(h) => Ok(lite::fetch(h.conn(), sql, &params, limit)?),
            Handle::LiteRemote(w) => {
                let sql = sql.to_owned();
                w.read(move |c| lite::fetch(c, &sql, &params, limit)).await
            }
            Handle::PgTx(tx) => pg_fetch(tx, sql, params, limit).await,
            Handle::PgPool(c) => pg_fetch(c, sql, params, limit).await,
        }
    }
}

/// Where a query runs: a connection, or a reader taken from the database
/// for the query alone.
pub enum On<'a> {
    Conn(&'a mut Conn),
    Db(&'a Db),
}

impl<'a> From<&'a mut Conn> for On<'a> {
    fn from(c: &'a mut Conn) -> Self {
        On::Conn(c)
    }
}

impl<'a> From<&'a Db> for On<'a> {
    fn from(db: &'a Db) -> Self {
        On::Db(db)
    }
}

/// A statement and its parameters: `query(SQL).bind(a).bind(b).execute(tx)`.
#[must_use = "a query does nothing until it is run"]
pub struct Query {
    sql: Cow<'static, str>,
    params: Vec<Value>,
}

/// A query of `sql`, in the dialect both engines share.
pub fn query(sql: impl Into<Cow<'static, str>>) -> Query {
    Query {
        sql: sql.into(),
        params: Vec::new(),
    }
}

impl Query {
    /// Binds the next parameter (`$1`, then `$2`, …).
    pub fn bind(mut self, value: impl Bind) -> Self {
        self.params.push(value.into_value());
        self
    }

    /// Runs a statement that returns no rows, inside a transaction; the
    /// number of rows it changed.
    pub async fn execute(self, conn: &mut Conn) -> Result<u64, SqlError> {
        conn.execute(&self.sql, self.params).await
    }

    pub async fn fetch_all<'a>(self, on: impl Into<On<'a>>) -> Result<Vec<Row>, SqlError> {
        self.run(on.into(), None).await
    }

    pub async fn fetch_optional<'a>(self, on: impl Into<On<'a>>) -> Result<Option<Row>, SqlError> {
        Ok(self.run(on.into(), Some(1)).await?.pop())
    }

    pub async fn fetch_one<'a>(self, on: impl Into<On<'a>>) -> Result<Row, SqlError> {
        self.fetch_optional(on).await?.ok_or(SqlError::NoRow)
    }

    async fn run(self, on: On<'_>, limit: Option<usize>) -> Result<Vec<Row>, SqlError> {
        match on {
            On::Conn(c) => c.fetch(&self.sql, self.params, limit).await,
            On::Db(db) => {
                db.reader()
                    .await?
                    .fetch(&self.sql, self.params, limit)
                    .await
            }
        }
    }
}

fn pg_query(
    sql: &str,
    params: Vec<Value>,
) -> sqlx::query::Query<'static, Any, sqlx::any::AnyArguments> {
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql.to_owned()));
    for v in params {
        q = match v {
            Value::Null(Kind::Int) => q.bind(None::<i64>),
            Value::Null(Kind::Real) => q.bind(None::<f64>),
            Value::Null(Kind::Text) => q.bind(None::<String>),
            Value::Null(Kind::Blob) => q.bind(None::<Vec<u8>>),
            Value::Int(n) => q.bind(n),
            Value::Real(n) => q.bind(n),
            Value::Text(s) => q.bind(s),
            Value::Blob(b) => q.bind(b),
        };
    }
    q
}

async fn pg_execute(c: &mut AnyConnection, sql: &str, params: Vec<Value>) -> Result<u64, SqlError> {
    Ok(pg_query(sql, params).execute(c).await?.rows_affected())
}

async fn pg_fetch(
    c: &mut AnyConnection,
    sql: &str,
    params: Vec<Value>,
    limit: Option<usize>,
) -> Result<Vec<Row>, SqlError> {
    let q = pg_query(sql, params);
    let rows = match limit {
        Some(1) => q.fetch_optional(c).await?.into_iter().collect(),
        _ => q.fetch_all(c).await?,
    };
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let names: Arc<[String]> = first
        .columns()
        .iter()
        .map(|c| sqlx::Column::name(c).to_owned())
        .collect();
    rows.iter().map(|r| pg_row(r, &names)).collect()
}

fn pg_row(row: &AnyRow, names: &Arc<[String]>) -> Result<Row, SqlError> {
    let mut values = Vec::with_capacity(names.len());
    for i in 0..names.len() {
        let raw = row.try_get_raw(i)?;
        let value = if raw.is_null() {
            Value::Null(Kind::Text)
        } else {
            match raw.type_info().kind() {
                AnyTypeInfoKind::SmallInt | AnyTypeInfoKind::Integer | AnyTypeInfoKind::BigInt => {
                    Value::Int(row.try_get(i)?)
                }
                AnyTypeInfoKind::Bool => Value::Int(i64::from(row.try_get::<bool, _>(i)?)),
                AnyTypeInfoKind::Real | AnyTypeInfoKind::Double => Value::Real(row.try_get(i)?),
                AnyTypeInfoKind::Text => Value::Text(row.try_get(i)?),
                AnyTypeInfoKind::Blob => Value::Blob(row.try_get(i)?),
                AnyTypeInfoKind::Null => Value::Null(Kind::Text),
            }
        };
        values.push(value);
    }
    Ok(Row::new(names.clone(), values))
}

impl Handle {
    /// Ends a PostgreSQL transaction; anything else has nothing to end.
    pub(crate) async fn commit(self) -> Result<(), SqlError> {
        match self {
            Handle::PgTx(tx) => Ok(tx.commit().await?),
            _ => Ok(()),
        }
    }

    pub(crate) async fn rollback(self) {
        if let Handle::PgTx(tx) = self
            && let Err(e) = tx.rollback().await
        {
            tracing::warn!(error = %e, "rollback failed");
        }
    }
}
