//! A durable JetStream pull consumer with explicit acks (DESIGN.md §6): the
//! handler applies a message's effect and commits it, and only then is the
//! message acked. A process that dies in between gets the message again after
//! `ack_wait`, and the effect's durable key (for a credit, the transfer's
//! `redemption:<id>`) turns the second delivery into a no-op.
//!
//! The consumer keeps one long-lived pull with a prefetch window open, so the
//! server hands messages over as they come. The handler gets every message
//! that has arrived (up to `batch`), in stream order, so that it can apply
//! them in one transaction: under load one commit (one fsync) serves many
//! events, and an idle consumer still handles a lone event as soon as it
//! arrives.

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream::{
    self, AckKind,
    consumer::{AckPolicy, DeliverPolicy, pull},
};
use futures::{FutureExt, StreamExt};
use tokio_util::sync::CancellationToken;

use crate::{healing::Links, metrics::Metrics};

/// The pull's idle heartbeat: two missed ones end it (the consumer or the
/// broker is gone) and it is made again.
const HEARTBEAT: Duration = Duration::from_secs(5);

/// What became of one message.
#[derive(Debug)]
pub enum Outcome {
    /// The effect is committed (or was already): ack.
    Done,
    /// A passing failure (database busy, …): deliver again later.
    Retry(String),
    /// The message can never be applied (unreadable, wrong type): terminate it
    /// so it does not block the stream, and log it loudly.
    Poison(String),
}

#[derive(Debug, Clone)]
pub struct Spec {
    pub stream: &'static str,
    /// Durable name, shared by every replica (they split the messages).
    pub durable: String,
    pub filter: &'static str,
    pub ack_wait: Duration,
    pub batch: usize,
}

/// Consumes until `stop` is cancelled, calling `handle` for each batch of
/// messages that arrived (in stream order); it answers each message's outcome.
///
/// The consumer heals itself: when its pull ends (missed heartbeats, the
/// consumer deleted), or when an idle consumer's
/// periodic look-up finds it (or its stream) gone, because the broker lost its
/// store, it is created again as soon as its stream exists, and counted.
/// `links` says it is missing meanwhile.
pub async fn run<F, Fut>(
    js: jetstream::Context,
    spec: Spec,
    stop: CancellationToken,
    links: Arc<Links>,
    metrics: Metrics,
    handle: F,
) where
    F: Fn(Vec<jetstream::Message>) -> Fut,
    Fut: Future<Output = Vec<(jetstream::Message, Outcome)>>,
{
    let what = format!("consumer {}", spec.durable);
    let mut backoff = Duration::from_millis(100);
    // A consumer made after the first one existed is a recreation.
    let mut existed = false;
    'outer: while !stop.is_cancelled() {
        let consumer = match get_consumer(&js, &spec).await {
            Ok((c, created)) => {
                if created && existed {
                    metrics.recreated(&what);
                    tracing::warn!(durable = %spec.durable, "consumer was missing (the broker lost its store?); recreated");
                }
                existed = true;
                links.set_missing(&what, false);
                c
            }
            Err(e) => {
                links.set_missing(&what, existed);
                tracing::warn!(durable = %spec.durable, error = %e, "consumer unavailable; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(backoff) => {}
                    _ = stop.cancelled() => break,
                }
                backoff = (backoff * 2).min(Duration::from_secs(2));
                continue;
            }
        };
        backoff = Duration::from_millis(100);
        // One long-lived pull with a prefetch window: the server pushes
        // messages as they come (no pull request per fetch), and asks for
        // more when half the window is used. Missing heartbeats or a deleted
        // consumer end it, and it is made again above.
        let mut messages = match consumer
            .stream()
            .max_messages_per_batch(spec.batch)
            .heartbeat(HEARTBEAT)
            .expires(HEARTBEAT * 6)
            .messages()
            .await
        {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(durable = %spec.durable, error = %e, "cannot pull; retrying");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue 'outer;
            }
        };
        loop {
            let first = tokio::select! {
                m = messages.next() => m,
                _ = tokio::time::sleep(crate::healing::WATCH_EVERY) => {
                    // Idle: a consumer that is gone says nothing until its
                    // heartbeats are missed; look it up now and then.
                    let mut c = consumer.clone();
                    if c.info().await.is_err() {
                        tracing::debug!(durable = %spec.durable, "consumer not found on look-up");
                        continue 'outer;
                    }
                    continue;
                }
                _ = stop.cancelled() => break 'outer,
            };
            let mut msgs = match first {
                Some(Ok(m)) => vec![m],
                Some(Err(e)) => {
                    tracing::warn!(durable = %spec.durable, error = %e, "pull ended");
                    continue 'outer;
                }
                None => continue 'outer,
            };
            // What has arrived already joins this batch: one transaction (one
            // commit) for all of it under load, none of it waiting when idle.
            while msgs.len() < spec.batch {
                match messages.next().now_or_never() {
                    Some(Some(Ok(m))) => msgs.push(m),
                    _ => break,
                }
            }
            for (msg, outcome) in handle(msgs).await {
                let acked = match outcome {
                    Outcome::Done => msg.ack().await,
                    Outcome::Retry(why) => {
                        tracing::warn!(subject = %msg.subject, %why, "will retry message");
                        msg.ack_with(AckKind::Nak(Some(Duration::from_millis(500))))
                            .await
                    }
                    Outcome::Poison(why) => {
                        tracing::error!(subject = %msg.subject, %why, "unusable message terminated");
                        msg.ack_with(AckKind::Term).await
                    }
                };
                if let Err(e) = acked {
                    // The effect is committed; redelivery will be a no-op.
                    tracing::warn!(error = %e, "ack failed");
                }
            }
        }
    }
}

/// The durable consumer, and whether it had to be created.
async fn get_consumer(
    js: &jetstream::Context,
    spec: &Spec,
) -> Result<(jetstream::consumer::Consumer<pull::Config>, bool), String> {
    let stream = js
        .get_stream(spec.stream)
        .await
        .map_err(|e| format!("stream {}: {e}", spec.stream))?;
    if let Ok(c) = stream.get_consumer(&spec.durable).await {
        return Ok((c, false));
    }
    stream
        .get_or_create_consumer(
            &spec.durable,
            pull::Config {
                durable_name: Some(spec.durable.clone()),
                filter_subject: spec.filter.to_owned(),
                ack_policy: AckPolicy::Explicit,
                deliver_policy: DeliverPolicy::All,
                ack_wait: spec.ack_wait,
                max_ack_pending: 10_000,
                ..Default::default()
            },
        )
        .await
        .map(|c| (c, true))
        .map_err(|e| format!("consumer {}: {e}", spec.durable))
}
