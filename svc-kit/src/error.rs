//! What can go wrong in the runtime itself, typed and with its cause kept, so a
//! log line says which step failed and why. A service's own error enum wraps
//! this one and maps it to `internal` (DESIGN.md §9): none of it is the
//! caller's fault.

use shared_events::{ErrorCode, FieldError, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Db(#[from] crate::db::DbError),
    #[error("database: {0}")]
    Sql(#[from] crate::db::SqlError),
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

/// The reply for an error whose word is `code`: a failure of ours says only
/// `internal` (its detail is for the log), `validation_failed` names its
/// `fields`, `service_unavailable` from a service means it is at capacity
/// (retry in a second), anything else says what the error says.
pub fn reply_for(
    code: ErrorCode,
    e: &dyn std::error::Error,
    fields: &[FieldError],
) -> ServiceError {
    match code {
        ErrorCode::Internal => ServiceError::new(code, "internal error"),
        ErrorCode::ValidationFailed => ServiceError::fields(fields.to_vec()),
        ErrorCode::ServiceUnavailable => ServiceError::overloaded("the service"),
        _ => ServiceError::new(code, e.to_string()),
    }
}

impl ReplyError for Error {
    fn to_reply(&self) -> ServiceError {
        reply_for(ErrorCode::Internal, self, &[])
    }
}

impl ReplyError for ServiceError {
    fn to_reply(&self) -> ServiceError {
        self.clone()
    }
}
