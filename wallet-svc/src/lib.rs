//! wallet-svc — a skeleton. Wallets and their double-entry ledger: the NATS service `wallet`.
//!
//! So far it connects to NATS and serves `/healthz`, `/readyz` and `/metrics`;
//! its domain is built by its own issue on top of svc-kit and shared-events.

use std::{future::Future, net::SocketAddr};

use svc_kit::{health::Readiness, metrics::Metrics, nats::NatsArgs, telemetry::LogFormat};
use tokio::net::TcpListener;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "wallet-svc",
    version,
    about = "Wallets and their double-entry ledger: the NATS service `wallet`. (skeleton: health endpoints only)",
    after_help = "Logging is filtered with RUST_LOG (default: info)."
)]
pub struct Config {
    #[command(flatten)]
    pub nats: NatsArgs,
    /// Address of the HTTP server.
    #[arg(long, env = "WALLET_HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,
    /// Log output: text or json.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("NATS: {0}")]
    Nats(String),
    #[error("HTTP server: {0}")]
    Http(std::io::Error),
}

struct Ready(async_nats::Client);

impl Readiness for Ready {
    async fn ready(&self) -> Result<(), String> {
        match self.0.connection_state() {
            async_nats::connection::State::Connected => Ok(()),
            _ => Err("NATS is not connected".into()),
        }
    }
}

/// Serves until `shutdown` resolves.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), Error> {
    let client = config
        .nats
        .connect("wallet-svc")
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
    let router = svc_kit::health::router(Ready(client.clone()), Metrics::new("wallet-svc"));
    tracing::info!(addr = ?listener.local_addr().ok(), "wallet-svc (skeleton) started");
    axum::serve(listener, router)
        .with_graceful_shutdown(shutdown)
        .await
        .map_err(Error::Http)?;
    let _ = client.flush().await;
    Ok(())
}
