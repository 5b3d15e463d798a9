//! `bench statements`: what one SQLite statement costs through sqlx on this
//! machine, the unit the redeem path is made of (BENCHMARKS.md, "Where the
//! time goes"). sqlx drives each SQLite connection from a thread of its own,
//! so every statement is a round trip between a tokio worker and that thread;
//! this measures the round trip alone (`SELECT 1`), a one-row write inside a
//! transaction, and a whole write transaction with and without its fsync, as
//! the services open their databases (WAL, a pool of one writer).

use std::time::{Duration, Instant};

use sqlx::{Any, Pool, any::AnyPoolOptions};

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
    let dir = tempfile::tempdir()?;
    let full = pool(&dir.path().join("full.db"), "FULL").await?;
    let off = pool(&dir.path().join("off.db"), "OFF").await?;
    let mut figures = Vec::new();
    figures.push(
        measure("SELECT 1 (one round trip)", n, |_| async {
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
        "INSERT of one row, inside a transaction",
        times,
        cpu,
    ));
    for (what, pool) in [
        ("BEGIN IMMEDIATE, INSERT, COMMIT (synchronous=FULL)", &full),
        ("BEGIN IMMEDIATE, INSERT, COMMIT (synchronous=OFF)", &off),
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
    println!(
        "sqlx + SQLite on this machine, {n} operations each (median wall, mean CPU of the process):"
    );
    println!("| operation | median µs | CPU µs |");
    println!("|---|---|---|");
    for f in figures {
        println!("| {} | {:.0} | {:.0} |", f.what, f.median_us, f.cpu_us);
    }
}
