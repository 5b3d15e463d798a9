//! Helpers that speak to the platform over NATS the way a client does: the
//! storage engines a test runs on, group creation (a multi-frame reply), and
//! reading back what a JetStream stream holds.

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer::pull};
use futures::StreamExt;
use serde_json::{Value, json};
use shared_events::{
    giftcode::{CreateGroupFrame, Group},
    subjects::giftcode as ep,
};
use svc_kit::nats::{CallError, ServiceClient, decode_reply};

use crate::Postgres;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// Runs each named `async fn(Backend)` once per storage engine.
#[macro_export]
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                super::$name($crate::bus::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                super::$name($crate::bus::Backend::Postgres).await
            }
        }
    )*};
}

/// A database for one service of one test: a SQLite file named `name` in
/// `dir`, or a fresh database in this binary's PostgreSQL cluster.
pub async fn database_url(backend: Backend, dir: &std::path::Path, name: &str) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}/{name}.db", dir.display()),
        Backend::Postgres => Postgres::shared().fresh_database().await,
    }
}

pub async fn connect(url: &str) -> ServiceClient {
    let client = async_nats::connect(url)
        .await
        .expect("test client connects");
    ServiceClient::new(client, Duration::from_secs(60))
}

/// A distinct valid US phone number per `i`.
pub fn phone(i: usize) -> String {
    format!("+1415555{:04}", i % 10_000)
}

/// `giftcode.groups.create`, reading every frame: the group and its codes.
pub async fn create_group(
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
        match decode_reply::<CreateGroupFrame>(ep::GROUPS_CREATE, &msg)? {
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

/// Every message of `stream` on `subject`, parsed, with its `Nats-Msg-Id`
/// header added as `_msg_id`.
pub async fn stream_messages(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
) -> Vec<Value> {
    let js = jetstream::new(client.clone());
    let stream = js.get_stream(stream).await.expect("stream exists");
    let mut consumer: jetstream::consumer::Consumer<pull::Config> = stream
        .create_consumer(pull::Config {
            filter_subject: subject.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::None,
            inactive_threshold: Duration::from_secs(30),
            ..Default::default()
        })
        .await
        .expect("consumer");
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

/// Waits (up to 30 s) until `subject` in `stream` holds at least `n` messages.
pub async fn wait_for_events(
    client: &async_nats::Client,
    stream: &str,
    subject: &str,
    n: usize,
) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let events = stream_messages(client, stream, subject).await;
        if events.len() >= n || Instant::now() > deadline {
            return events;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Polls `check` every 50 ms until it holds or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
