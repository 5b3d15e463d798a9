//! The transactional outbox (DESIGN.md §6). A service writes its state change
//! and the event describing it in one transaction ([`enqueue`]). Once that
//! transaction commits, the [`Publisher`] sends the event to JetStream with
//! `Nats-Msg-Id` = event id, straight from memory (the committed rows are
//! handed to it by [`Db::write`](crate::db::Db::write), see [`Queue`]),
//! pipelined with the others waiting, and marks the rows sent, in one write,
//! only once JetStream acknowledged them.
//!
//! A row that was not published (its publish failed, its process died
//! before the ack, another replica's process died) is picked up from the
//! table once it is [`LEFTOVER_AFTER`] old and sent again. JetStream's
//! duplicate window and the consumers' idempotency make a second send
//! harmless. Replicas sharing a PostgreSQL database claim leftovers
//! (`FOR UPDATE SKIP LOCKED`, then a fresh `created_at` as a lease), so each is
//! sent by one of them.
//!
//! The table is svc-kit's (`migrations/`, 10001).

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use async_nats::jetstream::{self, message::PublishMessage};
use futures::future::join_all;
use shared_events::{Envelope, Event};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    db::{Backend, Conn, Db, Row, SqlError, query},
    error::Error,
    metrics::Metrics,
    time::now_micros,
};

/// Events published per round at most.
const BATCH: usize = 512;
/// How often the table is looked at for leftovers.
const POLL: Duration = Duration::from_secs(1);
/// How old an unsent row must be to count as left over (it would have been
/// sent from memory by now).
pub const LEFTOVER_AFTER: Duration = Duration::from_secs(5);
/// Sent rows are kept this long for inspection, then pruned.
const RETAIN_SENT_MICROS: i64 = 24 * 3600 * 1_000_000;
/// Leftover rounds between two prunes (about ten minutes).
const PRUNE_EVERY: u64 = 600;

/// An outbox row, as it is published.
#[derive(Debug, Clone)]
pub struct Staged {
    seq: i64,
    event_id: String,
    subject: String,
    payload: String,
    headers: Vec<(String, String)>,
}

impl Staged {
    fn from_row(row: &Row) -> Result<Self, Error> {
        let headers: Option<String> = row.get("headers")?;
        let headers = match headers.as_deref() {
            Some(h) => serde_json::from_str::<std::collections::BTreeMap<String, String>>(h)?
                .into_iter()
                .collect(),
            None => Vec::new(),
        };
        Ok(Self {
            seq: row.get("seq")?,
            event_id: row.get("event_id")?,
            subject: row.get("subject")?,
            payload: row.get("payload")?,
            headers,
        })
    }
}

/// The committed rows waiting to be published, handed over by the writes
/// that made them.
#[derive(Clone, Default)]
pub struct Queue(Arc<QueueInner>);

#[derive(Default)]
struct QueueInner {
    rows: Mutex<Vec<Staged>>,
    ready: Notify,
}

impl Queue {
    /// Rows of a transaction that committed.
    pub(crate) fn push(&self, rows: Vec<Staged>) {
        if rows.is_empty() {
            return;
        }
        self.0
            .rows
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend(rows);
        self.0.ready.notify_one();
    }

    /// Up to `n` rows, oldest first.
    fn take(&self, n: usize) -> Vec<Staged> {
        let mut rows = self.0.rows.lock().unwrap_or_else(|p| p.into_inner());
        let n = n.min(rows.len());
        rows.drain(..n).collect()
    }

    /// Rows that could not be sent, back at the front.
    fn put_back(&self, mut failed: Vec<Staged>) {
        let mut rows = self.0.rows.lock().unwrap_or_else(|p| p.into_inner());
        failed.append(&mut rows);
        *rows = failed;
    }

    fn len(&self) -> usize {
        self.0.rows.lock().unwrap_or_else(|p| p.into_inner()).len()
    }
}

const ENQUEUE: &str = "INSERT INTO outbox (event_id, subject, payload, headers, created_at) \
     VALUES ($1, $2, $3, $4, $5) RETURNING seq";

/// Prepares [`enqueue`]'s statement on `conn` (a start-up warm-up).
pub async fn prepare(conn: &mut Conn) -> Result<(), SqlError> {
    conn.prepare(ENQUEUE).await
}

/// Adds `event` to the outbox inside the caller's transaction.
pub async fn enqueue<T: Event>(conn: &mut Conn, event: &Envelope<T>) -> Result<(), Error> {
    enqueue_with_headers(conn, event, &[]).await
}

