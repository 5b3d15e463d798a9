//! wallet-svc's one error type, mapped to the `code` words of DESIGN.md §9.
//! Failures that are ours map to `internal`; their details go to the log.

use shared_events::{ErrorCode, FieldError, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {0}")]
    Request(ServiceError),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("not a valid phone number")]
    InvalidPhone,
    #[error("no wallet for this phone")]
    WalletNotFound,
    #[error("no credit for this redemption (yet)")]
    CreditNotFound,
    #[error("a wallet for this phone already exists")]
    WalletExists,
    #[error("the balance is too low for this debit")]
    InsufficientFunds,
    #[error("this idempotency key was used with a different request")]
    IdempotencyConflict,
    #[error("configuration: {0}")]
    Config(String),
    #[error("NATS: {0}")]
    Nats(String),
    #[error("ledger: {0}")]
    Ledger(String),
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
}

impl Error {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::Request(e) => e.code,
            Self::Validation(_) => C::ValidationFailed,
            Self::InvalidPhone => C::InvalidPhone,
            Self::WalletNotFound => C::WalletNotFound,
            Self::CreditNotFound => C::NotFound,
            Self::WalletExists => C::WalletExists,
            Self::InsufficientFunds => C::InsufficientFunds,
            Self::IdempotencyConflict => C::IdempotencyConflict,
            Self::Config(_) | Self::Nats(_) | Self::Ledger(_) | Self::Db(_) => C::Internal,
        }
    }

    pub fn to_service_error(&self) -> ServiceError {
        match self {
            Self::Request(e) => e.clone(),
            Self::Validation(errors) => ServiceError {
                code: ErrorCode::ValidationFailed,
                message: "the request has invalid fields".into(),
                errors: errors.clone(),
            },
            Self::Config(_) | Self::Nats(_) | Self::Ledger(_) | Self::Db(_) => {
                ServiceError::new(ErrorCode::Internal, "internal error")
            }
            other => ServiceError::new(other.code(), other.to_string()),
        }
    }
}

impl From<ServiceError> for Error {
    fn from(e: ServiceError) -> Self {
        Self::Request(e)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
