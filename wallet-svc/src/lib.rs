//! wallet-svc: wallets and their double-entry ledger (DESIGN.md §5, §7 step 3).
//! It owns its database, answers the NATS service `wallet`, credits wallets
//! from `giftcode.events.code.redeemed` (exactly once in effect), and publishes
//! `wallet.events.>` to JetStream through its outbox. Its HTTP port serves only
//! `/healthz`, `/readyz` and `/metrics`.

mod config;
pub mod error;
pub mod ledger;
pub mod nats;
pub mod reconciliation;
pub mod redemptions;
pub mod wallets;

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::jetstream;
use shared_events::{
    Region,
    subjects::{
        GIFTCODE_EVENTS_STREAM, GIFTCODE_EVENTS_SUBJECTS, WALLET_EVENTS_STREAM,
        WALLET_EVENTS_SUBJECTS, events,
    },
};
use svc_kit::{
    consumer,
    db::{Db, Migrations},
    health::NatsAndDb,
    metrics::Metrics,
    outbox::{self, Publisher, Waker},
};
use tokio::net::TcpListener;
use tokio_util::{sync::CancellationToken, task::TaskTracker};

pub use config::Config;
pub use error::{Error, Result};

/// The `source` of the events this service emits.
pub const SOURCE: &str = "wallet-svc";
/// The durable consumer of redemption events, shared by all replicas.
pub const REDEMPTIONS_CONSUMER: &str = "wallet-svc-redemptions";

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("./migrations/postgres");

pub const MIGRATIONS: Migrations = Migrations {
    sqlite: &SQLITE_MIGRATIONS,
    postgres: &POSTGRES_MIGRATIONS,
};

/// The service's state: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    db: Db,
    currency: String,
    region: Region,
    waker: Waker,
    metrics: Metrics,
    crash_after_commit: bool,
}

impl App {
    /// Opens the database, running its migrations.
    pub async fn open(config: &Config) -> Result<Self> {
        let db = Db::connect(&config.database_url, &MIGRATIONS)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        Ok(Self(Arc::new(Inner {
            db,
            currency: config.currency.clone(),
            region: config.default_region,
            waker: Waker::default(),
            metrics: Metrics::new(SOURCE),
            crash_after_commit: config.fault_crash_after_commit,
        })))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }
    pub(crate) fn currency(&self) -> &str {
        &self.0.currency
    }
    pub(crate) fn region(&self) -> Region {
        self.0.region
    }
    pub fn metrics(&self) -> &Metrics {
        &self.0.metrics
    }
    pub(crate) fn wake_outbox(&self) {
        self.0.waker.wake();
    }
    pub(crate) fn crash_after_commit(&self) -> bool {
        self.0.crash_after_commit
    }
}

/// Runs the service until `shutdown` resolves, then drains (each step with a
/// deadline): stop taking requests and events, finish those in flight, publish
/// what the outbox holds, flush NATS, close the database.
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = App::open(&config).await?;
    let client = config
        .nats
        .connect(SOURCE)
        .await
        .map_err(|e| Error::Nats(e.to_string()))?;
    let js = jetstream::new(client.clone());
    let replicas = config.nats.stream_replicas;
    // The stream it consumes may not exist yet if giftcode-svc has never run.
    for (name, subjects) in [
        (WALLET_EVENTS_STREAM, WALLET_EVENTS_SUBJECTS),
        (GIFTCODE_EVENTS_STREAM, GIFTCODE_EVENTS_SUBJECTS),
    ] {
        outbox::ensure_stream(&js, name, subjects, replicas)
            .await
            .map_err(Error::Nats)?;
    }

    let stop = CancellationToken::new();
    let publisher = tokio::spawn(
        Publisher {
            db: app.db().clone(),
            js: js.clone(),
            waker: app.0.waker.clone(),
            metrics: app.metrics().clone(),
        }
        .run(stop.clone()),
    );
    let consuming = CancellationToken::new();
    let consumer_task = {
        let (app, client) = (app.clone(), client.clone());
        tokio::spawn(consumer::run(
            js,
            consumer::Spec {
                stream: GIFTCODE_EVENTS_STREAM,
                durable: REDEMPTIONS_CONSUMER.to_owned(),
                filter: events::CODE_REDEEMED,
                ack_wait: Duration::from_millis(config.consumer_ack_wait_ms.max(100)),
                batch: 256,
            },
            consuming.clone(),
            move |msgs| redemptions::handle(app.clone(), client.clone(), msgs),
        ))
    };
    let tracker = TaskTracker::new();
    let service = nats::serve(&app, &client, &tracker).await?;
    let router = svc_kit::health::router(
        NatsAndDb {
            client: client.clone(),
            db: app.db().clone(),
        },
        app.metrics().clone(),
    );
    let http_stop = stop.clone();
    let http = tokio::spawn(async move {
        axum::serve(listener, router)
            .with_graceful_shutdown(http_stop.cancelled_owned())
            .await
    });
    tracing::info!(nats = %config.nats.url, "wallet-svc started");

    shutdown.await;
    svc_kit::drain::Drain {
        consuming,
        consumer: consumer_task,
        service,
        requests: tracker,
        stop,
        publisher,
        http,
        client,
        db: app.db().clone(),
    }
    .run()
    .await;
    tracing::info!("wallet-svc stopped");
    Ok(())
}
