//! The JetStream streams a service publishes to or reads from (DESIGN.md §6,
//! §10), and their limits.
//!
//! A stream keeps its events for `NATS_STREAM_MAX_AGE` and up to
//! `NATS_STREAM_MAX_BYTES`. The byte limit discards *new* messages: when a
//! stream is full a publish is refused, the event stays in its outbox and is
//! retried, so no limit ever drops an event a consumer has not acked. The age
//! limit does drop old events whatever their state; its default is far beyond
//! any outage the platform documents (RELIABILITY.md), and the databases, not
//! the bus, are the book of record.
//!
//! The service that publishes to a stream owns it: at start-up it creates the
//! stream, or updates it in place to the configured limits. A service that
//! only reads a stream creates it if it is missing (its owner may not have
//! started yet) and never changes it.

use std::time::Duration;

use async_nats::jetstream::{
    self,
    stream::{Config, DiscardPolicy, StorageType},
};
use shared_events::subjects::StreamDef;

use crate::error::Error;

#[derive(Debug, Clone, clap::Args)]
pub struct StreamArgs {
    /// Replicas of the JetStream streams this service creates (3 on a cluster).
    #[arg(
        long = "nats-stream-replicas",
        env = "NATS_STREAM_REPLICAS",
        default_value_t = 1
    )]
    pub replicas: usize,
    /// How long a stream keeps an event (s, m, h or d). Far beyond any outage:
    /// an event older than this is dropped even if unconsumed.
    #[arg(
        long = "nats-stream-max-age",
        env = "NATS_STREAM_MAX_AGE",
        default_value = "45d",
        value_parser = parse_age
    )]
    pub max_age: Duration,
    /// Largest size of each stream (B, KiB, MiB, GiB). When full, new
    /// publishes are refused and the outbox retries them: nothing is dropped.
    #[arg(
        long = "nats-stream-max-bytes",
        env = "NATS_STREAM_MAX_BYTES",
        default_value = "4GiB",
        value_parser = parse_bytes
    )]
    pub max_bytes: i64,
}

impl StreamArgs {
    /// The configuration of `stream` with these limits.
    pub fn config(&self, stream: &StreamDef) -> Config {
        Config {
            name: stream.name.to_owned(),
            subjects: vec![stream.subjects.to_owned()],
            storage: StorageType::File,
            num_replicas: self.replicas.max(1),
            duplicate_window: Duration::from_secs(120),
            max_age: self.max_age,
            max_bytes: self.max_bytes,
            discard: DiscardPolicy::New,
            ..Default::default()
        }
    }
}

/// Creates `stream`, or brings it to the configured limits: the owner's
/// start-up.
pub async fn ensure_owned(
    js: &jetstream::Context,
    stream: &StreamDef,
    args: &StreamArgs,
) -> Result<(), Error> {
    let config = args.config(stream);
    retrying(stream, || async {
        js.create_or_update_stream(config.clone())
            .await
            .map(|_| ())
            .map_err(Into::into)
    })
    .await
}

/// Creates `stream` if it is missing; never changes one that exists.
pub async fn ensure_read(
    js: &jetstream::Context,
    stream: &StreamDef,
    args: &StreamArgs,
) -> Result<(), Error> {
    let config = args.config(stream);
    retrying(stream, || async {
        js.get_or_create_stream(config.clone())
            .await
            .map(|_| ())
            .map_err(Into::into)
    })
    .await
}

/// A cluster may be electing a leader, or another replica may be creating the
/// same stream: a failure at start-up is worth a minute of retries, not a
/// crash (the reliability suite's scale-out scenario found this).
async fn retrying<F, Fut>(stream: &StreamDef, mut attempt: F) -> Result<(), Error>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<(), async_nats::Error>>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut pause = Duration::from_millis(250);
    loop {
        match attempt().await {
            Ok(()) => return Ok(()),
            Err(e) if tokio::time::Instant::now() < deadline => {
                tracing::warn!(stream = stream.name, error = %e, "stream not ready; retrying");
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(4));
            }
            Err(source) => {
                return Err(Error::Stream {
                    stream: stream.name,
                    source,
                });
            }
        }
    }
}

/// `90d`, `12h`, `30m`, `45s` (a bare number is seconds).
pub fn parse_age(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: u64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a number of s, m, h or d, like 45d"))?;
    let secs = match unit.trim() {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        other => return Err(format!("{s:?}: unknown unit {other:?} (use s, m, h or d)")),
    };
    match n.checked_mul(secs) {
        Some(total) if total > 0 => Ok(Duration::from_secs(total)),
        _ => Err(format!("{s:?}: must be more than zero and not absurd")),
    }
}

/// `4GiB`, `512MiB`, `1000000` (bytes).
pub fn parse_bytes(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (n, unit) = s.split_at(split);
    let n: i64 = n
        .parse()
        .map_err(|_| format!("{s:?}: expected a size like 4GiB"))?;
    let scale: i64 = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "TiB" => 1 << 40,
        other => {
            return Err(format!(
                "{s:?}: unknown unit {other:?} (use B, KiB, MiB, GiB)"
            ));
        }
    };
    match n.checked_mul(scale) {
        Some(total) if total >= 1 << 20 => Ok(total),
        _ => Err(format!("{s:?}: must be at least 1MiB")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_refuse_nonsense() {
        assert_eq!(parse_age("45d"), Ok(Duration::from_secs(45 * 86_400)));
        assert_eq!(parse_age("90"), Ok(Duration::from_secs(90)));
        assert!(parse_age("0d").is_err() && parse_age("3w").is_err() && parse_age("d").is_err());
        assert_eq!(parse_bytes("4GiB"), Ok(4 << 30));
        assert!(parse_bytes("12").is_err(), "a stream of 12 bytes is a typo");
        assert!(parse_bytes("4GB").is_err());
    }

    #[test]
    fn streams_discard_new_so_a_full_stream_refuses_publishes() {
        let args = StreamArgs {
            replicas: 1,
            max_age: Duration::from_secs(60),
            max_bytes: 1 << 30,
        };
        let c = args.config(&shared_events::subjects::GIFTCODE_EVENTS);
        assert_eq!(c.discard, DiscardPolicy::New);
        assert_eq!((c.max_bytes, c.max_age.as_secs()), (1 << 30, 60));
        assert_eq!(c.subjects, ["giftcode.events.>"]);
    }
}
