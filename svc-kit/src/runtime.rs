//! One runtime for every back-end service (DESIGN.md §1, §10). A service
//! declares what it has — its database and migrations ([`Kit::open`]), the
//! streams it publishes to and reads, its event consumers and its NATS
//! endpoints ([`Service`]) — and [`Service::run`] does the rest, in the same
//! order for every service:
//!
//! 1. connect to NATS (retrying while the broker starts);
//! 2. create or update its own streams, create the ones it reads if missing;
//! 3. start the outbox publisher;
//! 4. start the consumers, re-drives and periodic work;
//! 5. register the NATS service and its endpoints (bounded in flight);
//! 6. serve `/healthz`, `/readyz` and `/metrics` on HTTP;
//!
//! and on shutdown drains them in dependency order ([`crate::drain`]).

use std::{future::Future, net::SocketAddr, sync::Arc, time::Duration};

use async_nats::{
    Client,
    jetstream::{self, Message},
};
use futures::future::BoxFuture;
use shared_events::{Currency, subjects::StreamDef};
use tokio::{net::TcpListener, sync::Semaphore};
use tokio_util::{sync::CancellationToken, task::TaskTracker};

use crate::{
    consumer::{self, Outcome},
    db::{Db, Migrations},
    drain::Drain,
    endpoints::Endpoints,
    error::Error,
    healing::{Links, watch_streams},
    health::NatsAndDb,
    metrics::Metrics,
    nats::{NatsArgs, client::ServiceClient},
    outbox::Publisher,
    streams::{self, StreamArgs},
    telemetry::LogFormat,
};

/// The names a service gives the settings that are its own
/// (`<SVC>_HTTP_ADDR`, `<SVC>_DATABASE_URL`) and their defaults.
pub trait Names: Clone + Send + Sync + std::fmt::Debug + 'static {
    const HTTP_ADDR_ENV: &'static str;
    const HTTP_ADDR_DEFAULT: &'static str;
    const DATABASE_URL_ENV: &'static str;
    const DATABASE_URL_DEFAULT: &'static str;
}

/// The settings every service has, flattened into its `Config` (so each
/// binary's `--help` lists them).
#[derive(Debug, Clone, clap::Args)]
pub struct Args<N: Names> {
    #[command(flatten)]
    pub nats: NatsArgs,
    #[command(flatten)]
    pub streams: StreamArgs,
    /// Address of the health and metrics HTTP server.
    #[arg(long, env = N::HTTP_ADDR_ENV, default_value = N::HTTP_ADDR_DEFAULT)]
    pub http_addr: SocketAddr,
    /// sqlite://PATH (created on first start), sqlite::memory: or postgres://…
    #[arg(long, env = N::DATABASE_URL_ENV, default_value = N::DATABASE_URL_DEFAULT)]
    pub database_url: String,
    /// The platform currency (ISO 4217), on every amount. Events in another
    /// currency are refused.
    #[arg(long, env = "CURRENCY", default_value = "USD")]
    pub currency: Currency,
    /// How long an event's downstream effect (a redemption's credit) may take
    /// before the event is published again, same id (s, m, h or d). Heals a
    /// broker that lost its store; a duplicate is a no-op downstream.
    #[arg(long, env = "REDRIVE_AFTER", default_value = "30s", value_parser = crate::streams::parse_age)]
    pub redrive_after: Duration,
    /// NATS requests handled at once. Past it a request is refused at once
    /// with `service_unavailable` (the gateway answers 503 with Retry-After)
    /// instead of queueing without bound.
    #[arg(long, env = "MAX_IN_FLIGHT", default_value_t = 1024)]
    pub max_in_flight: usize,
    /// Log output: text or json.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
    #[arg(skip)]
    pub names: std::marker::PhantomData<N>,
}

/// What the runtime needs of a service's state: its database, its metrics,
/// and the platform currency. Built once by
/// [`Kit::open`]; the service keeps it and reaches it through [`HasKit`].
#[derive(Clone)]
pub struct Kit {
    pub name: &'static str,
    pub db: Db,
    pub metrics: Metrics,
    pub currency: Currency,
}

impl Kit {
    /// Opens (creating if needed) the database of `args` and runs the
    /// service's migrations, then svc-kit's.
    pub async fn open<N: Names>(
        name: &'static str,
        args: &Args<N>,
        migrations: &Migrations,
    ) -> Result<Self, Error> {
        let db = Db::connect(&args.database_url, migrations).await?;
        Ok(Kit {
            name,
            metrics: Metrics::new(name, Some(db.stats())),
            db,
            currency: args.currency.clone(),
        })
    }
}

