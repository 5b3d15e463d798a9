//! The stable error words of DESIGN.md §9 and the error body every NATS service
//! replies with. The gateway turns a [`ServiceError`] into
//! `application/problem+json` with the status of its [`ErrorCode`].

use serde::{Deserialize, Serialize};

/// The machine-readable `code` of an error. Serialized as its snake_case word.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    MalformedJson,
    UnsupportedMediaType,
    PayloadTooLarge,
    ValidationFailed,
    InvalidPhone,
    InvalidCode,
    Unauthorized,
    NotFound,
    CodeNotFound,
    WalletNotFound,
    GroupNotFound,
    CodeAlreadyRedeemed,
    RedemptionLimitReached,
    PerPhoneLimitReached,
    WalletExists,
    IdempotencyConflict,
    /// A custom code that is already in use (DESIGN.md §9 has no word for it;
    /// 409 like the other conflicts).
    CodeExists,
    /// A reversal asked of a redemption whose credit is not confirmed yet.
    RedemptionNotCredited,
    CodeExpired,
    CodeInactive,
    CodeNotYetActive,
    InsufficientFunds,
    RateLimited,
    ServiceUnavailable,
    /// Something broke on our side. Never caused by client input.
    Internal,
}

impl ErrorCode {
    /// The HTTP status of §9.
    pub fn status(self) -> u16 {
        use ErrorCode::*;
        match self {
            MalformedJson => 400,
            UnsupportedMediaType => 415,
            PayloadTooLarge => 413,
            ValidationFailed | InvalidPhone | InvalidCode | InsufficientFunds => 422,
            Unauthorized => 401,
            NotFound | CodeNotFound | WalletNotFound | GroupNotFound => 404,
            CodeAlreadyRedeemed
            | RedemptionLimitReached
            | PerPhoneLimitReached
            | WalletExists
            | IdempotencyConflict
            | CodeExists
            | RedemptionNotCredited
            | CodeNotYetActive => 409,
            CodeExpired | CodeInactive => 410,
            RateLimited => 429,
            ServiceUnavailable => 503,
            Internal => 500,
        }
    }

    /// The snake_case word, as on the wire.
    pub fn as_str(self) -> &'static str {
        use ErrorCode::*;
        match self {
            MalformedJson => "malformed_json",
            UnsupportedMediaType => "unsupported_media_type",
            PayloadTooLarge => "payload_too_large",
            ValidationFailed => "validation_failed",
            InvalidPhone => "invalid_phone",
            InvalidCode => "invalid_code",
            Unauthorized => "unauthorized",
            NotFound => "not_found",
            CodeNotFound => "code_not_found",
            WalletNotFound => "wallet_not_found",
            GroupNotFound => "group_not_found",
            CodeAlreadyRedeemed => "code_already_redeemed",
            RedemptionLimitReached => "redemption_limit_reached",
            PerPhoneLimitReached => "per_phone_limit_reached",
            WalletExists => "wallet_exists",
            IdempotencyConflict => "idempotency_conflict",
            CodeExists => "code_exists",
            RedemptionNotCredited => "redemption_not_credited",
            CodeExpired => "code_expired",
            CodeInactive => "code_inactive",
            CodeNotYetActive => "code_not_yet_active",
            InsufficientFunds => "insufficient_funds",
            RateLimited => "rate_limited",
            ServiceUnavailable => "service_unavailable",
            Internal => "internal",
        }
    }
}

impl ErrorCode {
    /// Every code, in the order of the enum.
    pub const ALL: [ErrorCode; 25] = {
        use ErrorCode::*;
        [
            MalformedJson,
            UnsupportedMediaType,
            PayloadTooLarge,
            ValidationFailed,
            InvalidPhone,
            InvalidCode,
            Unauthorized,
            NotFound,
            CodeNotFound,
            WalletNotFound,
            GroupNotFound,
            CodeAlreadyRedeemed,
            RedemptionLimitReached,
            PerPhoneLimitReached,
            WalletExists,
            IdempotencyConflict,
            CodeExists,
            RedemptionNotCredited,
            CodeExpired,
            CodeInactive,
            CodeNotYetActive,
            InsufficientFunds,
            RateLimited,
            ServiceUnavailable,
            Internal,
        ]
    };

