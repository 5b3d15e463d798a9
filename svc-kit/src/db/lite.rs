//! SQLite, driven directly (rusqlite) for speed: the platform's default
//! engine (DESIGN.md §2).
//!
//! **Reads** run inline on the calling thread, on a small pool of reading
//! connections. A read is a point lookup on an index, a few microseconds, so
//! it costs less to do it here than to hand it to another thread and wait to
//! be woken (sqlx's SQLite driver did that for every statement, and the
//! hand-offs were a third of the CPU a redeem cost; BENCHMARKS.md).
//!
//! **Writes** go to one writer thread that owns the only writing connection.
//! It takes every write that is waiting, runs each in a savepoint of one
//! `BEGIN IMMEDIATE` transaction, and commits them together: one fsync
//! (`synchronous = FULL`) for the lot. A write that fails rolls back its own
//! savepoint only; the others still commit. Every caller hears its outcome
//! after the commit, so nothing is reported done that is not on disk.
//!
//! A write is an async closure written once for both engines (it gets a
//! [`Conn`]). On this thread its statements never wait, so the writer polls
//! it to completion in place; it must only talk to the database.

use std::{
    panic::AssertUnwindSafe,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::Duration,
};

use rusqlite::{
    Connection, OpenFlags, ToSql,
    types::{ToSqlOutput, ValueRef},
};
use sqlx::migrate::{MigrateError, Migrator};
use tokio::sync::{mpsc, oneshot};

use super::Stats;
use super::{
    DbError,
    conn::{Conn, Handle as ConnHandle, SqlError},
    value::{Kind, Row, Value},
};
use crate::outbox::Queue;

/// Where a commit's results go: its outbox rows, and its counts.
struct Sink {
    queue: Queue,
    stats: Stats,
}

/// Writes per transaction at most: a bound on how long the write lock is
/// held and on how much one failed commit takes down with it.
const MAX_BATCH: usize = 256;
/// Writes waiting for the writer at most; more wait to be queued.
const QUEUE: usize = 4096;
/// The writer thread's name.
const WRITER_THREAD: &str = "sqlite-writer";
/// Prepared statements kept per connection.
const STATEMENTS: usize = 128;

/// Page cache sizes, in KiB. A connection's cache fills up to its limit and
/// stays allocated, and the OS caches the file anyway, so they are modest;
/// a bulk write (a million codes) raises the writer's for its duration so
/// that it does not spill pages to the log mid-way (BENCHMARKS.md, memory).
const WRITER_CACHE_KIB: u32 = 16_384;
const BULK_CACHE_KIB: u32 = 32_768;
const READER_CACHE_KIB: u32 = 2_048;
/// Reading connections kept open.
pub const READERS: usize = 4;

impl ToSql for Value {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(match self {
            Value::Null(_) => ToSqlOutput::Borrowed(ValueRef::Null),
            Value::Int(n) => ToSqlOutput::Borrowed(ValueRef::Integer(*n)),
            Value::Real(n) => ToSqlOutput::Borrowed(ValueRef::Real(*n)),
            Value::Text(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            Value::Blob(b) => ToSqlOutput::Borrowed(ValueRef::Blob(b)),
        })
    }
}

/// Opens a connection to `path` (`None`: an in-memory database) with the
/// durability settings every connection shares: WAL, and `synchronous =
/// FULL`, so a commit is on disk when it returns.
fn open(path: Option<&Path>, cache_kib: u32) -> rusqlite::Result<Connection> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_CREATE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = match path {
        Some(p) => Connection::open_with_flags(p, flags)?,
        None => Connection::open_in_memory()?,
    };
    conn.busy_timeout(Duration::from_secs(10))?;
    conn.set_prepared_statement_cache_capacity(STATEMENTS);
    // The savepoint of each write in a group commit keeps the pages it
    // changes in a sub-journal: in memory, not in a temporary file that
    // grows by a write syscall per page and is deleted at every commit.
    conn.execute_batch(&format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
         PRAGMA temp_store = MEMORY; PRAGMA cache_size = -{cache_kib};"
    ))?;
    Ok(conn)
}

