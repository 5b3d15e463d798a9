//! Group commit of redemptions. SQLite has one writer, and every commit waits
//! for an fsync; one transaction per redeem capped the service at a few
//! hundred redeems a second however many callers waited. Redeems that arrive
//! while a commit is under way queue here, and the next transaction takes
//! them all (up to [`MAX_BATCH`]): each in a savepoint of its own, so that a
//! refused redeem (code taken, cap reached) rolls back alone and the others
//! still commit. Each caller hears its own outcome only after the commit, so a
//! success is never reported for something that was not durable.
//!
//! The queue is bounded: when it is full a redeem is refused at once
//! ([`Error::Overloaded`]) rather than waiting in memory without limit.

use std::sync::Arc;

use futures::future::BoxFuture;
use sqlx::AnyConnection;
use tokio::sync::{mpsc, oneshot};

use crate::error::Error;

/// Redeems per transaction at most: a bound on how long the write lock is
/// held and on how much one failed commit takes down with it.
pub const MAX_BATCH: usize = 64;

/// Why a job's writes were rolled back.
#[derive(Debug)]
pub enum Refusal {
    /// The phone already redeemed this code (a concurrent request won).
    Replay,
    Error(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Error(e)
    }
}

/// The writes of one job, run inside the shared transaction.
pub type Work =
    Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<(), Refusal>> + Send>;

type Job = (Work, oneshot::Sender<Result<(), Refusal>>);

/// The handle requests submit their writes through.
#[derive(Clone)]
pub struct Committer(mpsc::Sender<Job>);

impl Committer {
    /// Starts the committing task on `db` with room for `capacity` waiting
    /// jobs; it ends when the last handle is dropped.
    pub fn start(db: svc_kit::db::Db, capacity: usize) -> Self {
        let (tx, rx) = mpsc::channel(capacity.max(1));
        tokio::spawn(commit_loop(db, rx));
        Self(tx)
    }

    /// Runs `work` in the next transaction; answers once it committed (or
    /// what refused it, rolled back).
    pub async fn submit(&self, work: Work) -> Result<(), Refusal> {
        let (done, outcome) = oneshot::channel();
        self.0.try_send((work, done)).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => Refusal::Error(Error::Overloaded),
            mpsc::error::TrySendError::Closed(_) => stopped(),
        })?;
        outcome.await.unwrap_or_else(|_| Err(stopped()))
    }
}

fn stopped() -> Refusal {
    Refusal::Error(Error::Internal("the redeem committer has stopped".into()))
}

async fn commit_loop(db: svc_kit::db::Db, mut rx: mpsc::Receiver<Job>) {
    while let Some(first) = rx.recv().await {
        let mut jobs = vec![first];
        while jobs.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(job) => jobs.push(job),
                Err(_) => break,
            }
        }
        let (works, answers): (Vec<Work>, Vec<_>) = jobs.into_iter().unzip();
        let outcomes = commit(&db, works).await;
        for (answer, outcome) in answers.into_iter().zip(outcomes) {
            // The caller may have gone; the outcome stands either way.
            let _ = answer.send(outcome);
        }
    }
}

/// One transaction for all of `works`; the outcome of each, in order.
async fn commit(db: &svc_kit::db::Db, works: Vec<Work>) -> Vec<Result<(), Refusal>> {
    let n = works.len();
    let failed = |e: sqlx::Error| -> Vec<Result<(), Refusal>> {
        let e = Arc::new(e);
        (0..n)
            .map(|_| Err(Refusal::Error(Error::Commit(e.clone()))))
            .collect()
    };
    let mut tx = match db.begin().await {
        Ok(tx) => tx,
        Err(e) => return failed(e),
    };
    let mut outcomes = Vec::with_capacity(n);
    if n == 1 {
        // Alone: no savepoint needed, a refusal rolls the transaction back.
        for work in works {
            outcomes.push(work(&mut tx).await);
        }
        if outcomes.iter().any(Result::is_err) {
            let _ = tx.rollback().await;
            return outcomes;
        }
    } else {
        for work in works {
            if let Err(e) = savepoint(&mut tx, "SAVEPOINT redeem").await {
                let _ = tx.rollback().await;
                return failed(e);
            }
            let outcome = work(&mut tx).await;
            let undo = if outcome.is_err() {
                savepoint(&mut tx, "ROLLBACK TO SAVEPOINT redeem").await
            } else {
                Ok(())
            };
            if let Err(e) = undo.and(savepoint(&mut tx, "RELEASE SAVEPOINT redeem").await) {
                let _ = tx.rollback().await;
                return failed(e);
            }
            outcomes.push(outcome);
        }
    }
    match tx.commit().await {
        Ok(()) => outcomes,
        Err(e) => failed(e),
    }
}

async fn savepoint(conn: &mut AnyConnection, sql: &'static str) -> Result<(), sqlx::Error> {
    sqlx::query(sql).execute(conn).await.map(|_| ())
}
