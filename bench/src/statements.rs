//! `bench statements`: what one SQLite statement and one commit cost on this
//! machine, the units the redeem path is made of (BENCHMARKS.md).
//!
//! Two ways of driving SQLite are measured side by side:
//! - the services' own, svc-kit's `Db`: reads on a pool of reader
//!   connections in the caller's thread, and every write a job run by the one
//!   writer thread, which commits whatever jobs are queued together;
//! - sqlx's, which the services used before issue 12: each connection on a
//!   thread of its own, so every statement is a round trip to that thread.

use std::time::{Duration, Instant};

use sqlx::{Any, Pool, any::AnyPoolOptions};
use svc_kit::db::{Db, SqlError, query};

use crate::procstat::cpu_seconds;

/// One measured operation: the median wall time and the CPU per operation.
#[derive(Debug)]
pub struct Figure {
    pub what: &'static str,
    pub median_us: f64,
    pub cpu_us: f64,
}

async fn pool(path: &std::path::Path, synchronous: &str) -> anyhow::Result<Pool<Any>> {
    sqlx::any::install_default_drivers();
    let pragmas = format!(
        "PRAGMA journal_mode = WAL; PRAGMA synchronous = {synchronous}; PRAGMA busy_timeout = 10000;"
    );
    let pool = AnyPoolOptions::new()
        .max_connections(1)
        .test_before_acquire(false)
        .after_connect(move |conn, _| {
            let pragmas = pragmas.clone();
            Box::pin(async move {
                sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas))
                    .execute(conn)
                    .await?;
                Ok(())
            })
        })
        .connect(&format!("sqlite://{}?mode=rwc", path.display()))
        .await?;
    sqlx::raw_sql(
        "CREATE TABLE IF NOT EXISTS t (id INTEGER PRIMARY KEY, k TEXT NOT NULL UNIQUE, v BIGINT NOT NULL)",
    )
    .execute(&pool)
    .await?;
    Ok(pool)
}

/// Runs `op` `n` times; the median wall time and mean CPU of this process.
async fn measure<F, Fut>(what: &'static str, n: usize, mut op: F) -> anyhow::Result<Figure>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let me = std::process::id();
    for i in 0..n / 10 {
        op(i).await?;
    }
    let cpu0 = cpu_seconds(me).unwrap_or(0.0);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        op(n + i).await?;
        times.push(t.elapsed());
    }
    let cpu = cpu_seconds(me).unwrap_or(0.0) - cpu0;
    Ok(summarize(what, times, cpu))
}

/// The median of `times` and the CPU seconds `cpu` spread over them.
fn summarize(what: &'static str, mut times: Vec<Duration>, cpu: f64) -> Figure {
    times.sort();
    let n = times.len().max(1);
    Figure {
        what,
        median_us: times.get(n / 2).map_or(0.0, |t| t.as_secs_f64() * 1e6),
        cpu_us: cpu * 1e6 / n as f64,
    }
}

/// Measures each operation on a fresh database in a temporary directory.
pub async fn run(n: usize) -> anyhow::Result<Vec<Figure>> {
    let mut figures = run_kit(n).await?;
    figures.extend(run_sqlx(n).await?);
    Ok(figures)
}

