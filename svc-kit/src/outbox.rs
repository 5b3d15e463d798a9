//! The transactional outbox (DESIGN.md §6). A service writes its state change and
//! the event describing it in one transaction ([`enqueue`]); the [`Publisher`]
//! then sends unsent rows to JetStream with `Nats-Msg-Id` = event id and marks
//! them sent only once JetStream acknowledged them. A row whose publish failed, or
//! whose process died before the ack, is sent again later; JetStream's duplicate
//! window and the consumers' idempotency make the re-send harmless.
//!
//! Replicas sharing a PostgreSQL database each run a publisher; a round claims
//! its rows (`FOR UPDATE SKIP LOCKED`, held until the rows are marked sent),
//! so each row is published by one replica. SQLite has one process.
//!
//! The table is svc-kit's (`migrations/`, 10001).

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, message::PublishMessage};
use futures::future::join_all;
use shared_events::{Envelope, Event};
use sqlx::{AnyConnection, Row, any::AnyRow};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{
    db::{Backend, Db},
    error::Error,
    metrics::Metrics,
    time::now_micros,
};

/// Rows published per round.
const BATCH: i64 = 512;
/// How often unsent rows are looked for even without a local wake-up (another
/// replica's rows, rows left by a crash, rows whose publish failed).
const POLL: Duration = Duration::from_secs(1);
/// Sent rows are kept this long for inspection, then pruned.
const RETAIN_SENT_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Adds `event` to the outbox inside the caller's transaction.
pub async fn enqueue<T: Event>(conn: &mut AnyConnection, event: &Envelope<T>) -> Result<(), Error> {
    enqueue_with_headers(conn, event, &[]).await
}

