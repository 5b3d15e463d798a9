//! Prometheus metrics a service exposes on `/metrics`. Each service instance owns
//! its registry (no process globals), so tests that run several services in one
//! process see each one's own figures.

use std::sync::Arc;

use prometheus_client::{
    encoding::EncodeLabelSet,
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    pub endpoint: String,
    /// `ok` or the error code word.
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EndpointLabels {
    pub endpoint: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WhatLabels {
    /// `stream GIFTCODE_EVENTS`, `consumer wallet-svc-redemptions`.
    pub what: String,
}

#[derive(Clone)]
pub struct Metrics {
    registry: Arc<Registry>,
    pub requests: Family<RequestLabels, Counter>,
    pub latency: Family<EndpointLabels, Histogram>,
    pub outbox_published: Counter,
    pub outbox_publish_failures: Counter,
    pub outbox_pending: Gauge,
    /// Streams and consumers found missing and made again while running.
    pub recreated: Family<WhatLabels, Counter>,
    /// Events published again because their effect was not seen in time.
    pub redriven: Counter,
    /// Events whose effect is overdue (last seen by the re-drive).
    pub overdue: Gauge,
}

impl Metrics {
    /// The metrics of `service`, with its database's counts if it has one.
    pub fn new(service: &str, db: Option<&crate::db::Stats>) -> Self {
        let mut registry = Registry::with_prefix(service.replace('-', "_"));
        if let Some(db) = db {
            registry.register(
                "db_commits",
                "Write transactions committed (each one fsync on SQLite)",
                db.commits.clone(),
            );
            registry.register(
                "db_writes",
                "Writes committed; on SQLite many share one transaction (group commit)",
                db.writes.clone(),
            );
        }
        let requests = Family::<RequestLabels, Counter>::default();
        let latency = Family::<EndpointLabels, Histogram>::new_with_constructor(|| {
            Histogram::new([
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
            ])
        });
        let outbox_published = Counter::default();
        let outbox_publish_failures = Counter::default();
        let outbox_pending = Gauge::default();
        let recreated = Family::<WhatLabels, Counter>::default();
        let redriven = Counter::default();
        let overdue = Gauge::default();
        registry.register(
            "recreated",
            "Streams and consumers found missing (a broker that lost its store) and recreated",
            recreated.clone(),
        );
        registry.register(
            "redriven",
            "Events published again (same id) because their downstream effect was not seen in time",
            redriven.clone(),
        );
        registry.register(
            "overdue",
            "Events whose downstream effect is overdue, at the last re-drive (uncredited redemptions)",
            overdue.clone(),
        );
        registry.register(
            "requests",
            "NATS requests handled, by endpoint and outcome",
            requests.clone(),
        );
        registry.register(
            "request_duration_seconds",
            "Time to handle a NATS request",
            latency.clone(),
        );
        registry.register(
            "outbox_published",
            "Events published to JetStream and acknowledged",
            outbox_published.clone(),
        );
        registry.register(
            "outbox_publish_failures",
            "Publish rounds that failed and will be retried",
            outbox_publish_failures.clone(),
        );
        registry.register(
            "outbox_pending",
            "Events committed but not yet acknowledged by JetStream (last seen)",
            outbox_pending.clone(),
        );
        Self {
            registry: Arc::new(registry),
            requests,
            latency,
            outbox_published,
            outbox_publish_failures,
            outbox_pending,
            recreated,
            redriven,
            overdue,
        }
    }

    /// Records one handled request.
    pub fn observe(&self, endpoint: &str, outcome: &str, seconds: f64) {
        self.requests
            .get_or_create(&RequestLabels {
                endpoint: endpoint.to_owned(),
                outcome: outcome.to_owned(),
            })
            .inc();
        self.latency
            .get_or_create(&EndpointLabels {
                endpoint: endpoint.to_owned(),
            })
            .observe(seconds);
    }

    /// Counts one stream or consumer made again.
    pub fn recreated(&self, what: &str) {
        self.recreated
            .get_or_create(&WhatLabels {
                what: what.to_owned(),
            })
            .inc();
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}
