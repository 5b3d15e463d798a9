//! What every request passes through: the request id (`x-request-id`, made up
//! when absent, echoed on every response, sent on over NATS), the bound on
//! requests in flight ([`shed_load`]), the admin bearer check (the [`Admin`]
//! extractor), per-route metrics, and the extraction of bodies, queries, path
//! ids, phones and idempotency keys into their types, whose rejections become
//! DESIGN.md §9 codes instead of axum's plain-text errors.

use std::time::Instant;

use axum::{
    Json,
    extract::{
        FromRequest, FromRequestParts, MatchedPath, Path, Request, State, rejection::JsonRejection,
    },
    http::{HeaderValue, header, request::Parts},
    middleware::Next,
    response::{IntoResponse, Response},
};
use serde::de::DeserializeOwned;
use shared_events::{ErrorCode, IdempotencyKey, Phone, ServiceError};
use svc_kit::nats::wire::{decode_value, refusal};
use tracing::Instrument;

use crate::{AppState, error::ApiError};

pub const REQUEST_ID: &str = "x-request-id";

/// The request id of the current request.
#[derive(Clone, Debug)]
pub struct RequestId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for RequestId {
    type Rejection = ApiError;
    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<RequestId>()
            .cloned()
            .ok_or_else(|| ApiError::new(ErrorCode::Internal, "request id missing"))
    }
}

/// Takes the caller's `x-request-id` if it is sane, or makes one; logs the
/// request in a span carrying it; echoes it; counts the response.
pub async fn request_id(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|s| !s.is_empty() && s.len() <= 128 && s.bytes().all(|b| b.is_ascii_graphic()))
        .map(str::to_owned)
        .unwrap_or_else(|| uuid::Uuid::now_v7().to_string());
    req.extensions_mut().insert(RequestId(id.clone()));
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let span =
        tracing::info_span!("http", request_id = %id, method = %req.method(), route = %route);
    let started = Instant::now();
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    state.metrics.observe(
        &route,
        resp.status().as_str(),
        started.elapsed().as_secs_f64(),
    );
    resp
}

/// Refuses a body declared larger than `max` with 413 `payload_too_large`,
/// after reading it (up to 1 MiB) off the connection. Answering without
/// reading it would close the connection under the client's feet, and the
/// client, still sending, would often lose the 413 to a reset (the fuzz run of
/// the reliability suite saw it). Larger bodies are refused at once.
pub async fn refuse_oversized(max: usize, req: Request, next: Next) -> Response {
    const DRAIN: usize = 1024 * 1024;
    let declared = req
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    match declared {
        Some(n) if n > max => {
            if n <= DRAIN {
                let _ = axum::body::to_bytes(req.into_body(), DRAIN).await;
            }
            ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large").into_response()
        }
        _ => next.run(req).await,
    }
}

/// Proof that the caller is an admin: admin handlers take it first, so a
/// request without `Authorization: Bearer <GATEWAY_ADMIN_TOKEN>` is refused
/// (401) before its path, query or body is looked at. Being an argument, the
/// requirement is visible in each handler and in its OpenAPI entry.
pub struct Admin;

impl FromRequestParts<AppState> for Admin {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let given = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if constant_time_eq(given.as_bytes(), state.admin_token.as_bytes()) {
            return Ok(Admin);
        }
        let mut resp = ApiError::new(
            ErrorCode::Unauthorized,
            "admin routes need Authorization: Bearer <GATEWAY_ADMIN_TOKEN>",
        )
        .into_response();
        resp.headers_mut()
            .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        Err(resp)
    }
}

pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A JSON body whose rejections are §9 errors: a syntax error is
/// `malformed_json`; a value of the wrong shape is `validation_failed` naming
/// its field, unless the value has a word of its own.
pub struct Body<T>(pub T);

impl<S, T> FromRequest<S> for Body<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        // JSON as a value first (syntax, content type, size), then the type.
        match Json::<serde_json::Value>::from_request(req, state).await {
            Ok(Json(v)) => decode_value(v).map(Body).map_err(ApiError::from),
            Err(rejection) => Err(match rejection {
                JsonRejection::MissingJsonContentType(_) => ApiError::new(
                    ErrorCode::UnsupportedMediaType,
                    "send JSON with Content-Type: application/json",
                ),
                JsonRejection::BytesRejection(e) if e.status().as_u16() == 413 => {
                    ApiError::new(ErrorCode::PayloadTooLarge, "the body is too large")
                }
                other => ApiError::new(ErrorCode::MalformedJson, other.body_text()),
            }),
        }
    }
}

/// Query parameters whose rejections are `validation_failed` naming the
/// parameter.
pub struct Params<T>(pub T);

impl<S, T> FromRequestParts<S> for Params<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let query = parts.uri.query().unwrap_or_default();
        let de = serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
        serde_path_to_error::deserialize(de)
            .map(Params)
            .map_err(|e| ApiError::from(refusal(&e.path().to_string(), &e.inner().to_string())))
    }
}

/// An id in the path. One that does not parse names nothing that exists: it
/// is the 404 of its kind (`group_not_found`, `not_found`…), as a well-formed
/// unknown id would be.
pub struct PathId<T>(pub T);

impl<S, T> FromRequestParts<S> for PathId<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::NotFound, e.body_text()))?;
        decode_value(serde_json::Value::String(raw))
            .map(PathId)
            .map_err(ApiError::from)
    }
}

/// A phone in the path, in E.164 or in `DEFAULT_REGION`'s national format.
pub struct PathPhone(pub Phone);

impl FromRequestParts<AppState> for PathPhone {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let Path(raw) = Path::<String>::from_request_parts(parts, state)
            .await
            .map_err(|e| ApiError::new(ErrorCode::NotFound, e.body_text()))?;
        state.phone(&raw).map(PathPhone)
    }
}

/// The `Idempotency-Key` header of a credit or debit: required, 1–200
/// characters.
pub struct IdemKey(pub IdempotencyKey);

impl<S: Send + Sync> FromRequestParts<S> for IdemKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        let value = parts
            .headers
            .get("idempotency-key")
            .ok_or_else(|| ApiError::field("Idempotency-Key", "this header is required"))?;
        value
            .to_str()
            .ok()
            .and_then(IdempotencyKey::parse)
            .map(IdemKey)
            .ok_or_else(|| ApiError::field("Idempotency-Key", IdempotencyKey::RULE))
    }
}

/// The bound on requests in flight: past it the gateway answers 503
/// `service_unavailable` with `Retry-After` at once, instead of queueing.
/// Health and metrics are not counted, so a saturated gateway still says so;
/// nor are the console's live streams, which have their own cap and would
/// otherwise hold permits for hours.
pub async fn shed_load(State(state): State<AppState>, req: Request, next: Next) -> Response {
    let path = req.uri().path();
    let counted = path.starts_with("/api/")
        || (path.starts_with("/console/")
            && path != "/console/live/events"
            && !path.starts_with("/console/assets/"));
    let permit = if counted {
        match state.in_flight.clone().try_acquire_owned() {
            Ok(p) => Some(p),
            Err(_) => {
                state.metrics.observe("shed", "503", 0.0);
                return ApiError::from(ServiceError::overloaded("the gateway")).into_response();
            }
        }
    } else {
        None
    };
    let resp = next.run(req).await;
    drop(permit);
    resp
}