/// A service's state, holding its [`Kit`]: the runtime's handles come with it.
pub trait HasKit {
    fn kit(&self) -> &Kit;

    fn db(&self) -> &Db {
        &self.kit().db
    }

    fn metrics(&self) -> &Metrics {
        &self.kit().metrics
    }

    /// The platform currency.
    fn currency(&self) -> &Currency {
        &self.kit().currency
    }
}

/// What a re-drive did: how many events were overdue, and how many of them
/// were published again (those last sent before the cutoff).
#[derive(Debug, Clone, Copy, Default)]
pub struct Redriven {
    pub overdue: usize,
    pub republished: usize,
}

type RedriveFn<S> = Arc<
    dyn Fn(
            S,
            Duration,
        )
            -> BoxFuture<'static, Result<Redriven, Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Sync,
>;

type WarmFn<S> = Arc<
    dyn Fn(S) -> BoxFuture<'static, Result<(), Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Sync,
>;

type EveryFn<S> = Arc<
    dyn Fn(
            S,
            ServiceClient,
        ) -> BoxFuture<'static, Result<(), Box<dyn std::error::Error + Send + Sync>>>
        + Send
        + Sync,
>;

/// How long periodic work waits for another service's answer.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

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
    redrives: Vec<(&'static str, RedriveFn<S>)>,
    periodic: Vec<(&'static str, Duration, EveryFn<S>)>,
    retired: Vec<(&'static str, &'static str)>,
    warms: Vec<WarmFn<S>>,
    endpoints: Endpoints<S>,
}

impl<S: HasKit + Clone + Send + Sync + 'static> Service<S> {
    /// The NATS service `api` (what `nats micro ls` shows) of a process
    /// whose state is `state`.
    pub fn new(state: S, api: &'static str, description: &'static str) -> Self {
        Self {
            kit: state.kit().clone(),
            state,
            api,
            description,
            owns: Vec::new(),
            reads: Vec::new(),
            consumers: Vec::new(),
            redrives: Vec::new(),
            periodic: Vec::new(),
            retired: Vec::new(),
            warms: Vec::new(),
            endpoints: Endpoints::default(),
        }
    }

    /// Work done once at start-up, before the service takes requests and
    /// before `/readyz` turns green, so that the first caller after a deploy
    /// waits for nothing lazy (a first connection, a first prepared
    /// statement). It must write no business rows.
    pub fn warms<F, Fut, E>(mut self, f: F) -> Self
    where
        F: Fn(S) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        self.warms.push(Arc::new(move |s| {
            let fut = f(s);
            Box::pin(async move { fut.await.map_err(|e| Box::new(e) as _) })
        }));
        self
    }

    /// An end-to-end re-drive (issue 11): six times per `REDRIVE_AFTER`, `f` gets
    /// that age and publishes again (same id) each event of kind `what` whose
    /// downstream effect is older than it and still unseen. The runtime
    /// keeps the `overdue` gauge and the `redriven` counter, and warns.
    pub fn redrives<F, Fut, E>(mut self, what: &'static str, f: F) -> Self
    where
        F: Fn(S, Duration) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<Redriven, E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g: RedriveFn<S> = Arc::new(move |s, age| {
            let fut = f(s, age);
            Box::pin(async move { fut.await.map_err(|e| Box::new(e) as _) })
        });
        self.redrives.push((what, g));
        self
    }

    /// Work done every `period` while the service takes events (it stops when
    /// the drain begins), given a client to call other services with. A
    /// failure is logged, and the work is done again at the next period.
    pub fn every<F, Fut, E>(mut self, what: &'static str, period: Duration, f: F) -> Self
    where
        F: Fn(S, ServiceClient) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), E>> + Send + 'static,
        E: std::error::Error + Send + Sync + 'static,
    {
        let f = Arc::new(f);
        let g: EveryFn<S> = Arc::new(move |s, c| {
            let fut = f(s, c);
            Box::pin(async move { fut.await.map_err(|e| Box::new(e) as _) })
        });
        self.periodic.push((what, period, g));
        self
    }

    /// A durable consumer an earlier build of this service had on `stream`
    /// and this one no longer uses: removed at start, if it is there, so it
    /// does not sit on the broker with a growing backlog.
    pub fn retires(mut self, stream: &'static str, durable: &'static str) -> Self {
        self.retired.push((stream, durable));
        self
    }

    /// A stream this service publishes to: created, or updated to the limits.
    pub fn publishes(mut self, stream: StreamDef) -> Self {
        self.owns.push(stream);
        self
    }

    /// A durable consumer: `handle` gets each batch that arrived and says what
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
    pub async fn run<N: Names>(
        self,
        args: &Args<N>,
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
            redrives,
            periodic,
            retired,
            warms,
            endpoints,
        } = self;
        let links = Arc::new(Links::default());
        let client = args.nats.connect(kit.name).await?;
        let js = jetstream::new(client.clone());
        for stream in &owns {
            streams::ensure_owned(&js, stream, &args.streams).await?;
        }
        for stream in &reads {
            streams::ensure_read(&js, stream, &args.streams).await?;
        }

        for (stream, durable) in retired {
            retire(&js, stream, durable).await;
        }

        let stop = CancellationToken::new();
        let publisher = tokio::spawn(
            Publisher {
                db: kit.db.clone(),
                js: js.clone(),
                metrics: kit.metrics.clone(),
            }
            .run(stop.clone()),
        );
        let watched = owns
            .iter()
            .map(|s| (*s, true))
            .chain(reads.iter().map(|s| (*s, false)))
            .collect();
        // The watcher stops with the consumers, first thing in the drain:
        // it has nothing to heal for a service that is going away.
        let consuming = CancellationToken::new();
        let watcher = tokio::spawn(watch_streams(
            js.clone(),
            watched,
            args.streams.clone(),
            links.clone(),
            kit.metrics.clone(),
            consuming.clone(),
        ));
        let mut consumers: Vec<_> = consumers
            .into_iter()
            .map(|(spec, handle)| {
                let (state, client) = (state.clone(), client.clone());
                tokio::spawn(consumer::run(
                    js.clone(),
                    spec,
                    consuming.clone(),
                    links.clone(),
                    kit.metrics.clone(),
                    move |msgs| handle(state.clone(), client.clone(), msgs),
                ))
            })
            .collect();
        consumers.push(watcher);
        for (what, f) in redrives {
            consumers.push(tokio::spawn(redrive_loop(
                what,
                f,
                state.clone(),
                args.redrive_after,
                kit.metrics.clone(),
                consuming.clone(),
            )));
        }
        let calls = ServiceClient::new(client.clone(), CALL_TIMEOUT);
        for (what, period, f) in periodic {
            let (state, calls, stop) = (state.clone(), calls.clone(), consuming.clone());
            consumers.push(tokio::spawn(async move {
                loop {
                    tokio::select! {
                        _ = tokio::time::sleep(period) => {}
                        _ = stop.cancelled() => return,
                    }
                    if let Err(e) = f(state.clone(), calls.clone()).await {
                        tracing::warn!(error = %e, "{what} failed; trying again later");
                    }
                }
            }));
        }
        // Before the service answers anything: what the first caller would
        // otherwise wait for.
        shared_events::Phone::warm();
        for warm in &warms {
            if let Err(e) = warm(state.clone()).await {
                tracing::warn!(error = %e, "a warm-up step failed; the first requests may be slower");
            }
        }
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
                links,
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

