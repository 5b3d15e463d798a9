//! Benchmark: create one group of 1,000,000 codes through the NATS service, as
//! an admin would, and receive every code (DESIGN.md §4: "seconds, not
//! minutes"). Run with:
//!
//!     cargo bench -p giftcode-svc --bench create_group
//!
//! Environment: BENCH_CODES (default 1000000), BENCH_RUNS (default 3),
//! BENCH_BACKEND (sqlite, the default, or postgres).
//!
//! It starts a private nats-server and the real service in-process, on a SQLite
//! file with `synchronous=FULL` (or a fresh PostgreSQL database). Each run is
//! timed from the request to the last code frame, and split at the first frame
//! (the group is committed by then). The baseline, measured in the same run, is
//! drawing and digesting the same number of codes in-process: the CPU work no
//! implementation can skip. Results are printed and written to
//! target/bench/create_group.json.

use std::time::{Duration, Instant};

use clap::Parser;
use futures::StreamExt;
use giftcode_svc::{Config, codes::CodeKey, groups::draw_codes};
use serde_json::json;
use shared_events::{giftcode::CreateGroupFrame, subjects::giftcode as ep};
use svc_kit::nats::{ServiceClient, decode_reply};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

#[tokio::main]
async fn main() {
    if std::env::var_os("RUST_LOG").is_some() {
        svc_kit::telemetry::init(svc_kit::telemetry::LogFormat::Text);
    }
    let n: usize = std::env::var("BENCH_CODES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1_000_000);
    let runs: usize = std::env::var("BENCH_RUNS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let backend = std::env::var("BENCH_BACKEND").unwrap_or_else(|_| "sqlite".into());
    let nats = testkit::NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let mut args = vec![
        "giftcode-svc".to_owned(),
        format!("--nats-url={}", nats.url()),
    ];
    match backend.as_str() {
        "postgres" => {
            let url = testkit::Postgres::shared().fresh_database().await;
            args.push(format!("--database-url={url}"));
            args.push(format!("--code-key={}", "ab".repeat(32)));
        }
        _ => args.push(format!(
            "--database-url=sqlite://{}/giftcode.db",
            dir.path().display()
        )),
    }
    let config = Config::try_parse_from(args).expect("config");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let service = tokio::spawn(giftcode_svc::run(config, listener, async {
        let _ = stopped.await;
    }));
    let client = ServiceClient::new(
        async_nats::connect(nats.url()).await.expect("connect"),
        Duration::from_secs(300),
    );

    println!(
        "create_group: {n} codes, {runs} runs, backend {backend}, {} cores",
        std::thread::available_parallelism().map_or(1, |p| p.get())
    );
    let key = CodeKey::new(&[9u8; 32]).expect("key");
    let mut baseline = Vec::new();
    let mut commit = Vec::new();
    let mut total = Vec::new();
    for run in 1..=runs {
        let t = Instant::now();
        let drawn = draw_codes(&key, n, Some("GIFT"));
        baseline.push(t.elapsed().as_secs_f64());
        drop(drawn);

        let started = Instant::now();
        let mut sub = loop {
            // The first run may race the service's start-up.
            match client
                .call_stream(
                    ep::GROUPS_CREATE,
                    &json!({"name": format!("bench {run}"), "kind": "unique",
                    "amount": 100, "count": n, "prefix": "GIFT"}),
                    None,
                )
                .await
            {
                Ok(sub) => break sub,
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        };
        let mut got = 0usize;
        let mut first = None;
        while let Some(msg) = sub.next().await {
            match decode_reply::<CreateGroupFrame>(ep::GROUPS_CREATE, &msg) {
                Ok(CreateGroupFrame::Group { .. }) => first = Some(started.elapsed()),
                Ok(CreateGroupFrame::Codes { codes }) => got += codes.len(),
                Ok(CreateGroupFrame::End { count }) => {
                    assert_eq!(count as usize, got);
                    break;
                }
                Err(e) => panic!("create failed: {e}"),
            }
        }
        assert_eq!(got, n, "every code arrived");
        let elapsed = started.elapsed().as_secs_f64();
        let first = first.map_or(elapsed, |d| d.as_secs_f64());
        commit.push(first);
        total.push(elapsed);
        println!(
            "  run {run}: baseline {:.2} s, committed {:.2} s, all codes received {:.2} s",
            baseline[run - 1],
            first,
            elapsed
        );
    }
    let (b, c, t) = (median(baseline), median(commit), median(total));
    println!(
        "median: baseline (draw + HMAC only) {b:.2} s | committed {c:.2} s | end to end {t:.2} s | \
              end to end / baseline {:.1}x | {:.0} codes/s",
        t / b,
        n as f64 / t
    );
    let out = json!({"codes": n, "runs": runs, "backend": backend,
        "median_baseline_s": b, "median_committed_s": c, "median_end_to_end_s": t,
        "ratio_to_baseline": t / b});
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/bench");
    let _ = std::fs::create_dir_all(&path);
    let _ = std::fs::write(
        path.join("create_group.json"),
        serde_json::to_vec_pretty(&out).unwrap_or_default(),
    );
    let _ = stop.send(());
    let _ = service.await;
}
