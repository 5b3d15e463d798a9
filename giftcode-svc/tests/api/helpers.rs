//! Test harness: `spawn_app` starts the real service in-process on port 0 with
//! its own nats-server and its own database (a SQLite file in a temp dir, or a
//! fresh database in this binary's PostgreSQL cluster).

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull, stream::Stream};
use clap::Parser;
use futures::StreamExt;
use giftcode_svc::{App, Config, MIGRATIONS};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared_events::{
    giftcode::{CreateGroupFrame, Group, RedeemReply},
    subjects::{GIFTCODE_EVENTS_STREAM, giftcode as ep},
};
use sqlx::Row;
use svc_kit::{
    db::Db,
    nats::{CallError, ServiceClient, decode_reply},
};
use tempfile::TempDir;
use testkit::{NatsServer, Postgres};
use tokio::{sync::oneshot, task::JoinHandle};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs a test body once per storage engine.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    )*};
}

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
    match backend {
        Backend::Sqlite => format!("sqlite://{}/giftcode.db", dir.path().display()),
        Backend::Postgres => Postgres::shared().fresh_database().await,
    }
}

pub fn config(nats_url: &str, database_url: &str, backend: Backend) -> Config {
    let mut args = vec![
        "giftcode-svc".to_owned(),
        format!("--nats-url={nats_url}"),
        format!("--database-url={database_url}"),
    ];
    if backend == Backend::Postgres {
        args.push(format!("--code-key={TEST_KEY}"));
    }
    Config::try_parse_from(args).expect("test config parses")
}

pub async fn spawn_app(backend: Backend) -> TestApp {
    if std::env::var_os("TEST_LOG").is_some() {
        svc_kit::telemetry::init(svc_kit::telemetry::LogFormat::Text);
    }
    let nats = NatsServer::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let url = database_url(backend, &dir).await;
    let config = config(&nats.url(), &url, backend);
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

pub async fn connect(url: &str) -> ServiceClient {
    let client = async_nats::connect(url)
        .await
        .expect("test client connects");
    ServiceClient::new(client, Duration::from_secs(60))
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
        Db::connect(&self.config.database_url, &MIGRATIONS)
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
            out[i] = sqlx::query(sqlx::AssertSqlSafe(sql))
                .fetch_one(db.read())
                .await
                .expect("count")
                .get::<i64, _>("n");
        }
        db.close().await;
        out
    }

    /// Waits until every outbox row is acknowledged by JetStream.
    pub async fn wait_outbox_drained(&self, within: Duration) {
        let db = self.db().await;
        let deadline = Instant::now() + within;
        loop {
            let unsent: i64 = sqlx::query("SELECT COUNT(*) AS n FROM outbox WHERE sent_at IS NULL")
                .fetch_one(db.read())
                .await
                .expect("outbox count")
                .get("n");
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
    let mut sub = client
        .call_stream(ep::GROUPS_CREATE, &body, Some("test-request-id"))
        .await?;
    let mut group = None;
    let mut codes = Vec::new();
    loop {
        let msg = tokio::time::timeout(Duration::from_secs(60), sub.next())
            .await
            .map_err(|_| CallError::Timeout(ep::GROUPS_CREATE.into()))?
            .ok_or_else(|| CallError::Transport("reply stream closed".into()))?;
        match decode_reply::<CreateGroupFrame>(&msg)? {
            CreateGroupFrame::Group { group: g } => group = Some(*g),
            CreateGroupFrame::Codes { codes: c } => codes.extend(c),
            CreateGroupFrame::End { count } => {
                assert_eq!(
                    count as usize,
                    codes.len(),
                    "end frame counts the codes sent"
                );
                break;
            }
        }
    }
    Ok((group.expect("a group frame comes first"), codes))
}

/// Every message in GIFTCODE_EVENTS on `subject`, parsed, with its
/// `Nats-Msg-Id` header added as `_msg_id`.
pub async fn stream_messages(client: &async_nats::Client, subject: &str) -> Vec<Value> {
    let js = jetstream::new(client.clone());
    let stream: Stream = js
        .get_stream(GIFTCODE_EVENTS_STREAM)
        .await
        .expect("stream exists");
    let consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut consumer = consumer;
    let pending = consumer.info().await.expect("consumer info").num_pending as usize;
    let mut out = Vec::with_capacity(pending);
    while out.len() < pending {
        let mut batch = consumer
            .fetch()
            .max_messages(pending - out.len())
            .expires(Duration::from_secs(1))
            .messages()
            .await
            .expect("fetch");
        while let Some(msg) = batch.next().await {
            let msg = msg.expect("message");
            let mut value: Value = serde_json::from_slice(&msg.payload).expect("event is JSON");
            let id = msg
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Msg-Id"))
                .map(|v| v.as_str().to_owned());
            value["_msg_id"] = json!(id);
            out.push(value);
        }
    }
    out
}

/// Waits until `subject` holds `n` messages (events leave through the outbox).
pub async fn wait_for_events(client: &async_nats::Client, subject: &str, n: usize) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = stream_messages(client, subject).await;
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A distinct valid US phone number per `i`.
pub fn phone(i: usize) -> String {
    format!("+1415555{:04}", i % 10_000)
}
