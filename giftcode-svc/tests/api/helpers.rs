//! Test harness: `spawn_app` starts the real service in-process on port 0 with
//! its own nats-server and its own database (a SQLite file in a temp dir, or a
//! fresh database in this binary's PostgreSQL cluster).

use std::time::{Duration, Instant};

use clap::Parser;
use giftcode_svc::{App, Config, MIGRATIONS};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared_events::{
    giftcode::{Group, RedeemReply},
    subjects::{GIFTCODE_EVENTS_STREAM, giftcode as ep},
};
use svc_kit::{
    db::Db,
    nats::{CallError, ServiceClient},
};
use tempfile::TempDir;
use testkit::NatsServer;
use tokio::{sync::oneshot, task::JoinHandle};

pub use testkit::bus::{Backend, connect, phone, wait_for_events as wait_for};

pub const TEST_KEY: &str = "7f3c1a9e5b2d4f608192a3b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8";

pub struct TestApp {
    pub nats: NatsServer,
    pub client: ServiceClient,
    pub config: Config,
    pub dir: TempDir,
    stop: Option<oneshot::Sender<()>>,
    task: Option<JoinHandle<giftcode_svc::Result<()>>>,
}

pub async fn database_url(backend: Backend, dir: &TempDir) -> String {
    testkit::bus::database_url(backend, dir.path(), "giftcode").await
}

pub fn config(nats_url: &str, database_url: &str, backend: Backend) -> Config {
    config_with(nats_url, database_url, backend, &[])
}

pub fn config_with(nats_url: &str, database_url: &str, backend: Backend, extra: &[&str]) -> Config {
    let mut args = vec![
        "giftcode-svc".to_owned(),
        format!("--nats-url={nats_url}"),
        format!("--database-url={database_url}"),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    if backend == Backend::Postgres {
        args.push(format!("--code-key={TEST_KEY}"));
    }
    Config::try_parse_from(args).expect("test config parses")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, &[]).await
}

/// The service started with `extra` command-line arguments.
pub async fn spawn_app_with(backend: Backend, extra: &[&str]) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        svc_kit::telemetry::init(svc_kit::telemetry::LogFormat::Text);
    }
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(backend, &dir).await;
    let config = config_with(&nats.url(), &url, backend, extra);
    let mut app = TestApp {
        client: connect(&nats.url()).await,
        nats,
        config,
        dir,
        stop: None,
        task: None,
    };
    app.start().await;
    app
}

impl TestApp {
    /// Starts the service (again) on the same broker and database.
    pub async fn start(&mut self) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let (tx, rx) = oneshot::channel::<()>();
        let config = self.config.clone();
        self.task = Some(tokio::spawn(giftcode_svc::run(config, listener, async {
            let _ = rx.await;
        })));
        self.stop = Some(tx);
        // Ready once the service answers on the bus.
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let probe: Result<Value, _> = self.call(ep::GROUPS_LIST, json!({"limit": 1})).await;
            match probe {
                Ok(_) => break,
                Err(e) if Instant::now() > deadline => panic!("service did not start: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Graceful shutdown, waiting for the drain to finish.
    pub async fn shutdown(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        if let Some(task) = self.task.take() {
            task.await
                .expect("service task")
                .expect("service ran cleanly");
        }
    }

    pub async fn call<T: DeserializeOwned>(
        &self,
        subject: &str,
        body: Value,
    ) -> Result<T, CallError> {
        self.client
            .call(subject, &body, Some("test-request-id"))
            .await
    }

    /// The raw error of a call that must fail.
    pub async fn call_err(&self, subject: &str, body: &[u8]) -> (String, String) {
        let msg = self
            .client
            .raw(subject, body.to_vec().into(), None)
            .await
            .expect("a reply");
        let headers = msg.headers.clone().expect("error replies carry headers");
        let word = headers
            .get("Nats-Service-Error")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let status = headers
            .get("Nats-Service-Error-Code")
            .map(|v| v.as_str().to_owned())
            .unwrap_or_default();
        let body: Value = serde_json::from_slice(&msg.payload).expect("error body is JSON");
        assert_eq!(body["code"], word, "header and body agree");
        (word, status)
    }

    pub async fn create_group(&self, body: Value) -> Result<(Group, Vec<String>), CallError> {
        create_group_with(&self.client, body).await
    }

    pub async fn redeem(&self, code: &str, phone: &str) -> Result<RedeemReply, CallError> {
        self.call(ep::REDEEM, json!({"code": code, "phone": phone}))
            .await
    }

    pub async fn db(&self) -> Db {
        Db::connect(&self.config.kit.database_url, &MIGRATIONS)
            .await
            .expect("test db handle")
    }

    /// A second handle on the service's state, bypassing NATS.
    pub async fn direct(&self) -> App {
        App::open(&self.config).await.expect("open app")
    }

    /// Rows in each table: what "changes nothing" is checked against.
    pub async fn counts(&self) -> [i64; 5] {
        let db = self.db().await;
        let mut out = [0; 5];
        for (i, table) in ["groups", "codes", "redemptions", "phone_counts", "outbox"]
            .iter()
            .enumerate()
        {
            let sql = format!("SELECT COUNT(*) AS n FROM {table}");
            out[i] = svc_kit::db::query(sql)
                .fetch_one(&db)
                .await
                .expect("count")
                .get::<i64>("n")
                .expect("n");
        }
        db.close().await;
        out
    }

    /// Waits until every outbox row is acknowledged by JetStream.
    pub async fn wait_outbox_drained(&self, within: Duration) {
        let db = self.db().await;
        let deadline = Instant::now() + within;
        loop {
            let unsent: i64 =
                svc_kit::db::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
                    .fetch_one(&db)
                    .await
                    .expect("outbox count")
                    .get("n")
                    .expect("n");
            if unsent == 0 {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{unsent} events still unsent after {within:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        db.close().await;
    }

    pub async fn events(&self, subject: &str) -> Vec<Value> {
        stream_messages(self.client.nats(), subject).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

pub async fn create_group_with(
    client: &ServiceClient,
    body: Value,
) -> Result<(Group, Vec<String>), CallError> {
    testkit::bus::create_group(client, body).await
}

/// Every message in GIFTCODE_EVENTS on `subject`.
pub async fn stream_messages(client: &async_nats::Client, subject: &str) -> Vec<Value> {
    testkit::bus::stream_messages(client, GIFTCODE_EVENTS_STREAM, subject).await
}

/// Waits until GIFTCODE_EVENTS holds `n` messages on `subject`.
pub async fn wait_for_events(client: &async_nats::Client, subject: &str, n: usize) -> Vec<Value> {
    wait_for(client, GIFTCODE_EVENTS_STREAM, subject, n).await
}
