//! giftcode-svc's one error type. Each variant maps to a `code` word of DESIGN.md
//! §9; failures that are ours (database, runtime, an invariant broken) map to
//! `internal`, keep their cause, and go to the log, not to the caller.

use shared_events::{ErrorCode, FieldError, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("not a valid gift code")]
    InvalidCode,
    #[error("no such gift-code group")]
    GroupNotFound,
    #[error("no such gift code")]
    CodeNotFound,
    #[error("no such redemption")]
    RedemptionNotFound,
    #[error("this code has already been redeemed")]
    CodeAlreadyRedeemed,
    #[error("this code has reached its redemption limit")]
    RedemptionLimitReached,
    #[error("this phone has reached the group's per-phone limit")]
    PerPhoneLimitReached,
    #[error("this code is already in use")]
    CodeExists,
    #[error("this code has expired")]
    CodeExpired,
    #[error("this code's group is inactive")]
    CodeInactive,
    #[error("this code is not active yet")]
    CodeNotYetActive,
    #[error("this code is disabled")]
    CodeDisabled,
    #[error("this redemption's credit is not confirmed yet; try again shortly")]
    RedemptionNotCredited,
    #[error("this Idempotency-Key was used with another request")]
    IdempotencyConflict,
    /// Bad configuration, found at start-up.
    #[error("configuration: {0}")]
    Config(String),
    #[error(transparent)]
    Kit(#[from] svc_kit::Error),
    #[error("database: {0}")]
    Db(#[from] svc_kit::db::SqlError),
    /// Something that cannot happen did.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    pub fn validation(field: &str, message: impl Into<String>) -> Self {
        Self::Validation(vec![FieldError::new(field, message)])
    }

    pub fn code(&self) -> ErrorCode {
        use ErrorCode as C;
        match self {
            Self::Validation(_) => C::ValidationFailed,
            Self::InvalidCode => C::InvalidCode,
            Self::GroupNotFound => C::GroupNotFound,
            Self::CodeNotFound => C::CodeNotFound,
            Self::RedemptionNotFound => C::NotFound,
            Self::CodeAlreadyRedeemed => C::CodeAlreadyRedeemed,
            Self::RedemptionLimitReached => C::RedemptionLimitReached,
            Self::PerPhoneLimitReached => C::PerPhoneLimitReached,
            Self::CodeExists => C::CodeExists,
            Self::CodeExpired => C::CodeExpired,
            Self::CodeInactive => C::CodeInactive,
            Self::CodeNotYetActive => C::CodeNotYetActive,
            Self::CodeDisabled => C::CodeInactive,
            Self::RedemptionNotCredited => C::RedemptionNotCredited,
            Self::IdempotencyConflict => C::IdempotencyConflict,
            Self::Config(_) | Self::Kit(_) | Self::Db(_) | Self::Internal(_) => C::Internal,
        }
    }
}

impl svc_kit::ReplyError for Error {
    fn to_reply(&self) -> ServiceError {
        let fields = match self {
            Self::Validation(errors) => errors.as_slice(),
            _ => &[],
        };
        svc_kit::error::reply_for(self.code(), self, fields)
    }
}

impl From<svc_kit::db::DecodeError> for Error {
    fn from(e: svc_kit::db::DecodeError) -> Self {
        Self::Kit(e.into())
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