/// Prepares (or takes from the cache) `sql` and binds `params` to it.
/// Placeholders are `$n` (bound by number, wherever they appear) or `?`
/// (bound in order: multi-row statements of thousands of parameters use
/// them, because SQLite looks a name up in a list).
fn prepare<'c>(
    conn: &'c Connection,
    sql: &str,
    params: &[Value],
) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let n = stmt.parameter_count();
    if n != params.len() {
        return Err(rusqlite::Error::InvalidParameterCount(params.len(), n));
    }
    let numbered = sql.contains('$');
    for i in 1..=n {
        let at = if numbered {
            stmt.parameter_name(i)
                .and_then(|name| name.strip_prefix('$'))
                .and_then(|k| k.parse::<usize>().ok())
                .unwrap_or(i)
        } else {
            i
        };
        let value = params
            .get(at - 1)
            .ok_or(rusqlite::Error::InvalidParameterCount(params.len(), at))?;
        stmt.raw_bind_parameter(i, value)?;
    }
    Ok(stmt)
}

/// Runs a statement that returns no rows; the rows it changed.
pub(crate) fn execute(conn: &Connection, sql: &str, params: &[Value]) -> rusqlite::Result<u64> {
    let mut stmt = prepare(conn, sql, params)?;
    Ok(stmt.raw_execute()? as u64)
}

/// Runs a query; its rows (the first `limit` of them).
pub(crate) fn fetch(
    conn: &Connection,
    sql: &str,
    params: &[Value],
    limit: Option<usize>,
) -> rusqlite::Result<Vec<Row>> {
    let mut stmt = prepare(conn, sql, params)?;
    let names: Arc<[String]> = stmt.column_names().into_iter().map(str::to_owned).collect();
    let mut rows = stmt.raw_query();
    let mut out = Vec::new();
    while limit.is_none_or(|l| out.len() < l) {
        let Some(r) = rows.next()? else { break };
        let mut values = Vec::with_capacity(names.len());
        for i in 0..names.len() {
            values.push(match r.get_ref(i)? {
                ValueRef::Null => Value::Null(Kind::Text),
                ValueRef::Integer(n) => Value::Int(n),
                ValueRef::Real(n) => Value::Real(n),
                ValueRef::Text(t) => Value::Text(String::from_utf8_lossy(t).into_owned()),
                ValueRef::Blob(b) => Value::Blob(b.to_vec()),
            });
        }
        out.push(Row::new(names.clone(), values));
    }
    Ok(out)
}

/// A connection in use; a pooled reader goes back to its pool when dropped.
pub(crate) struct Handle {
    conn: Option<Connection>,
    home: Option<Arc<Readers>>,
}

impl Handle {
    pub(crate) fn conn(&self) -> &Connection {
        // Present from creation until drop.
        self.conn.as_ref().expect("a handle holds its connection")
    }
}

impl Drop for Handle {
    fn drop(&mut self) {
        if let (Some(conn), Some(home)) = (self.conn.take(), &self.home) {
            home.put(conn);
        }
    }
}

/// The reading connections of a database file.
pub(crate) struct Readers {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
}

impl Readers {
    fn new(path: PathBuf) -> Self {
        Self {
            path,
            idle: Mutex::new(Vec::new()),
        }
    }

    /// An idle reader, or a new one.
    pub(crate) fn get(self: &Arc<Self>) -> Result<Conn, SqlError> {
        let idle = self.idle.lock().unwrap_or_else(|p| p.into_inner()).pop();
        let conn = match idle {
            Some(c) => c,
            None => {
                let c = open(Some(&self.path), READER_CACHE_KIB)?;
                // A reader never writes: a bug that tries fails loudly.
                c.execute_batch("PRAGMA query_only = ON")?;
                c
            }
        };
        Ok(Conn::new(ConnHandle::Lite(Handle {
            conn: Some(conn),
            home: Some(self.clone()),
        })))
    }

    fn put(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|p| p.into_inner());
        if idle.len() < READERS {
            idle.push(conn);
        }
    }
}

/// A write, type-erased for the writer's queue.
trait WriteJob: Send {
    /// Runs the write in the open transaction; whether it succeeded.
    fn run(&mut self, conn: &mut Conn) -> bool;
    /// Tells the caller: its own outcome, unless the transaction failed.
    fn finish(self: Box<Self>, failed: Option<&Arc<SqlError>>);
}

struct Typed<T, E> {
    f: Option<super::Write<T, E>>,
    out: Option<Result<T, E>>,
    reply: oneshot::Sender<Result<T, E>>,
}

