//! wallet-svc's one error type, mapped to the `code` words of DESIGN.md §9.
//! Failures that are ours map to `internal`, keep their cause, and go to the
//! log.

use shared_events::{ErrorCode, FieldError, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
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
    #[error(transparent)]
    Kit(#[from] svc_kit::Error),
    #[error("database: {0}")]
    Db(#[from] svc_kit::db::SqlError),
    /// The ledger holds something it never should (a credit without its
    /// transfer, a redemption credit from no group…).
    #[error("ledger: {0}")]
    Ledger(String),
}

impl Error {
    /// One field at fault.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::Validation(_) => C::ValidationFailed,
            Self::WalletNotFound => C::WalletNotFound,
            Self::CreditNotFound => C::NotFound,
            Self::WalletExists => C::WalletExists,
            Self::InsufficientFunds => C::InsufficientFunds,
            Self::IdempotencyConflict => C::IdempotencyConflict,
            Self::Kit(_) | Self::Db(_) | Self::Ledger(_) => C::Internal,
        }
    }
}

impl svc_kit::ReplyError for Error {
    fn to_reply(&self) -> ServiceError {
        let fields = if let Self::Validation(errors) = self {
            errors.as_slice()
        } else {
            &[]
        };
        svc_kit::error::reply_for(self.code(), self, fields)
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
