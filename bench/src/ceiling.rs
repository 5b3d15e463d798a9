//! The broker's own ceiling (issue 12): how fast one nats-server stores
//! JetStream messages in a one-replica file stream, with a given
//! `sync_interval`, one publish at a time (each acknowledged before the
//! next) and pipelined (256 acks outstanding). The redeem sends a few such
//! messages; this says how close it comes to the durable limit, not only to
//! the echo.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::future::join_all;
use testkit::NatsServer;

pub struct Ceiling {
    /// The `sync_interval` (`always`, or the server's default).
    pub sync: String,
    pub sequential_per_second: f64,
    pub pipelined_per_second: f64,
    /// nats-server CPU seconds per 1,000 messages, pipelined.
    pub cpu_per_1000: f64,
}

const SEQUENTIAL: usize = 2_000;
const PIPELINED: usize = 20_000;
const WINDOW: usize = 256;

pub async fn run(sync: Option<&str>) -> anyhow::Result<Ceiling> {
    let server = NatsServer::start_with_sync(sync);
    let client = server.connect_as("ops").await;
    let js = jetstream::new(client);
    js.create_stream(stream::Config {
        name: "CEILING".into(),
        subjects: vec!["ceiling.>".into()],
        storage: stream::StorageType::File,
        num_replicas: 1,
        ..Default::default()
    })
    .await?;
    // ops may not publish event subjects; ceiling.> is not one.
    let payload = bytes::Bytes::from(vec![b'x'; 400]);
    let started = Instant::now();
    for _ in 0..SEQUENTIAL {
        js.publish("ceiling.seq", payload.clone()).await?.await?;
    }
    let sequential = SEQUENTIAL as f64 / started.elapsed().as_secs_f64();
    let pid = server.pid().unwrap_or_default();
    let cpu0 = crate::procstat::cpu_seconds(pid).unwrap_or(f64::NAN);
    let started = Instant::now();
    let mut sent = 0;
    while sent < PIPELINED {
        let n = WINDOW.min(PIPELINED - sent);
        let mut acks = Vec::with_capacity(n);
        for _ in 0..n {
            acks.push(js.publish("ceiling.pipe", payload.clone()).await?);
        }
        for ack in join_all(acks.into_iter().map(|a| a.into_future())).await {
            ack?;
        }
        sent += n;
    }
    let pipelined = PIPELINED as f64 / started.elapsed().as_secs_f64();
    let cpu = crate::procstat::cpu_seconds(pid).unwrap_or(f64::NAN) - cpu0;
    tokio::time::sleep(Duration::from_millis(10)).await;
    Ok(Ceiling {
        sync: sync.unwrap_or("default (2 min)").to_owned(),
        sequential_per_second: sequential,
        pipelined_per_second: pipelined,
        cpu_per_1000: cpu / PIPELINED as f64 * 1000.0,
    })
}