    /// The code of a snake_case word.
    pub fn parse(word: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|c| c.as_str() == word)
    }

    /// A value type's refusal that carries its own word (`invalid_phone: …`,
    /// see [`crate::values`]): the word and the rest of the message. Other
    /// messages are plain `validation_failed` ones.
    pub fn in_message(message: &str) -> Option<(Self, &str)> {
        let (word, rest) = message.split_once(": ")?;
        Self::parse(word).map(|c| (c, rest))
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One invalid field of a `validation_failed` error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: &str, message: impl Into<String>) -> Self {
        Self {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// The JSON body of an error reply on NATS: `{code, message, errors?}`. The reply
/// also carries the service API headers `Nats-Service-Error` (the code word) and
/// `Nats-Service-Error-Code` (the HTTP status).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceError {
    pub code: ErrorCode,
    pub message: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
    /// With `service_unavailable` from an overloaded service: seconds after
    /// which a retry is likely to be taken.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after: Option<u64>,
}

impl ServiceError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// `validation_failed` naming its fields.
    pub fn fields(errors: Vec<FieldError>) -> Self {
        Self {
            errors,
            ..Self::new(
                ErrorCode::ValidationFailed,
                "the request has invalid fields",
            )
        }
    }

    /// `service_unavailable` because the service is at its bound: retry in
    /// a second.
    pub fn overloaded(what: &str) -> Self {
        Self {
            retry_after: Some(1),
            ..Self::new(
                ErrorCode::ServiceUnavailable,
                format!("{what} is at capacity; retry shortly"),
            )
        }
    }
}

impl std::fmt::Display for ServiceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.code, self.message)
    }
}

impl std::error::Error for ServiceError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_code_serializes_as_its_word_and_back() {
        for code in ErrorCode::ALL {
            assert_eq!(ErrorCode::parse(code.as_str()), Some(code));
            let json = serde_json::to_string(&code).expect("serialize");
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            let back: ErrorCode = serde_json::from_str(&json).expect("parse");
            assert_eq!(back, code);
        }
    }

    #[test]
    fn statuses_follow_design_section_9() {
        use ErrorCode::*;
        let expect = [
            (MalformedJson, 400),
            (UnsupportedMediaType, 415),
            (PayloadTooLarge, 413),
            (ValidationFailed, 422),
            (InvalidPhone, 422),
            (InvalidCode, 422),
            (Unauthorized, 401),
            (GroupNotFound, 404),
            (CodeAlreadyRedeemed, 409),
            (IdempotencyConflict, 409),
            (CodeExpired, 410),
            (CodeInactive, 410),
            (CodeNotYetActive, 409),
            (InsufficientFunds, 422),
            (RateLimited, 429),
            (ServiceUnavailable, 503),
        ];
        for (code, status) in expect {
            assert_eq!(code.status(), status, "{code}");
        }
    }

    #[test]
    fn service_error_body_round_trips() {
        let mut err = ServiceError::new(ErrorCode::ValidationFailed, "bad group");
        err.errors
            .push(FieldError::new("amount", "must be 1..=10^12"));
        let json = serde_json::to_string(&err).expect("serialize");
        assert!(json.contains(r#""code":"validation_failed""#));
        let back: ServiceError = serde_json::from_str(&json).expect("parse");
        assert_eq!(back, err);
        let plain = serde_json::to_value(ServiceError::new(ErrorCode::CodeNotFound, "no"))
            .expect("serialize");
        assert!(plain.get("errors").is_none(), "empty errors are omitted");
        assert!(plain.get("retry_after").is_none());
        assert_eq!(
            ErrorCode::in_message("invalid_phone: a phone here is E.164"),
            Some((ErrorCode::InvalidPhone, "a phone here is E.164"))
        );
        assert_eq!(ErrorCode::in_message("must be from 1 to 500"), None);
        assert_eq!(ServiceError::overloaded("giftcode").retry_after, Some(1));
    }
}
