//! The transactional outbox (DESIGN.md §6). A service writes its state change and
//! the event describing it in one transaction ([`enqueue`]); the [`Publisher`]
//! then sends unsent rows to JetStream with `Nats-Msg-Id` = event id and marks
//! them sent only once JetStream acknowledged them. A row whose publish failed, or
//! whose process died before the ack, is sent again later; JetStream's duplicate
//! window and the consumers' idempotency make the re-send harmless.
//!
//! Every service that uses it has this table in its migrations:
//! `outbox(seq, event_id UNIQUE, subject, payload, headers, created_at, sent_at)`.

use std::{sync::Arc, time::Duration};

use async_nats::jetstream::{self, message::PublishMessage};
use futures::future::join_all;
use shared_events::{Envelope, Event};
use sqlx::{AnyConnection, Row};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::{db::Db, metrics::Metrics, time::now_micros};

/// Rows published per round.
const BATCH: i64 = 512;
/// How often unsent rows are looked for even without a local wake-up (another
/// replica's rows, rows left by a crash, rows whose publish failed).
const POLL: Duration = Duration::from_secs(1);
/// Sent rows are kept this long for inspection, then pruned.
const RETAIN_SENT_MICROS: i64 = 24 * 3600 * 1_000_000;

/// Adds `event` to the outbox inside the caller's transaction.
pub async fn enqueue<T: Event>(
    conn: &mut AnyConnection,
    event: &Envelope<T>,
) -> Result<(), sqlx::Error> {
    enqueue_with_headers(conn, event, &[]).await
}

/// Like [`enqueue`], with extra NATS headers to publish the event with.
pub async fn enqueue_with_headers<T: Event>(
    conn: &mut AnyConnection,
    event: &Envelope<T>,
    headers: &[(&str, &str)],
) -> Result<(), sqlx::Error> {
    let payload = serde_json::to_string(event).map_err(|e| sqlx::Error::Encode(Box::new(e)))?;
    let headers = if headers.is_empty() {
        None
    } else {
        let map: std::collections::BTreeMap<&str, &str> = headers.iter().copied().collect();
        Some(serde_json::to_string(&map).map_err(|e| sqlx::Error::Encode(Box::new(e)))?)
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

struct Row_ {
    seq: i64,
    event_id: String,
    subject: String,
    payload: String,
    headers: Option<String>,
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
    /// Publishes are pipelined: all are sent, then all acks awaited.
    pub async fn publish_batch(&self) -> Result<usize, String> {
        let rows = sqlx::query(
            "SELECT seq, event_id, subject, payload, headers FROM outbox \
             WHERE sent_at IS NULL ORDER BY seq LIMIT $1",
        )
        .bind(BATCH)
        .fetch_all(self.db.read())
        .await
        .map_err(|e| e.to_string())?;
        self.metrics.outbox_pending.set(rows.len() as i64);
        if rows.is_empty() {
            return Ok(0);
        }
        let mut pending = Vec::with_capacity(rows.len());
        let mut failure = None;
        for row in rows {
            let row = Row_ {
                seq: row.try_get("seq").map_err(|e| e.to_string())?,
                event_id: row.try_get("event_id").map_err(|e| e.to_string())?,
                subject: row.try_get("subject").map_err(|e| e.to_string())?,
                payload: row.try_get("payload").map_err(|e| e.to_string())?,
                headers: row.try_get("headers").map_err(|e| e.to_string())?,
            };
            let mut msg = PublishMessage::build()
                .payload(row.payload.into_bytes().into())
                .message_id(&row.event_id);
            let extra: std::collections::BTreeMap<String, String> = row
                .headers
                .as_deref()
                .and_then(|h| serde_json::from_str(h).ok())
                .unwrap_or_default();
            for (name, value) in extra {
                msg = msg.header(name.as_str(), value.as_str());
            }
            match self.js.send_publish(row.subject, msg).await {
                Ok(ack) => pending.push((row.seq, ack)),
                Err(e) => {
                    failure = Some(e.to_string());
                    break;
                }
            }
        }
        let acked: Vec<i64> = join_all(
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
            let mut tx = self.db.begin().await.map_err(|e| e.to_string())?;
            q.execute(&mut *tx).await.map_err(|e| e.to_string())?;
            tx.commit().await.map_err(|e| e.to_string())?;
            self.metrics.outbox_published.inc_by(sent as u64);
        }
        match failure {
            Some(e) => Err(e),
            None if sent == 0 => Err("no publish was acknowledged".to_owned()),
            None => Ok(sent),
        }
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

/// Creates the stream `name` over `subjects` if it does not exist yet.
pub async fn ensure_stream(
    js: &jetstream::Context,
    name: &str,
    subjects: &str,
    replicas: usize,
) -> Result<(), String> {
    // A cluster may be electing a leader, or another replica may be creating
    // the same stream: a timeout at start-up is worth waiting out, not dying
    // of (the reliability suite's scale-out scenario found this).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut pause = Duration::from_millis(250);
    loop {
        let created = js
            .get_or_create_stream(jetstream::stream::Config {
                name: name.to_owned(),
                subjects: vec![subjects.to_owned()],
                storage: jetstream::stream::StorageType::File,
                num_replicas: replicas.max(1),
                duplicate_window: Duration::from_secs(120),
                ..Default::default()
            })
            .await;
        match created {
            Ok(_) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(stream = name, error = %e, "stream not ready; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            Err(e) => return Err(format!("cannot create stream {name}: {e}")),
        }
    }
}