/// Like [`enqueue`], with extra NATS headers to publish the event with.
pub async fn enqueue_with_headers<T: Event>(
    conn: &mut Conn,
    event: &Envelope<T>,
    headers: &[(&str, &str)],
) -> Result<(), Error> {
    let payload = serde_json::to_string(event)?;
    let stored = if headers.is_empty() {
        None
    } else {
        let map: std::collections::BTreeMap<&str, &str> = headers.iter().copied().collect();
        Some(serde_json::to_string(&map)?)
    };
    let row = query(ENQUEUE)
        .bind(event.id.to_string())
        .bind(T::SUBJECT)
        .bind(payload.clone())
        .bind(stored)
        .bind(now_micros())
        .fetch_one(&mut *conn)
        .await?;
    conn.staged.push(Staged {
        seq: row.get("seq")?,
        event_id: event.id.to_string(),
        subject: T::SUBJECT.to_owned(),
        payload,
        headers: headers
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    });
    Ok(())
}

/// Publishes `event` again, with its own id, inside the caller's
/// transaction: its outbox row is marked unsent if it was last sent before
/// `sent_before` (microseconds), or added again if it was pruned. A row not
/// sent yet stays as it is. Returns whether the event will go out again.
pub async fn resend<T: Event>(
    conn: &mut Conn,
    event: &Envelope<T>,
    sent_before: i64,
) -> Result<bool, Error> {
    let payload = serde_json::to_string(event)?;
    // `created_at` is when the row was last queued: a re-armed row is not a
    // leftover until it has had its chance to go out from memory.
    let row = query(
        "INSERT INTO outbox (event_id, subject, payload, headers, created_at) \
         VALUES ($1, $2, $3, NULL, $4) \
         ON CONFLICT (event_id) DO UPDATE SET sent_at = NULL, created_at = $4 \
         WHERE outbox.sent_at IS NOT NULL AND outbox.sent_at < $5 \
         RETURNING seq, event_id, subject, payload, headers",
    )
    .bind(event.id.to_string())
    .bind(T::SUBJECT)
    .bind(payload)
    .bind(now_micros())
    .bind(sent_before)
    .fetch_optional(&mut *conn)
    .await?;
    match row {
        Some(row) => {
            conn.staged.push(Staged::from_row(&row)?);
            Ok(true)
        }
        None => Ok(false),
    }
}

pub struct Publisher {
    pub db: Db,
    pub js: jetstream::Context,
    pub metrics: Metrics,
}