/// Removes a retired consumer if it is there.
async fn retire(js: &jetstream::Context, stream: &str, durable: &str) {
    let Ok(s) = js.get_stream(stream).await else {
        return;
    };
    if s.consumer_info(durable).await.is_err() {
        return;
    }
    match s.delete_consumer(durable).await {
        Ok(_) => tracing::info!(stream, durable, "retired consumer removed"),
        Err(e) => tracing::warn!(stream, durable, error = %e, "cannot remove a retired consumer"),
    }
}

/// How long a consumer's unacked message waits before redelivery, by default.
pub const ACK_WAIT: Duration = Duration::from_secs(30);

/// Runs a re-drive six times per `after` (at most every second) until `stop`:
/// an effect overdue is re-driven at most `after / 6` after it became so.
async fn redrive_loop<S: Clone>(
    what: &'static str,
    f: RedriveFn<S>,
    state: S,
    after: Duration,
    metrics: Metrics,
    stop: CancellationToken,
) {
    let every = (after / 6).max(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = tokio::time::sleep(every) => {}
            _ = stop.cancelled() => return,
        }
        match f(state.clone(), after).await {
            Ok(r) => {
                metrics.overdue.set(r.overdue as i64);
                metrics.redriven.inc_by(r.republished as u64);
                if r.overdue > 0 {
                    tracing::warn!(
                        overdue = r.overdue,
                        republished = r.republished,
                        after_s = after.as_secs(),
                        "{what}: effects overdue; their events are published again"
                    );
                }
            }
            Err(e) => tracing::warn!(error = %e, "{what}: re-drive failed; trying again later"),
        }
    }
}
