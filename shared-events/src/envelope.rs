//! The event envelope of DESIGN.md §6: `{id, type, version, occurred_at, source,
//! correlation_id, data}`. The envelope's `id` is also the `Nats-Msg-Id` header, so
//! JetStream drops a re-published duplicate and consumers dedupe by it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize, de::DeserializeOwned};
use uuid::Uuid;

/// An event payload: its `type` word, the subject it is published on, its version.
pub trait Event: Serialize + DeserializeOwned {
    /// The envelope's `type`, e.g. `giftcode.code.redeemed`.
    const TYPE: &'static str;
    /// The JetStream subject, e.g. `giftcode.events.code.redeemed`.
    const SUBJECT: &'static str;
    /// Bumped on an incompatible change of the payload.
    const VERSION: u32 = 1;
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<T> {
    pub id: Uuid,
    #[serde(rename = "type")]
    pub kind: String,
    pub version: u32,
    pub occurred_at: DateTime<Utc>,
    pub source: String,
    pub correlation_id: Option<String>,
    pub data: T,
}

impl<T: Event> Envelope<T> {
    /// A new envelope with a fresh UUID v7 id.
    pub fn new(source: &str, correlation_id: Option<String>, data: T) -> Self {
        Self {
            id: Uuid::now_v7(),
            kind: T::TYPE.to_owned(),
            version: T::VERSION,
            occurred_at: Utc::now(),
            source: source.to_owned(),
            correlation_id,
            data,
        }
    }

    /// The envelope of an event made before, rebuilt with its id and time:
    /// what a re-drive publishes again (same `Nats-Msg-Id`).
    pub fn again(
        id: Uuid,
        occurred_at: DateTime<Utc>,
        source: &str,
        correlation_id: Option<String>,
        data: T,
    ) -> Self {
        Self {
            id,
            kind: T::TYPE.to_owned(),
            version: T::VERSION,
            occurred_at,
            source: source.to_owned(),
            correlation_id,
            data,
        }
    }

    pub fn subject(&self) -> &'static str {
        T::SUBJECT
    }

    /// Parses an envelope and checks that its `type` and `version` are the ones
    /// this build understands, so that a consumer never applies a payload it
    /// misread.
    pub fn from_slice(bytes: &[u8]) -> Result<Self, EnvelopeError> {
        let env: Self = serde_json::from_slice(bytes).map_err(EnvelopeError::Json)?;
        if env.kind != T::TYPE || env.version != T::VERSION {
            return Err(EnvelopeError::Unexpected {
                kind: env.kind,
                version: env.version,
            });
        }
        Ok(env)
    }
}

#[derive(Debug)]
pub enum EnvelopeError {
    Json(serde_json::Error),
    Unexpected { kind: String, version: u32 },
}

impl std::fmt::Display for EnvelopeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Json(e) => write!(f, "malformed event: {e}"),
            Self::Unexpected { kind, version } => {
                write!(f, "unexpected event type {kind} version {version}")
            }
        }
    }
}

impl std::error::Error for EnvelopeError {}