impl<T: Send, E: From<SqlError> + Send> WriteJob for Typed<T, E> {
    fn run(&mut self, conn: &mut Conn) -> bool {
        let Some(f) = self.f.take() else { return false };
        // The future's statements run on this thread and never wait, so it
        // completes in one poll; a panic in it rolls back this write only.
        let out =
            std::panic::catch_unwind(AssertUnwindSafe(|| futures::executor::block_on(f(conn))))
                .unwrap_or_else(|panic| Err(E::from(SqlError::Panicked(panic_message(&panic)))));
        let ok = out.is_ok();
        self.out = Some(out);
        ok
    }

    fn finish(self: Box<Self>, failed: Option<&Arc<SqlError>>) {
        let out = match (self.out, failed) {
            (Some(Ok(_)) | None, Some(e)) => Err(E::from(SqlError::Commit(e.clone()))),
            (Some(out), _) => out,
            (None, None) => Err(E::from(SqlError::WriterStopped)),
        };
        // The caller may have gone; the outcome stands either way.
        let _ = self.reply.send(out);
    }
}

fn panic_message(p: &Box<dyn std::any::Any + Send>) -> String {
    p.downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| p.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "(no message)".into())
}

enum Job {
    Write(Box<dyn WriteJob>),
    /// A big write, in a transaction of its own with a bigger page cache.
    Bulk(Box<dyn WriteJob>),
    /// Something to do on the writer's connection outside any transaction:
    /// a read of an in-memory database, a setting.
    Run(Box<dyn FnOnce(&Connection) + Send>),
}

/// The handle writes are sent through; the thread ends when the last one
/// is dropped.
#[derive(Clone)]
pub(crate) struct Writer(mpsc::Sender<Job>);

impl Writer {
    /// Runs `f` in the next group commit; its outcome once that committed.
    pub(crate) async fn write<T, E>(&self, bulk: bool, f: super::Write<T, E>) -> Result<T, E>
    where
        T: Send + 'static,
        E: From<SqlError> + Send + 'static,
    {
        let (reply, outcome) = oneshot::channel();
        let job = Box::new(Typed {
            f: Some(f),
            out: None,
            reply,
        });
        let job = if bulk {
            Job::Bulk(job)
        } else {
            Job::Write(job)
        };
        self.0
            .send(job)
            .await
            .map_err(|_| E::from(SqlError::WriterStopped))?;
        outcome
            .await
            .unwrap_or_else(|_| Err(E::from(SqlError::WriterStopped)))
    }

    /// Runs `f` on the writer's connection, outside any transaction.
    pub(crate) async fn read<T, F>(&self, f: F) -> Result<T, SqlError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        // A write that reads through a reader instead of its transaction
        // would wait for its own thread forever.
        if std::thread::current().name() == Some(WRITER_THREAD) {
            return Err(SqlError::Panicked(
                "a write read outside its transaction".into(),
            ));
        }
        let (reply, outcome) = oneshot::channel();
        let job = Job::Run(Box::new(move |c| {
            let _ = reply.send(f(c));
        }));
        self.0
            .send(job)
            .await
            .map_err(|_| SqlError::WriterStopped)?;
        Ok(outcome.await.map_err(|_| SqlError::WriterStopped)??)
    }
}

/// An open SQLite database: its writer and, for a file, its readers.
pub(crate) struct Lite {
    pub writer: Writer,
    pub readers: Option<Arc<Readers>>,
}

/// Opens the database at `path` (`None`: in memory), runs `migrator`, and
/// starts the writer thread, which hands committed outbox rows to `queue`.
pub(crate) fn start(
    path: Option<&Path>,
    migrator: &Migrator,
    queue: Queue,
    stats: Stats,
) -> Result<Lite, DbError> {
    let conn = open(path, WRITER_CACHE_KIB).map_err(DbError::Sqlite)?;
    migrate(&conn, migrator)?;
    let readers = path.map(|p| Arc::new(Readers::new(p.to_owned())));
    let (tx, rx) = mpsc::channel(QUEUE);
    let writer = Writer(tx);
    let checkpoints = readers.as_ref().map(|r| (r.path.clone(), writer.clone()));
    std::thread::Builder::new()
        .name(WRITER_THREAD.into())
        .spawn(move || {
            let mut conn = Conn::new(ConnHandle::Lite(Handle {
                conn: Some(conn),
                home: None,
            }));
            let sink = Sink { queue, stats };
            write_loop(&mut conn, rx, &sink, checkpoints);
        })
        .map_err(DbError::Thread)?;
    Ok(Lite { writer, readers })
}

