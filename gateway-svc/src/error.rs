//! The gateway's one error type: every failure leaves as
//! `application/problem+json` `{type, title, status, detail, code}` with the
//! `code` words of DESIGN.md §9. A service's error reply keeps its code; a
//! service that cannot be reached is `service_unavailable`.

use axum::{
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Serialize;
use shared_events::{ErrorCode, FieldError, ServiceError};
use svc_kit::nats::CallError;
use utoipa::ToSchema;

#[derive(Debug, thiserror::Error)]
#[error("{code}: {detail}")]
pub struct ApiError {
    pub code: ErrorCode,
    pub detail: String,
    pub errors: Vec<FieldError>,
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(code: ErrorCode, detail: impl Into<String>) -> Self {
        Self {
            code,
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    pub fn field(field: &str, message: &str) -> Self {
        Self {
            errors: vec![FieldError::new(field, message)],
            ..Self::new(
                ErrorCode::ValidationFailed,
                "the request has invalid fields",
            )
        }
    }
}

impl From<ServiceError> for ApiError {
    /// A service's refusal keeps its word, its fields and, when the service
    /// was at capacity, its `Retry-After`.
    fn from(e: ServiceError) -> Self {
        Self {
            code: e.code,
            detail: e.message,
            errors: e.errors,
            retry_after: e.retry_after,
        }
    }
}

impl From<CallError> for ApiError {
    fn from(e: CallError) -> Self {
        match e {
            CallError::Service(e) => e.into(),
            other => {
                tracing::warn!(error = %other, "service call failed");
                // Only "no responders" proves the request reached no service.
                // A timeout or a cut connection may come after a service
                // acted: say so, rather than promise nothing happened.
                let detail = match other {
                    CallError::NoResponders(_) => {
                        "a back-end service is unavailable; nothing was recorded"
                    }
                    CallError::Timeout(_) | CallError::Transport(_) => {
                        "a back-end service did not answer in time; the outcome is unknown. \
                         Retrying is safe: a redeem retried returns the original redemption"
                    }
                    _ => "internal error",
                };
                Self::new(other.code(), detail)
            }
        }
    }
}

fn title(code: ErrorCode) -> String {
    let words = code.as_str().replace('_', " ");
    let mut chars = words.chars();
    chars
        .next()
        .map(|c| c.to_uppercase().collect::<String>() + chars.as_str())
        .unwrap_or_default()
}

/// The body of every error (RFC 9457 problem details), as `/openapi.json`
/// describes it.
#[derive(Debug, Serialize, ToSchema)]
#[schema(example = json!({
    "type": "urn:wallet-platform:error:code_already_redeemed",
    "title": "Code already redeemed",
    "status": 409,
    "detail": "this code has been redeemed",
    "code": "code_already_redeemed"
}))]
pub struct Problem {
    /// `urn:wallet-platform:error:<code>`.
    #[serde(rename = "type")]
    pub kind: String,
    pub title: String,
    /// The HTTP status, repeated.
    pub status: u16,
    /// What went wrong, for people.
    pub detail: String,
    /// The stable word to branch on (DESIGN.md §9).
    pub code: ErrorCode,
    /// With `validation_failed`: the fields at fault.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status =
            StatusCode::from_u16(self.code.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let problem = Problem {
            kind: format!("urn:wallet-platform:error:{}", self.code.as_str()),
            title: title(self.code),
            status: status.as_u16(),
            detail: self.detail,
            code: self.code,
            errors: self.errors,
        };
        let body = serde_json::to_string(&problem).unwrap_or_default();
        let mut resp = (status, body).into_response();
        resp.headers_mut().insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/problem+json"),
        );
        if let Some(secs) = self.retry_after
            && let Ok(v) = HeaderValue::from_str(&secs.to_string())
        {
            resp.headers_mut().insert(header::RETRY_AFTER, v);
        }
        resp
    }
}

pub type ApiResult<T> = Result<T, ApiError>;
