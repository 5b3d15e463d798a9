//! The graceful drain every back-end service runs on SIGTERM (DESIGN.md §10),
//! in dependency order: stop consuming events, stop taking requests, finish
//! those in flight, publish what the outbox holds, flush NATS, stop HTTP, close
//! the database. Every step has a deadline: with the broker gone, waiting for
//! it would hang shutdown forever, and whatever is unsent stays in the outbox
//! for the next start.

use std::time::Duration;

use tokio::{task::JoinHandle, time::timeout};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::db::Db;

pub struct Drain {
    pub consuming: CancellationToken,
    pub consumers: Vec<JoinHandle<()>>,
    pub service: async_nats::service::Service,
    pub requests: TaskTracker,
    /// Stops the outbox publisher (after a last publish) and the HTTP server.
    pub stop: CancellationToken,
    pub publisher: JoinHandle<()>,
    pub http: JoinHandle<std::io::Result<()>>,
    pub client: async_nats::Client,
    pub db: Db,
}

impl Drain {
    pub async fn run(self) {
        let step = Duration::from_secs;
        self.consuming.cancel();
        if timeout(step(10), futures::future::join_all(self.consumers))
            .await
            .is_err()
        {
            tracing::warn!("event consumers did not stop in 10 s");
        }
        match timeout(step(5), self.service.stop()).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "stopping the NATS service"),
            Err(_) => tracing::warn!("stopping the NATS service timed out"),
        }
        self.requests.close();
        if timeout(step(10), self.requests.wait()).await.is_err() {
            tracing::warn!("requests still in flight after 10 s; stopping anyway");
        }
        self.stop.cancel();
        if timeout(step(10), self.publisher).await.is_err() {
            tracing::warn!(
                "outbox publisher did not finish; unsent events stay for the next start"
            );
        }
        let _ = timeout(step(2), self.client.flush()).await;
        let _ = timeout(step(5), self.http).await;
        self.db.close().await;
    }
}
