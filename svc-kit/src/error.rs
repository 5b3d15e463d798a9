//! What can go wrong in the runtime itself, typed and with its cause kept, so a
//! log line says which step failed and why. A service's own error enum wraps
//! this one and maps it to `internal` (DESIGN.md §9): none of it is the
//! caller's fault.

use shared_events::ServiceError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("database: {0}")]
    Sql(#[from] sqlx::Error),
    #[error(transparent)]
    Connect(#[from] crate::nats::ConnectError),
    #[error("stream {stream}: {source}")]
    Stream {
        stream: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("NATS service {service}: {source}")]
    Service {
        service: &'static str,
        #[source]
        source: async_nats::Error,
    },
    #[error("publish: {0}")]
    Publish(#[source] async_nats::Error),
    #[error("cannot encode: {0}")]
    Encode(#[from] serde_json::Error),
    #[error("stored data is not what this build understands: {0}")]
    Decode(#[from] crate::db::DecodeError),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
    #[error("internal: {0}")]
    Internal(String),
}

/// A service's error, as a reply: its §9 word and message. Failures that are
/// the service's own answer `internal` and keep their detail for the log.
pub trait ReplyError: std::error::Error + Send + Sync + 'static {
    fn to_reply(&self) -> ServiceError;
}

impl ReplyError for Error {
    fn to_reply(&self) -> ServiceError {
        ServiceError::new(shared_events::ErrorCode::Internal, "internal error")
    }
}

impl ReplyError for ServiceError {
    fn to_reply(&self) -> ServiceError {
        self.clone()
    }
}
