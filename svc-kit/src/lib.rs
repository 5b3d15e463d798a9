//! The runtime every service of the platform shares, so that each service crate
//! holds only its own domain: the database handle (SQLite or PostgreSQL behind one
//! query dialect), the transactional outbox and its publisher, NATS connection and
//! request/reply plumbing, the health and metrics HTTP surface, logging set-up and
//! the shutdown signal.

pub mod consumer;
pub mod db;
pub mod drain;
pub mod health;
pub mod metrics;
pub mod nats;
pub mod outbox;
pub mod telemetry;
pub mod time;

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

/// A currency code as configured (`CURRENCY`): three letters, upper-cased.
pub fn parse_currency(s: &str) -> Result<String, String> {
    let c = s.trim().to_ascii_uppercase();
    if c.len() == 3 && c.chars().all(|ch| ch.is_ascii_uppercase()) {
        Ok(c)
    } else {
        Err(format!("{s:?} is not a three-letter currency code"))
    }
}