/// The writer thread: everything waiting, one transaction.
fn write_loop(
    conn: &mut Conn,
    mut rx: mpsc::Receiver<Job>,
    sink: &Sink,
    checkpoints: Option<(PathBuf, Writer)>,
) {
    while let Some(first) = rx.blocking_recv() {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let mut group = Vec::with_capacity(jobs.len());
        for job in jobs {
            match job {
                Job::Write(w) => group.push(w),
                Job::Run(f) => {
                    if let Some(c) = conn.lite() {
                        f(c);
                    }
                }
                Job::Bulk(w) => {
                    commit_group(conn, std::mem::take(&mut group), sink);
                    bulk(conn, w, sink, checkpoints.as_ref());
                }
            }
        }
        commit_group(conn, group, sink);
    }
}

fn raw(conn: &Conn, sql: &str) -> Result<(), SqlError> {
    let c = conn
        .lite()
        .ok_or_else(|| SqlError::Panicked("the writer lost its connection".into()))?;
    c.prepare_cached(sql)?.raw_execute()?;
    Ok(())
}

/// One transaction for `jobs`, each in a savepoint of its own (unless it is
/// alone); the staged outbox rows of those that committed go to `queue`.
fn commit_group(conn: &mut Conn, jobs: Vec<Box<dyn WriteJob>>, sink: &Sink) {
    if jobs.is_empty() {
        return;
    }
    let fail_all = |jobs: Vec<Box<dyn WriteJob>>, e: SqlError| {
        let e = Arc::new(e);
        for job in jobs {
            job.finish(Some(&e));
        }
    };
    if let Err(e) = raw(conn, "BEGIN IMMEDIATE") {
        return fail_all(jobs, e);
    }
    let alone = jobs.len() == 1;
    let mut ran = Vec::with_capacity(jobs.len());
    let mut committed = 0;
    let mut jobs = jobs.into_iter();
    while let Some(mut job) = jobs.next() {
        let mark = conn.staged.len();
        let opened = if alone {
            Ok(())
        } else {
            raw(conn, "SAVEPOINT w")
        };
        let ok = opened.is_ok() && job.run(conn);
        if !ok {
            conn.staged.truncate(mark);
        }
        let closed = match (alone, ok) {
            (true, _) => Ok(()),
            (false, true) => raw(conn, "RELEASE w"),
            (false, false) => raw(conn, "ROLLBACK TO w").and_then(|()| raw(conn, "RELEASE w")),
        };
        ran.push(job);
        let lost = conn.lite().is_some_and(Connection::is_autocommit);
        if let Err(e) = opened.and(closed) {
            // The transaction cannot go on: nothing in it commits.
            let _ = raw(conn, "ROLLBACK");
            conn.staged.clear();
            ran.extend(jobs);
            return fail_all(ran, e);
        }
        if lost {
            // A statement's error made SQLite roll the whole transaction back.
            conn.staged.clear();
            ran.extend(jobs);
            return fail_all(
                ran,
                SqlError::Panicked("the transaction was rolled back".into()),
            );
        }
        committed += u64::from(ok);
    }
    let end = if committed > 0 {
        raw(conn, "COMMIT")
    } else {
        raw(conn, "ROLLBACK")
    };
    match end {
        Ok(()) => {
            if committed > 0 {
                sink.stats.commits.inc();
                sink.stats.writes.inc_by(committed);
            }
            sink.queue.push(std::mem::take(&mut conn.staged));
            for job in ran {
                job.finish(None);
            }
        }
        Err(e) => {
            let _ = raw(conn, "ROLLBACK");
            conn.staged.clear();
            fail_all(ran, e);
        }
    }
}