impl Publisher {
    /// Publishes until `stop` is cancelled, then sends what is waiting so that
    /// a clean shutdown leaves nothing behind.
    pub async fn run(self, stop: CancellationToken) {
        let queue = self.db.outbox().clone();
        let mut backoff = Duration::from_millis(50);
        let mut next_poll = tokio::time::Instant::now();
        let mut polls: u64 = 0;
        loop {
            if tokio::time::Instant::now() >= next_poll {
                next_poll = tokio::time::Instant::now() + POLL;
                polls += 1;
                if polls.is_multiple_of(PRUNE_EVERY) {
                    self.prune().await;
                }
                match self.leftovers().await {
                    Ok(rows) => queue.push(rows),
                    Err(e) => tracing::warn!(error = %e, "cannot look for unsent events"),
                }
            }
            let rows = queue.take(BATCH);
            self.metrics.outbox_pending.set(queue.len() as i64);
            if rows.is_empty() {
                tokio::select! {
                    _ = queue.0.ready.notified() => {}
                    _ = tokio::time::sleep_until(next_poll) => {}
                    _ = stop.cancelled() => break,
                }
                continue;
            }
            match self.publish(rows).await {
                Ok(()) => backoff = Duration::from_millis(50),
                Err((e, unsent)) => {
                    queue.put_back(unsent);
                    self.metrics.outbox_publish_failures.inc();
                    tracing::warn!(error = %e, retry_in_ms = backoff.as_millis() as u64, "outbox publish failed");
                    tokio::select! {
                        _ = tokio::time::sleep(backoff) => {}
                        _ = stop.cancelled() => break,
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
            }
        }
        let rows = queue.take(usize::MAX);
        if !rows.is_empty()
            && let Err((e, _)) = self.publish(rows).await
        {
            tracing::warn!(error = %e, "events left unsent at shutdown; they are sent at next start");
        }
    }

    /// Sends `rows`, pipelined, awaits their acks, and marks the
    /// acknowledged ones sent in one write. On failure, the error and the
    /// rows not acknowledged.
    async fn publish(&self, rows: Vec<Staged>) -> Result<(), (Error, Vec<Staged>)> {
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        let mut rows = rows.into_iter();
        for row in rows.by_ref() {
            let mut msg = PublishMessage::build()
                .payload(row.payload.clone().into_bytes().into())
                .message_id(&row.event_id);
            for (name, value) in &row.headers {
                msg = msg.header(name.as_str(), value.as_str());
            }
            match self.js.send_publish(row.subject.clone(), msg).await {
                Ok(ack) => pending.push((row, ack)),
                Err(e) => {
                    failure = Some(Error::Publish(e.into()));
                    let mut unsent = vec![row];
                    unsent.extend(rows.by_ref());
                    return self.settle(pending, failure, unsent).await;
                }
            }
        }
        self.settle(pending, failure, Vec::new()).await
    }

    async fn settle(
        &self,
        pending: Vec<(Staged, jetstream::context::PublishAckFuture)>,
        mut failure: Option<Error>,
        mut unsent: Vec<Staged>,
    ) -> Result<(), (Error, Vec<Staged>)> {
        let acks = join_all(
            pending
                .into_iter()
                .map(|(row, ack)| async move { (row, ack.await) }),
        )
        .await;
        let mut acked = Vec::with_capacity(acks.len());
        for (row, res) in acks {
            match res {
                Ok(_) => acked.push(row.seq),
                Err(e) => {
                    tracing::debug!(seq = row.seq, error = %e, "publish not acknowledged");
                    failure.get_or_insert(Error::Publish(e.into()));
                    unsent.push(row);
                }
            }
        }
        unsent.sort_by_key(|r| r.seq);
        if !acked.is_empty() {
            self.metrics.outbox_published.inc_by(acked.len() as u64);
            if let Err(e) = self.mark_sent(acked).await {
                // They were published; they go out once more as leftovers,
                // and the duplicate is dropped by JetStream or the consumer.
                tracing::warn!(error = %e, "cannot mark published events sent");
            }
        }
        match failure {
            Some(e) => Err((e, unsent)),
            None => Ok(()),
        }
    }

    async fn mark_sent(&self, seqs: Vec<i64>) -> Result<(), SqlError> {
        let backend = self.db.backend();
        self.db
            .write(move |tx| {
                Box::pin(async move {
                    for chunk in seqs.chunks(BATCH) {
                        let sql = format!(
                            "UPDATE outbox SET sent_at = {} WHERE seq IN ({})",
                            backend.placeholder(1),
                            backend.list_placeholders(chunk.len(), 2)
                        );
                        let mut q = query(sql).bind(now_micros());
                        for seq in chunk {
                            q = q.bind(*seq);
                        }
                        q.execute(tx).await?;
                    }
                    Ok::<_, SqlError>(())
                })
            })
            .await
    }

    /// Unsent rows old enough to have been left over, claimed: their
    /// `created_at` becomes now, so that no other replica takes them for
    /// [`LEFTOVER_AFTER`].
    async fn leftovers(&self) -> Result<Vec<Staged>, Error> {
        let lock = match self.db.backend() {
            Backend::Postgres => " FOR UPDATE SKIP LOCKED",
            Backend::Sqlite => "",
        };
        let sql = format!(
            "UPDATE outbox SET created_at = $1 WHERE seq IN (SELECT seq FROM outbox \
             WHERE sent_at IS NULL AND created_at < $2 ORDER BY seq LIMIT $3{lock}) \
             RETURNING seq, event_id, subject, payload, headers"
        );
        let now = now_micros();
        let cutoff = now - LEFTOVER_AFTER.as_micros() as i64;
        let rows = self
            .db
            .write(move |tx| {
                Box::pin(async move {
                    query(sql)
                        .bind(now)
                        .bind(cutoff)
                        .bind(BATCH as i64)
                        .fetch_all(tx)
                        .await
                })
            })
            .await?;
        let mut staged = rows
            .iter()
            .map(Staged::from_row)
            .collect::<Result<Vec<_>, _>>()?;
        staged.sort_by_key(|r| r.seq);
        if !staged.is_empty() {
            tracing::info!(events = staged.len(), "publishing events left unsent");
        }
        Ok(staged)
    }

    async fn prune(&self) {
        let cutoff = now_micros() - RETAIN_SENT_MICROS;
        let res = self
            .db
            .write(move |tx| {
                Box::pin(async move {
                    query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
                        .bind(cutoff)
                        .execute(tx)
                        .await
                })
            })
            .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "outbox prune failed");
        }
    }
}
