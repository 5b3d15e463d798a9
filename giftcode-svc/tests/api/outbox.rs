//! The outbox (DESIGN.md §6): an event committed while JetStream cannot take it
//! is published exactly once when it can, whether the service kept running or
//! was killed in between.

use std::{
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use async_nats::jetstream;
use serde_json::json;
use shared_events::{
    giftcode::RedeemRequest,
    subjects::{GIFTCODE_EVENTS_STREAM, events},
};

use crate::helpers::*;
use testkit::on_both_backends;

on_both_backends!(published_once_after_the_broker_returns);

async fn published_once_after_the_broker_returns(backend: Backend) {
    let mut app = spawn_app(backend).await;
    let (_, codes) = app
        .create_group(json!({"name": "G", "kind": "unique", "amount": 10, "count": 2}))
        .await
        .expect("created");
    app.wait_outbox_drained(Duration::from_secs(20)).await;

    // The broker dies. A redemption is committed meanwhile (through a second
    // handle on the same database, since the bus is gone).
    app.nats.stop();
    let direct = app.direct().await;
    let reply = direct
        .redeem(
            RedeemRequest {
                code: codes[0].clone(),
                phone: phone(1).parse().expect("phone"),
            },
            None,
            None,
        )
        .await
        .expect("committed without the broker");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let db = app.db().await;
    let unsent: i64 = svc_kit::db::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&db)
        .await
        .expect("count")
        .get("n")
        .expect("n");
    assert_eq!(unsent, 1, "the event waits in the outbox");

    app.nats.restart();
    app.wait_outbox_drained(Duration::from_secs(30)).await;
    let client = connect(&app.nats.url()).await;
    let id = reply.redemption.id.to_string();
    let count = |evs: Vec<serde_json::Value>| {
        evs.iter()
            .filter(|e| e["data"]["redemption_id"] == id.as_str())
            .count()
    };
    assert_eq!(
        count(stream_messages(client.nats(), events::CODE_REDEEMED).await),
        1
    );
    // Still one a while later: nothing re-sends an acknowledged event.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        count(stream_messages(client.nats(), events::CODE_REDEEMED).await),
        1
    );
    db.close().await;
}

struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_binary(nats_url: &str, db_url: &str, http_port: u16) -> Proc {
    let child = Command::new(env!("CARGO_BIN_EXE_giftcode-svc"))
        .env("NATS_URL", nats_url)
        .env("GIFTCODE_DATABASE_URL", db_url)
        .env("GIFTCODE_HTTP_ADDR", format!("127.0.0.1:{http_port}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start giftcode-svc");
    Proc(child)
}

async fn wait_ready(http_port: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ready = tokio::net::TcpStream::connect(("127.0.0.1", http_port))
            .await
            .is_ok();
        if ready {
            let body = http_get(http_port, "/readyz").await;
            if body.starts_with("HTTP/1.1 200") {
                return;
            }
        }
        assert!(
            Instant::now() < deadline,
            "giftcode-svc did not become ready"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn http_get(port: u16, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let Ok(mut s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await else {
        return String::new();
    };
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    if s.write_all(req.as_bytes()).await.is_err() {
        return String::new();
    }
    let mut out = String::new();
    let _ = s.read_to_string(&mut out).await;
    out
}

/// kill -9 between commit and publish: the restarted process publishes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn published_once_after_a_crash() {
    let nats = testkit::NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let db_url = format!("sqlite://{}/giftcode.db", dir.path().display());
    let port = testkit::free_port();
    let proc = start_binary(&nats.url(), &db_url, port);
    wait_ready(port).await;
    let client = connect(&nats.url()).await;
    let (_, codes) = create_group_with(
        &client,
        json!({"name": "G", "kind": "unique", "amount": 10, "count": 1}),
    )
    .await
    .expect("created");
    wait_for_events(client.nats(), events::GROUP_CREATED, 1).await;

    // JetStream stops taking the events: publishes fail from here on.
    let js = jetstream::new(client.nats().clone());
    js.delete_stream(GIFTCODE_EVENTS_STREAM)
        .await
        .expect("delete stream");
    let reply: shared_events::giftcode::RedeemReply = client
        .call(
            shared_events::subjects::giftcode::REDEEM,
            &json!({"code": codes[0], "phone": phone(3)}),
            None,
        )
        .await
        .expect("redeemed");
    tokio::time::sleep(Duration::from_millis(300)).await;
    drop(proc); // SIGKILL: no drain, no last publish.

    let metrics_db = svc_kit::db::Db::connect(&db_url, &giftcode_svc::MIGRATIONS)
        .await
        .expect("db");
    let unsent: i64 = svc_kit::db::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
        .fetch_one(&metrics_db)
        .await
        .expect("count")
        .get("n")
        .expect("n");
    assert_eq!(
        unsent, 1,
        "the redemption's event was committed but not sent"
    );
    metrics_db.close().await;

    let _proc = start_binary(&nats.url(), &db_url, port);
    wait_ready(port).await;
    let events = wait_for_events(client.nats(), events::CODE_REDEEMED, 1).await;
    assert_eq!(events.len(), 1, "published once after restart");
    assert_eq!(
        events[0]["data"]["redemption_id"],
        reply.redemption.id.to_string()
    );
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let again = stream_messages(client.nats(), events::CODE_REDEEMED).await;
    assert_eq!(again.len(), 1, "and only once");
    let metrics = http_get(port, "/metrics").await;
    assert!(
        metrics.contains("giftcode_svc_outbox_published_total 1"),
        "{metrics}"
    );
}

/// SIGTERM with the broker already gone still ends: every drain step has a
/// deadline, and unsent events stay in the outbox for the next start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_completes_without_the_broker() {
    let mut app = spawn_app(Backend::Sqlite).await;
    app.create_group(json!({"name": "G", "kind": "unique", "amount": 1, "count": 1}))
        .await
        .expect("created");
    app.nats.stop();
    let drained = tokio::time::timeout(Duration::from_secs(60), app.shutdown()).await;
    assert!(drained.is_ok(), "shutdown hung without the broker");
}

/// With the broker up, the drain finishes each step instead of waiting out
/// its deadline (10 s for the consumers and background work, which the
/// streams' watcher used to hold until the very end of the drain).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_with_the_broker_up_waits_out_no_deadline() {
    let mut app = spawn_app(Backend::Sqlite).await;
    app.create_group(json!({"name": "G", "kind": "unique", "amount": 1, "count": 1}))
        .await
        .expect("created");
    let started = std::time::Instant::now();
    app.shutdown().await;
    let took = started.elapsed();
    assert!(
        took < Duration::from_secs(9),
        "the drain took {took:?}: a step waited out its deadline"
    );
}
