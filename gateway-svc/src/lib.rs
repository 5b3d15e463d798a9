//! gateway-svc: the one public HTTP API (DESIGN.md §7–§9). It owns nothing
//! durable and speaks to giftcode-svc and wallet-svc only over NATS.

mod config;
pub mod console;
pub mod error;
pub mod extract;
pub mod groups;
pub mod limits;
pub mod openapi;
pub mod reconciliation;
pub mod redemptions;
pub mod reversals;
pub mod wallets;

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    Router,
    extract::{DefaultBodyLimit, State},
    http::StatusCode,
    middleware,
    response::IntoResponse,
};
use shared_events::{
    ErrorCode, Phone, Region,
    subjects::{GIFTCODE_SERVICE, WALLET_SERVICE},
};
use svc_kit::{metrics::Metrics, nats::ServiceClient};
use tokio::{net::TcpListener, sync::Semaphore};
use utoipa::OpenApi;
use utoipa_axum::{router::OpenApiRouter, routes};

pub use config::Config;
pub use error::{ApiError, ApiResult};

/// Largest request body: a group creation request is the biggest, and small.
const MAX_BODY: usize = 64 * 1024;

#[derive(Clone)]
pub struct AppState(Arc<Inner>);

pub struct Inner {
    pub nats: ServiceClient,
    pub admin_token: String,
    pub region: Region,
    pub redeem_timeout: Duration,
    pub create_group_timeout: Duration,
    pub per_ip: limits::Window,
    pub failed_per_phone: limits::Window,
    pub metrics: Metrics,
    /// Permits for API requests in flight ([`extract::shed_load`]).
    pub in_flight: Arc<Semaphore>,
    /// Console sign-in and sessions.
    pub sessions: console::Sessions,
    /// The console's live feed.
    pub hub: Arc<console::Hub>,
}

impl AppState {
    /// A phone as a person typed it: E.164, or national format in
    /// `DEFAULT_REGION`. The gateway is the edge: past it, phones are E.164.
    pub fn phone(&self, input: &str) -> Result<Phone, ApiError> {
        Phone::parse(input, self.region)
            .map_err(|_| ApiError::new(ErrorCode::InvalidPhone, "not a valid phone number"))
    }
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Nats(#[from] svc_kit::nats::ConnectError),
    #[error("HTTP server: {0}")]
    Http(#[source] std::io::Error),
}

/// Every route, each registered with its OpenAPI entry (`routes!` takes the
/// handler's `#[utoipa::path]`), so the spec and the router cannot diverge.
fn routes() -> OpenApiRouter<AppState> {
    let api = OpenApiRouter::new()
        .routes(routes!(redemptions::redeem))
        .routes(routes!(redemptions::get))
        .routes(routes!(reversals::reverse))
        .routes(routes!(reversals::patch_code))
        .routes(routes!(groups::create, groups::list))
        .routes(routes!(groups::get, groups::patch))
        .routes(routes!(groups::codes))
        .routes(routes!(groups::redemptions))
        .routes(routes!(groups::timeline))
        .routes(routes!(groups::lookup))
        .routes(routes!(wallets::create, wallets::list))
        .routes(routes!(wallets::get))
        .routes(routes!(wallets::transactions))
        .routes(routes!(wallets::credit))
        .routes(routes!(wallets::debit))
        .routes(routes!(reconciliation::check));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .routes(routes!(openapi::spec))
        .routes(routes!(openapi::docs))
}

/// The OpenAPI document of [`router`], as `/openapi.json` serves it.
pub fn openapi_spec() -> utoipa::openapi::OpenApi {
    let mut spec = routes().into_openapi();
    openapi::complete(&mut spec);
    spec
}

/// The whole HTTP surface.
pub fn router(state: AppState) -> Router {
    let (router, _) = routes().split_for_parts();
    router
        .merge(console::router())
        .fallback(|| async { ApiError::new(ErrorCode::NotFound, "no such route") })
        .layer(DefaultBodyLimit::max(MAX_BODY))
        .layer(middleware::from_fn(|req, next| {
            extract::refuse_oversized(MAX_BODY, req, next)
        }))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            extract::shed_load,
        ))
        .layer(middleware::from_fn_with_state(
            state.clone(),
            extract::request_id,
        ))
        .with_state(state)
}