/// A big write, alone, with a bigger page cache and without a checkpoint at
/// its commit: copying a few hundred MiB of log into the database file took
/// about 0.7 s of a million-code creation, and the write is durable without
/// it (the log is). The checkpoint then runs on a connection of its own
/// while the writer goes on, and only then does the writer checkpoint by
/// itself again.
fn bulk(
    conn: &mut Conn,
    job: Box<dyn WriteJob>,
    sink: &Sink,
    checkpoints: Option<&(PathBuf, Writer)>,
) {
    fn set(conn: &Conn, sql: &str) {
        if let Some(Err(e)) = conn.lite().map(|c| c.execute_batch(sql)) {
            tracing::warn!(error = %e, "cannot change the writer's settings for a bulk write");
        }
    }
    set(
        conn,
        &format!("PRAGMA cache_size = -{BULK_CACHE_KIB}; PRAGMA wal_autocheckpoint = 0;"),
    );
    commit_group(conn, vec![job], sink);
    set(
        conn,
        &format!("PRAGMA cache_size = -{WRITER_CACHE_KIB}; PRAGMA shrink_memory;"),
    );
    let Some((path, writer)) = checkpoints.cloned() else {
        set(conn, "PRAGMA wal_autocheckpoint = 1000");
        return;
    };
    let spawned = std::thread::Builder::new()
        .name("sqlite-checkpoint".into())
        .spawn(move || {
            let done = open(Some(&path), READER_CACHE_KIB)
                .and_then(|c| c.execute_batch("PRAGMA wal_checkpoint(PASSIVE)"));
            if let Err(e) = done {
                tracing::warn!(error = %e, "checkpoint after a bulk write failed");
            }
            let again = Job::Run(Box::new(|c| {
                if let Err(e) = c.execute_batch("PRAGMA wal_autocheckpoint = 1000") {
                    tracing::warn!(error = %e, "cannot turn automatic checkpoints back on");
                }
            }));
            let _ = writer.0.blocking_send(again);
        });
    if spawned.is_err() {
        set(conn, "PRAGMA wal_autocheckpoint = 1000");
    }
}

/// Runs the migrations not applied yet, each in its transaction, keeping
/// sqlx's `_sqlx_migrations` table so that databases migrated by earlier
/// builds (through sqlx) carry on.
fn migrate(conn: &Connection, migrator: &Migrator) -> Result<(), DbError> {
    let sqlite = DbError::Sqlite;
    conn.execute_batch(
        "CREATE TABLE IF NOT EXISTS _sqlx_migrations ( \
           version BIGINT PRIMARY KEY, description TEXT NOT NULL, \
           installed_on TIMESTAMP NOT NULL DEFAULT CURRENT_TIMESTAMP, \
           success BOOLEAN NOT NULL, checksum BLOB NOT NULL, execution_time BIGINT NOT NULL)",
    )
    .map_err(sqlite)?;
    let mut stmt = conn
        .prepare("SELECT version, checksum, success FROM _sqlx_migrations ORDER BY version")
        .map_err(sqlite)?;
    let applied: Vec<(i64, Vec<u8>, bool)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .map_err(sqlite)?
        .collect::<rusqlite::Result<_>>()
        .map_err(sqlite)?;
    drop(stmt);
    let ups: Vec<_> = migrator
        .iter()
        .filter(|m| !m.migration_type.is_down_migration())
        .collect();
    for (version, checksum, success) in &applied {
        if !success {
            return Err(MigrateError::Dirty(*version).into());
        }
        match ups.iter().find(|m| m.version == *version) {
            None => return Err(MigrateError::VersionMissing(*version).into()),
            Some(m) if *m.checksum != checksum[..] => {
                return Err(MigrateError::VersionMismatch(*version).into());
            }
            Some(_) => {}
        }
    }
    for m in ups {
        if applied.iter().any(|(v, ..)| *v == m.version) {
            continue;
        }
        let started = std::time::Instant::now();
        let run = || -> rusqlite::Result<()> {
            if !m.no_tx {
                conn.execute_batch("BEGIN IMMEDIATE")?;
            }
            conn.execute_batch(m.sql.as_str())?;
            conn.execute(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (?1, ?2, TRUE, ?3, ?4)",
                rusqlite::params![
                    m.version,
                    &*m.description,
                    &*m.checksum,
                    started.elapsed().as_nanos() as i64
                ],
            )?;
            if !m.no_tx {
                conn.execute_batch("COMMIT")?;
            }
            Ok(())
        };
        if let Err(source) = run() {
            if !conn.is_autocommit() {
                let _ = conn.execute_batch("ROLLBACK");
            }
            return Err(DbError::Migration {
                version: m.version,
                source,
            });
        }
    }
    Ok(())
}
