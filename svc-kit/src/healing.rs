//! Healing a broker that lost its memory (issue 11, RELIABILITY.md). The bus
//! is not the book of record: the databases are. When nats-server comes back
//! with an empty store, the streams and durable consumers a service relies on
//! are gone, and so is every event that was in them.
//!
//! - [`Links`] says what is missing right now; `/readyz` is not ready while
//!   anything is.
//! - [`watch_streams`] looks for the service's streams every few seconds and
//!   recreates one that is missing, so publishing resumes; the consumers
//!   (`crate::consumer`) recreate themselves the same way.
//! - Events already published into the lost store are published again by the
//!   services' re-drives ([`crate::Service::redrives`]): an event whose
//!   downstream effect has not been seen in time goes out again, same id.

use std::{collections::BTreeSet, sync::Mutex, time::Duration};

use async_nats::jetstream::{self, ErrorCode, context::GetStreamErrorKind};
use shared_events::subjects::StreamDef;
use tokio_util::sync::CancellationToken;

use crate::{metrics::Metrics, streams::StreamArgs};

/// How often the streams are looked for.
pub const WATCH_EVERY: Duration = Duration::from_secs(2);

/// What is missing now: `stream X`, `consumer Y`.
#[derive(Debug, Default)]
pub struct Links {
    missing: Mutex<BTreeSet<String>>,
}

impl Links {
    pub fn set_missing(&self, what: &str, missing: bool) {
        let mut set = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        if missing {
            set.insert(what.to_owned());
        } else {
            set.remove(what);
        }
    }

    /// What is missing, for `/readyz`; empty when all is there.
    pub fn missing(&self) -> Vec<String> {
        let set = self.missing.lock().unwrap_or_else(|p| p.into_inner());
        set.iter().cloned().collect()
    }
}

/// Whether a JetStream API error says the stream is not there.
pub fn stream_not_found(e: &jetstream::context::GetStreamError) -> bool {
    matches!(e.kind(), GetStreamErrorKind::JetStream(j) if j.error_code() == ErrorCode::STREAM_NOT_FOUND)
}

/// Until `stop`: every [`WATCH_EVERY`], each of `streams` (with whether this
/// service owns it) is looked up, and one that is missing is created again.
pub async fn watch_streams(
    js: jetstream::Context,
    streams: Vec<(StreamDef, bool)>,
    args: StreamArgs,
    links: std::sync::Arc<Links>,
    metrics: Metrics,
    stop: CancellationToken,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(WATCH_EVERY) => {}
            _ = stop.cancelled() => return,
        }
        for (stream, owned) in &streams {
            let what = format!("stream {}", stream.name);
            match js.get_stream(stream.name).await {
                Ok(_) => links.set_missing(&what, false),
                Err(e) if stream_not_found(&e) => {
                    links.set_missing(&what, true);
                    tracing::warn!(
                        stream = stream.name,
                        "stream missing (the broker lost its store?); recreating it"
                    );
                    let made = if *owned {
                        js.create_or_update_stream(args.config(stream))
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    } else {
                        js.get_or_create_stream(args.config(stream))
                            .await
                            .map(|_| ())
                            .map_err(|e| e.to_string())
                    };
                    match made {
                        Ok(()) => {
                            metrics.recreated(&what);
                            links.set_missing(&what, false);
                            tracing::warn!(stream = stream.name, "stream recreated");
                        }
                        Err(e) => {
                            tracing::warn!(stream = stream.name, error = %e, "cannot recreate the stream yet")
                        }
                    }
                }
                // The broker is away: /readyz says so already.
                Err(e) => tracing::debug!(stream = stream.name, error = %e, "stream lookup failed"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_say_what_is_missing_until_it_is_back() {
        let links = Links::default();
        assert!(links.missing().is_empty());
        links.set_missing("stream GIFTCODE_EVENTS", true);
        links.set_missing("consumer wallet-svc-redemptions", true);
        links.set_missing("stream GIFTCODE_EVENTS", false);
        assert_eq!(links.missing(), ["consumer wallet-svc-redemptions"]);
    }
}