/// svc-kit's `Db`, opened as the services open theirs (WAL,
/// `synchronous=FULL`).
async fn run_kit(n: usize) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let url = format!("sqlite://{}", dir.path().join("kit.db").display());
    let db = Db::connect(&url, &svc_kit::migrations!()).await?;
    let mut figures = vec![
        measure("Db: SELECT 1 on a reader", n, |_| {
            let db = &db;
            async move {
                query("SELECT 1").fetch_one(db).await?;
                Ok(())
            }
        })
        .await?,
    ];
    // n inserts in one write job: a statement without its commit.
    let me = std::process::id();
    let cpu0 = cpu_seconds(me).unwrap_or(0.0);
    let times = db
        .write(move |tx| {
            Box::pin(async move {
                let mut times = Vec::with_capacity(n);
                for i in 0..n {
                    let t = Instant::now();
                    query("INSERT INTO t (k, v) VALUES ($1, $2)")
                        .bind(format!("in-job-{i}"))
                        .bind(i as i64)
                        .execute(tx)
                        .await?;
                    times.push(t.elapsed());
                }
                Ok::<_, SqlError>(times)
            })
        })
        .await?;
    let cpu = cpu_seconds(me).unwrap_or(0.0) - cpu0;
    figures.push(summarize(
        "Db: INSERT of one row, inside a write",
        times,
        cpu,
    ));
    figures.push(
        measure(
            "Db: a write of one INSERT, alone (its commit, fsync)",
            n,
            |i| insert(&db, format!("alone-{i}"), i),
        )
        .await?,
    );
    // 64 writers at once, as under load: the writer thread commits the
    // queued jobs together. Per job: the wall time of the round, and the CPU.
    let rounds = (n / 64).max(1);
    let cpu0 = cpu_seconds(me).unwrap_or(0.0);
    let mut times = Vec::with_capacity(rounds);
    for r in 0..rounds {
        let t = Instant::now();
        futures::future::try_join_all(
            (0..64).map(|j| insert(&db, format!("group-{r}-{j}"), r * 64 + j)),
        )
        .await?;
        times.push(t.elapsed() / 64);
    }
    let cpu = (cpu_seconds(me).unwrap_or(0.0) - cpu0) / 64.0;
    figures.push(summarize(
        "Db: 64 writes of one INSERT at once, per write (group commit)",
        times,
        cpu,
    ));
    db.close().await;
    Ok(figures)
}

async fn insert(db: &Db, k: String, v: usize) -> anyhow::Result<()> {
    db.write(move |tx| {
        Box::pin(async move {
            query("INSERT INTO t (k, v) VALUES ($1, $2)")
                .bind(k)
                .bind(v as i64)
                .execute(tx)
                .await?;
            Ok::<_, SqlError>(())
        })
    })
    .await?;
    Ok(())
}

/// sqlx's SQLite driver, as the services used it before issue 12.
async fn run_sqlx(n: usize) -> anyhow::Result<Vec<Figure>> {
    let dir = tempfile::tempdir()?;
    let full = pool(&dir.path().join("full.db"), "FULL").await?;
    let off = pool(&dir.path().join("off.db"), "OFF").await?;
    let mut figures = Vec::new();
    figures.push(
        measure("sqlx: SELECT 1 (one round trip)", n, |_| async {
            sqlx::query("SELECT 1").execute(&full).await?;
            Ok(())
        })
        .await?,
    );
    // One insert per iteration inside one open transaction: a statement
    // without its commit.
    let mut conn = full.acquire().await?;
    sqlx::raw_sql("BEGIN IMMEDIATE").execute(&mut *conn).await?;
    let me = std::process::id();
    let cpu0 = cpu_seconds(me).unwrap_or(0.0);
    let mut times = Vec::with_capacity(n);
    for i in 0..n {
        let t = Instant::now();
        sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
            .bind(format!("in-tx-{i}"))
            .bind(i as i64)
            .execute(&mut *conn)
            .await?;
        times.push(t.elapsed());
    }
    let cpu = cpu_seconds(me).unwrap_or(0.0) - cpu0;
    sqlx::raw_sql("COMMIT").execute(&mut *conn).await?;
    drop(conn);
    figures.push(summarize(
        "sqlx: INSERT of one row, inside a transaction",
        times,
        cpu,
    ));
    for (what, pool) in [
        (
            "sqlx: BEGIN IMMEDIATE, INSERT, COMMIT (synchronous=FULL)",
            &full,
        ),
        (
            "sqlx: BEGIN IMMEDIATE, INSERT, COMMIT (synchronous=OFF)",
            &off,
        ),
    ] {
        figures.push(
            measure(what, n, |i| async move {
                let mut tx = pool.begin_with("BEGIN IMMEDIATE").await?;
                sqlx::query("INSERT INTO t (k, v) VALUES ($1, $2)")
                    .bind(format!("tx-{i}"))
                    .bind(i as i64)
                    .execute(&mut *tx)
                    .await?;
                tx.commit().await?;
                Ok(())
            })
            .await?,
        );
    }
    full.close().await;
    off.close().await;
    Ok(figures)
}

/// Prints the figures as a table.
pub fn print(figures: &[Figure], n: usize) {
    println!("SQLite on this machine, {n} operations each (median wall, mean CPU of the process):");
    println!("| operation | median µs | CPU µs |");
    println!("|---|---|---|");
    for f in figures {
        println!("| {} | {:.1} | {:.1} |", f.what, f.median_us, f.cpu_us);
    }
}
