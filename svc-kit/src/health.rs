//! The HTTP surface of a back-end service: `/healthz` (the process is alive),
//! `/readyz` (its dependencies answer) and `/metrics` (Prometheus text).

use std::{future::Future, sync::Arc};

use axum::{Router, extract::State, http::StatusCode, response::IntoResponse, routing::get};

use crate::metrics::Metrics;

/// What `/readyz` asks a service.
pub trait Readiness: Send + Sync + 'static {
    /// `Err(reason)` while a dependency is not usable.
    fn ready(&self) -> impl Future<Output = Result<(), String>> + Send;
}

struct HealthState<R> {
    readiness: R,
    metrics: Metrics,
}

/// The readiness of a service with a database: NATS connected, every stream
/// and consumer it relies on there (see `crate::healing`), and the database
/// answering.
pub struct NatsAndDb {
    pub client: async_nats::Client,
    pub db: crate::db::Db,
    pub links: std::sync::Arc<crate::healing::Links>,
}

impl Readiness for NatsAndDb {
    async fn ready(&self) -> Result<(), String> {
        if self.client.connection_state() != async_nats::connection::State::Connected {
            return Err("NATS is not connected".into());
        }
        let missing = self.links.missing();
        if !missing.is_empty() {
            return Err(format!("missing, being recreated: {}", missing.join(", ")));
        }
        self.db.ping().await.map_err(|e| format!("database: {e}"))
    }
}

pub fn router<R: Readiness>(readiness: R, metrics: Metrics) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz::<R>))
        .route("/metrics", get(metrics_text::<R>))
        .with_state(Arc::new(HealthState { readiness, metrics }))
}

async fn readyz<R: Readiness>(State(s): State<Arc<HealthState<R>>>) -> impl IntoResponse {
    match s.readiness.ready().await {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        ),
    }
}

async fn metrics_text<R: Readiness>(State(s): State<Arc<HealthState<R>>>) -> impl IntoResponse {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        s.metrics.render(),
    )
}