#[utoipa::path(
    get, path = "/healthz", tag = "operations", summary = "Alive",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain"))
)]
async fn healthz() -> &'static str {
    "ok\n"
}

#[utoipa::path(
    get, path = "/readyz", tag = "operations",
    summary = "Ready: NATS connected and both services answer `$SRV.PING`",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "What is not ready", body = String, content_type = "text/plain"),
    )
)]
/// Ready when NATS is connected and both services answer `$SRV.PING`.
async fn readyz(State(s): State<AppState>) -> impl IntoResponse {
    let client = s.nats.nats();
    if client.connection_state() != async_nats::connection::State::Connected {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: NATS is not connected\n".to_owned(),
        );
    }
    for service in [GIFTCODE_SERVICE, WALLET_SERVICE] {
        let ping = tokio::time::timeout(
            Duration::from_secs(1),
            client.request(format!("$SRV.PING.{service}"), "".into()),
        )
        .await;
        if !matches!(ping, Ok(Ok(_))) {
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                format!("not ready: {service} does not answer\n"),
            );
        }
    }
    (StatusCode::OK, "ready\n".to_owned())
}

#[utoipa::path(
    get, path = "/metrics", tag = "operations", summary = "Prometheus metrics (OpenMetrics text)",
    responses((status = 200, description = "Request counts and latencies by route and status", body = String, content_type = "application/openmetrics-text"))
)]
async fn metrics(State(s): State<AppState>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}

/// Serves until `shutdown` resolves, then lets requests in flight finish.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let client = config.nats.connect("gateway-svc").await?;
    // Told to stop: live streams end at once instead of holding up the drain.
    let stop = tokio_util::sync::CancellationToken::new();
    let shutdown = {
        let stop = stop.clone();
        async move {
            shutdown.await;
            stop.cancel();
        }
    };
    let nats = ServiceClient::new(client.clone(), Duration::from_secs(10));
    let admin_token = match config.admin_token.filter(|t| !t.trim().is_empty()) {
        Some(t) => t,
        None => {
            let token = console::session::random_hex(24);
            tracing::warn!(admin_token = %token, "GATEWAY_ADMIN_TOKEN is not set; generated this one (shown once)");
            token
        }
    };
    let state = AppState(Arc::new(Inner {
        sessions: console::Sessions::new(
            &admin_token,
            Duration::from_secs(config.console_session_hours.max(1) * 3600),
            config.console_signin_attempts,
            client.clone(),
        ),
        hub: console::Hub::new(nats.clone(), config.console_max_streams, stop),
        nats,
        admin_token,
        region: config.default_region,
        redeem_timeout: Duration::from_millis(config.redeem_timeout_ms),
        create_group_timeout: Duration::from_millis(config.create_group_timeout_ms),
        per_ip: limits::Window::new(config.rate_limit_per_ip, Duration::from_secs(60)),
        failed_per_phone: limits::Window::new(
            config.failed_redeems_per_phone,
            Duration::from_secs(3600),
        ),
        metrics: Metrics::new("gateway-svc", None),
        in_flight: Arc::new(Semaphore::new(config.max_in_flight.max(1))),
    }));
    // What the first caller would otherwise wait for: the phone-number
    // metadata (built on first use) and the reply subscription.
    Phone::warm();
    if let Err(e) = state.nats.warm().await {
        tracing::warn!(error = %e, "cannot open the reply inboxes yet; the first call will");
    }
    tracing::info!(addr = ?listener.local_addr().ok(), nats = %config.nats.url, "gateway-svc started");
    axum::serve(
        listener,
        router(state).into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(Error::Http)?;
    let _ = tokio::time::timeout(Duration::from_secs(2), client.flush()).await;
    tracing::info!("gateway-svc stopped");
    Ok(())
}
