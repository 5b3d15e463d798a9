//! giftcode-svc's one error type. Each variant maps to a `code` word of DESIGN.md
//! §9; failures that are ours (database, configuration) map to `internal` and
//! their details go to the log, not to the caller.

use shared_events::{ErrorCode, FieldError, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid request: {0}")]
    Request(ServiceError),
    #[error("validation failed")]
    Validation(Vec<FieldError>),
    #[error("not a valid phone number")]
    InvalidPhone,
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
    #[error("configuration: {0}")]
    Config(String),
    #[error("NATS: {0}")]
    Nats(String),
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
            Self::Config(_) | Self::Nats(_) | Self::Db(_) => C::Internal,
        }
    }

    /// The reply body. Internal details stay in the log.
    pub fn to_service_error(&self) -> ServiceError {
        match self {
            Self::Request(e) => e.clone(),
            Self::Validation(errors) => ServiceError {
                code: ErrorCode::ValidationFailed,
                message: "the request has invalid fields".into(),
                errors: errors.clone(),
            },
            Self::Config(_) | Self::Nats(_) | Self::Db(_) => {
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
