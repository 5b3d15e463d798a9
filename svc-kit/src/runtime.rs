//! One runtime for every back-end service (DESIGN.md §1, §10). A service
//! declares what it has — its database and migrations ([`Kit::open`]), the
//! streams it publishes to and reads, its event consumers and its NATS
//! endpoints ([`Service`]) — and [`Service::run`] does the rest, in the same
//! order for every service:
//!
//! 1. connect to NATS (retrying while the broker starts);
//! 2. create or update its own streams, create the ones it reads if missing;
//! 3. start the outbox publisher;
//! 4. start the consumers;
//! 5. register the NATS service and its endpoints (bounded in flight);
//! 6. serve `/healthz`, `/readyz` and `/metrics` on HTTP;
//!
//! and on shutdown drains them in dependency order ([`crate::drain`]).

use std::{future::Future, sync::Arc, time::Duration};

use async_nats::{
    Client,
    jetstream::{self, Message},
};
use futures::future::BoxFuture;
use shared_events::subjects::StreamDef;
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    consumer::{self, Outcome},
    db::{Db, Migrations},
    drain::Drain,
    endpoints::Endpoints,
    error::Error,
    health::NatsAndDb,
    metrics::Metrics,
    nats::NatsArgs,
    outbox::{Publisher, Waker},
    streams::{self, StreamArgs},
    telemetry::LogFormat,
};

/// The settings every service shares, flattened into its `Config` (so each
/// binary's `--help` lists them).
#[derive(Debug, Clone, clap::Args)]
pub struct Args {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
    /// NATS requests handled at once. Past it a request is refused at once
    /// with `service_unavailable` (the gateway answers 503 with Retry-After)
    /// instead of queueing without bound.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Log output: text or json.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}

/// What the runtime needs of a service's state: its database, its metrics and
/// its outbox's waker. Built once by [`Kit::open`]; the service keeps it.
#[derive(Clone)]
pub struct Kit {
    pub name: &'static str,
    pub db: Db,
    pub metrics: Metrics,
    pub outbox: Waker,
}

impl Kit {
    /// Opens (creating if needed) the database at `url` and runs the
    /// service's migrations, then svc-kit's.
    pub async fn open(
        name: &'static str,
        url: &str,
        migrations: &Migrations,
    ) -> Result<Self, Error> {
        Ok(Kit {
            name,
            db: Db::connect(url, migrations).await?,
            metrics: Metrics::new(name),
            outbox: Waker::default(),
        })
    }
}

type ConsumerFn<S> = Arc<
    dyn Fn(S, Client, Vec<Message>) -> BoxFuture<'static, Vec<(Message, Outcome)>> + Send + Sync,
>;

/// A service, as it declares itself.
pub struct Service<S> {
    kit: Kit,
    state: S,
    api: &'static str,
    description: &'static str,
    owns: Vec<StreamDef>,
    reads: Vec<StreamDef>,
    consumers: Vec<(consumer::Spec, ConsumerFn<S>)>,
    endpoints: Endpoints<S>,
}

impl<S: Clone + Send + Sync + 'static> Service<S> {
    /// The NATS service `api` (what `nats micro ls` shows) of a process
    /// whose state is `state`.
    pub fn new(kit: &Kit, state: S, api: &'static str, description: &'static str) -> Self {
        Self {
            kit: kit.clone(),
            state,
            api,
            description,
            owns: Vec::new(),
            reads: Vec::new(),
            consumers: Vec::new(),
            endpoints: Endpoints::default(),
        }
    }

    /// A stream this service publishes to: created, or updated to the limits.
    pub fn publishes(mut self, stream: StreamDef) -> Self {
        self.owns.push(stream);
        self
    }

    /// A durable consumer: `handle` gets each fetched batch and says what
    /// became of each message (see [`crate::consumer`]).
    pub fn consumes<F, Fut>(mut self, stream: StreamDef, spec: consumer::Spec, handle: F) -> Self
    where
        F: Fn(S, Client, Vec<Message>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Vec<(Message, Outcome)>> + Send + 'static,
    {
        if !self.owns.contains(&stream) && !self.reads.contains(&stream) {
            self.reads.push(stream);
        }
        let handle = Arc::new(handle);
        let f: ConsumerFn<S> = Arc::new(move |s, c, m| Box::pin(handle(s, c, m)));
        self.consumers.push((spec, f));
        self
    }

    /// The NATS endpoints.
    pub fn endpoints(mut self, f: impl FnOnce(Endpoints<S>) -> Endpoints<S>) -> Self {
        self.endpoints = f(self.endpoints);
        self
    }

    /// Runs the service until `shutdown` resolves, then drains it.
    pub async fn run(
        self,
        args: &Args,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<(), Error> {
        let Service {
            kit,
            state,
            api,
            description,
            owns,
            reads,
            consumers,
            endpoints,
        } = self;
        let client = args.nats.connect(kit.name).await?;
        let js = jetstream::new(client.clone());
        for stream in &owns {
            streams::ensure_owned(&js, stream, &args.streams).await?;
        }
        for stream in &reads {
            streams::ensure_read(&js, stream, &args.streams).await?;
        }

        let stop = CancellationToken::new();
        let publisher = tokio::spawn(
            Publisher {
                db: kit.db.clone(),
                js: js.clone(),
                waker: kit.outbox.clone(),
                metrics: kit.metrics.clone(),
            }
            .run(stop.clone()),
        );
        let consuming = CancellationToken::new();
        let consumers = consumers
            .into_iter()
            .map(|(spec, handle)| {
                let (state, client) = (state.clone(), client.clone());
                tokio::spawn(consumer::run(
                    js.clone(),
                    spec,
                    consuming.clone(),
                    move |msgs| handle(state.clone(), client.clone(), msgs),
                ))
            })
            .collect();
        let requests = TaskTracker::new();
        let service = endpoints
            .serve(
                &client,
                (api, description),
                state,
                &requests,
                Arc::new(Semaphore::new(args.max_in_flight.max(1))),
                kit.metrics.clone(),
            )
            .await?;
        let router = crate::health::router(
            NatsAndDb {
                client: client.clone(),
                db: kit.db.clone(),
            },
            kit.metrics.clone(),
        );
        let http_stop = stop.clone();
        let http = tokio::spawn(async move {
            axum::serve(listener, router)
                .with_graceful_shutdown(http_stop.cancelled_owned())
                .await
        });
        tracing::info!(nats = %args.nats.url, service = api, "{} started", kit.name);

        shutdown.await;
        Drain {
            consuming,
            consumers,
            service,
            requests,
            stop,
            publisher,
            http,
            client,
            db: kit.db.clone(),
        }
        .run()
        .await;
        tracing::info!("{} stopped", kit.name);
        Ok(())
    }
}

/// How long a consumer's unacked message waits before redelivery, by default.
pub const ACK_WAIT: Duration = Duration::from_secs(30);