/// Like [`enqueue`], with extra NATS headers to publish the event with.
pub async fn enqueue_with_headers<T: Event>(
    conn: &mut AnyConnection,
    event: &Envelope<T>,
    headers: &[(&str, &str)],
) -> Result<(), Error> {
    let payload = serde_json::to_string(event)?;
    let headers = if headers.is_empty() {
        None
    } else {
        let map: std::collections::BTreeMap<&str, &str> = headers.iter().copied().collect();
        Some(serde_json::to_string(&map)?)
    };
    sqlx::query(
        "INSERT INTO outbox (event_id, subject, payload, headers, created_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(event.id.to_string())
    .bind(T::SUBJECT)
    .bind(payload)
    .bind(headers)
    .bind(now_micros())
    .execute(conn)
    .await?;
    Ok(())
}

/// Publishes `event` again, with its own id, inside the caller's
/// transaction: its outbox row is marked unsent if it was last sent before
/// `sent_before` (microseconds), or added again if it was pruned. A row not
/// sent yet stays as it is. Returns whether the event will go out again.
pub async fn resend<T: Event>(
    conn: &mut AnyConnection,
    event: &Envelope<T>,
    sent_before: i64,
) -> Result<bool, Error> {
    let payload = serde_json::to_string(event)?;
    let affected = sqlx::query(
        "INSERT INTO outbox (event_id, subject, payload, headers, created_at) \
         VALUES ($1, $2, $3, NULL, $4) \
         ON CONFLICT (event_id) DO UPDATE SET sent_at = NULL \
         WHERE outbox.sent_at IS NOT NULL AND outbox.sent_at < $5",
    )
    .bind(event.id.to_string())
    .bind(T::SUBJECT)
    .bind(payload)
    .bind(now_micros())
    .bind(sent_before)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(affected > 0)
}

/// Wakes the publisher after a commit, so events leave at once instead of at the
/// next poll.
#[derive(Clone, Default, Debug)]
pub struct Waker(Arc<Notify>);

impl Waker {
    pub fn wake(&self) {
        self.0.notify_one();
    }
}

pub struct Publisher {
    pub db: Db,
    pub js: jetstream::Context,
    pub waker: Waker,
    pub metrics: Metrics,
}

impl Publisher {
    /// Publishes until `stop` is cancelled, then makes one last attempt to send
    /// what is pending so that a clean shutdown leaves nothing behind.
    pub async fn run(self, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(50);
        let mut rounds: u64 = 0;
        loop {
            rounds += 1;
            if rounds.is_multiple_of(600) {
                self.prune().await;
            }
            match self.publish_batch().await {
                Ok(n) if n as i64 == BATCH => {
                    backoff = Duration::from_millis(50);
                    continue;
                }
                Ok(_) => {
                    backoff = Duration::from_millis(50);
                    tokio::select! {
                        _ = self.waker.0.notified() => {}
                        _ = tokio::time::sleep(POLL) => {}
                        _ = stop.cancelled() => break,
                    }
                }
                Err(e) => {
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
        if let Err(e) = self.publish_batch().await {
            tracing::warn!(error = %e, "events left unsent at shutdown; they are sent at next start");
        }
    }

    /// Sends one batch of unsent rows; returns how many JetStream acknowledged.
    /// Publishes are pipelined: all are sent, then all acks awaited. On
    /// PostgreSQL the rows stay claimed by this round's transaction until they
    /// are marked, so another replica skips them.
    pub async fn publish_batch(&self) -> Result<usize, Error> {
        const SELECT: &str = "SELECT seq, event_id, subject, payload, headers FROM outbox \
             WHERE sent_at IS NULL ORDER BY seq LIMIT $1";
        let mut tx = None;
        let rows = match self.db.backend() {
            Backend::Postgres => {
                let t = tx.insert(self.db.begin().await?);
                sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{SELECT} FOR UPDATE SKIP LOCKED"
                )))
                .bind(BATCH)
                .fetch_all(&mut **t)
                .await?
            }
            Backend::Sqlite => {
                sqlx::query(SELECT)
                    .bind(BATCH)
                    .fetch_all(self.db.read())
                    .await?
            }
        };
        self.metrics.outbox_pending.set(rows.len() as i64);
        if rows.is_empty() {
            return Ok(0);
        }
        let (acked, failure) = self.publish(&rows).await?;
        let sent = acked.len();
        if !acked.is_empty() {
            let backend = self.db.backend();
            let sql = format!(
                "UPDATE outbox SET sent_at = {} WHERE seq IN ({})",
                backend.placeholder(1),
                backend.list_placeholders(acked.len(), 2)
            );
            let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now_micros());
            for seq in &acked {
                q = q.bind(*seq);
            }
            let mut t = match tx.take() {
                Some(t) => t,
                None => self.db.begin().await?,
            };
            q.execute(&mut *t).await?;
            t.commit().await?;
            self.metrics.outbox_published.inc_by(sent as u64);
        }
        match failure {
            Some(e) => Err(Error::Publish(e)),
            None if sent == 0 => Err(Error::Publish("no publish was acknowledged".into())),
            None => Ok(sent),
        }
    }

    /// Sends `rows` and awaits their acks: the seqs acknowledged, and the
    /// error that stopped the sending, if one did.
    async fn publish(
        &self,
        rows: &[AnyRow],
    ) -> Result<(Vec<i64>, Option<async_nats::Error>), Error> {
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let seq: i64 = row.try_get("seq")?;
            let event_id: String = row.try_get("event_id")?;
            let subject: String = row.try_get("subject")?;
            let payload: String = row.try_get("payload")?;
            let headers: Option<String> = row.try_get("headers")?;
            let mut msg = PublishMessage::build()
                .payload(payload.into_bytes().into())
                .message_id(&event_id);
            let extra: std::collections::BTreeMap<String, String> = match headers.as_deref() {
                Some(h) => serde_json::from_str(h)?,
                None => Default::default(),
            };
            for (name, value) in extra {
                msg = msg.header(name.as_str(), value.as_str());
            }
            match self.js.send_publish(subject, msg).await {
                Ok(ack) => pending.push((seq, ack)),
                Err(e) => {
                    failure = Some(e.into());
                    break;
                }
            }
        }
        let acked = join_all(
            pending
                .into_iter()
                .map(|(seq, ack)| async move { (seq, ack.await) }),
        )
        .await
        .into_iter()
        .filter_map(|(seq, res)| match res {
            Ok(_) => Some(seq),
            Err(e) => {
                tracing::debug!(seq, error = %e, "publish not acknowledged");
                None
            }
        })
        .collect();
        Ok((acked, failure))
    }

    async fn prune(&self) {
        let cutoff = now_micros() - RETAIN_SENT_MICROS;
        let res = async {
            let mut tx = self.db.begin().await?;
            sqlx::query("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < $1")
                .bind(cutoff)
                .execute(&mut *tx)
                .await?;
            tx.commit().await
        }
        .await;
        if let Err(e) = res {
            tracing::warn!(error = %e, "outbox prune failed");
        }
    }
}
