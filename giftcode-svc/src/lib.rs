//! giftcode-svc: gift-code groups, their codes and redemptions (DESIGN.md §3, §4,
//! §7). It owns its database, answers the NATS service `giftcode`, and publishes
//! `giftcode.events.>` to JetStream through its outbox. Its HTTP port serves only
//! `/healthz`, `/readyz` and `/metrics`.

pub mod codes;
mod commit;
mod config;
pub mod credits;
pub mod error;
pub mod groups;
mod keys;
pub mod nats;
pub mod reconciliation;
pub mod redeem;

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
pub const SOURCE: &str = "giftcode-svc";
/// The durable consumer of credit events, shared by all replicas.
pub const CREDITS_CONSUMER: &str = "giftcode-svc-credits";

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
    key: codes::CodeKey,
    currency: String,
    region: Region,
    waker: Waker,
    metrics: Metrics,
    committer: commit::Committer,
}

impl App {
    /// Opens the database (running migrations) and loads the code key.
    pub async fn open(config: &Config) -> Result<Self> {
        let db = Db::connect(&config.database_url, &MIGRATIONS)
            .await
            .map_err(|e| Error::Config(e.to_string()))?;
        let key = keys::load(config.code_key.as_deref(), &db).await?;
        Ok(Self(Arc::new(Inner {
            committer: commit::Committer::start(db.clone()),
            db,
            key,
            currency: config.currency.clone(),
            region: config.default_region,
            waker: Waker::default(),
            metrics: Metrics::new(SOURCE),
        })))
    }

    pub fn db(&self) -> &Db {
        &self.0.db
    }
    pub(crate) fn key(&self) -> &codes::CodeKey {
        &self.0.key
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
    pub(crate) fn committer(&self) -> &commit::Committer {
        &self.0.committer
    }
}

/// Runs the service until `shutdown` resolves, then drains: stops taking
/// requests, finishes those in flight, publishes what the outbox holds, flushes
/// NATS and closes the database.
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
    // It publishes to the first and consumes the second, which wallet-svc may
    // not have created yet.
    for (name, subjects) in [
        (GIFTCODE_EVENTS_STREAM, GIFTCODE_EVENTS_SUBJECTS),
        (WALLET_EVENTS_STREAM, WALLET_EVENTS_SUBJECTS),
    ] {
        outbox::ensure_stream(&js, name, subjects, config.nats.stream_replicas)
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
    let credits = {
        let app = app.clone();
        tokio::spawn(consumer::run(
            js,
            consumer::Spec {
                stream: WALLET_EVENTS_STREAM,
                durable: CREDITS_CONSUMER.to_owned(),
                filter: events::WALLET_CREDITED,
                ack_wait: Duration::from_secs(30),
                batch: 256,
            },
            consuming.clone(),
            move |msgs| credits::handle(app.clone(), msgs),
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
    tracing::info!(nats = %config.nats.url, "giftcode-svc started");

    shutdown.await;
    svc_kit::drain::Drain {
        consuming,
        consumer: credits,
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
    tracing::info!("giftcode-svc stopped");
    Ok(())
}
