//! The runtime every service of the platform shares, so that each service crate
//! holds only its own domain ([`runtime`]): the database handle (SQLite or
//! PostgreSQL behind one query dialect), the transactional outbox and its
//! publisher, the streams and their limits, the consumers, NATS endpoints built
//! from their types, the health and metrics HTTP surface, logging set-up, the
//! shutdown signal and the drain.

pub mod consumer;
pub mod db;
pub mod drain;
pub mod endpoints;
pub mod error;
pub mod healing;
pub mod health;
pub mod metrics;
pub mod nats;
pub mod outbox;
pub mod runtime;
pub mod streams;
pub mod telemetry;
pub mod time;

pub use endpoints::{Ctx, Endpoints};
pub use error::{Error, ReplyError};
pub use runtime::{Args, HasKit, Kit, Service};

/// Resolves on SIGTERM or Ctrl-C: the start of a graceful drain (DESIGN.md §10).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
    tracing::info!("shutdown signal received, draining");
}
