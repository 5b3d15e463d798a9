//! `Platform::start` runs wallet-svc (and optionally giftcode-svc) in-process
//! on a private nats-server, each with its own database.

use std::time::Duration;

use clap::Parser;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use shared_events::{
    subjects::wallet as ep,
    wallet::{LedgerCheck, MoveReply, Wallet},
};
use svc_kit::nats::{CallError, ServiceClient};
use tempfile::TempDir;
use testkit::NatsServer;
pub use testkit::bus::{Backend, eventually, phone};
use tokio::{sync::oneshot, task::JoinHandle};

pub const CODE_KEY: &str = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";

struct Running {
    stop: oneshot::Sender<()>,
    task: JoinHandle<()>,
}

pub struct Platform {
    pub nats: NatsServer,
    pub client: ServiceClient,
    /// Holds the SQLite files for the life of the test.
    _dir: TempDir,
    pub wallet_config: wallet_svc::Config,
    pub giftcode_config: giftcode_svc::Config,
    wallet: Option<Running>,
    giftcode: Option<Running>,
}

impl Platform {
    /// wallet-svc on its own, or with giftcode-svc.
    pub async fn start(backend: Backend, with_giftcode: bool) -> Self {
        let nats = NatsServer::start();
        let dir = tempfile::tempdir().expect("tempdir");
        let wallet_db = testkit::bus::database_url(backend, dir.path(), "wallet").await;
        let giftcode_db = testkit::bus::database_url(backend, dir.path(), "giftcode").await;
        let wallet_config = wallet_svc::Config::try_parse_from([
            "wallet-svc".to_owned(),
            format!("--nats-url={}", nats.url()),
            format!("--database-url={wallet_db}"),
            "--consumer-ack-wait-ms=2000".to_owned(),
        ])
        .expect("wallet config");
        let giftcode_config = giftcode_svc::Config::try_parse_from([
            "giftcode-svc".to_owned(),
            format!("--nats-url={}", nats.url()),
            format!("--database-url={giftcode_db}"),
            format!("--code-key={CODE_KEY}"),
        ])
        .expect("giftcode config");
        let mut p = Platform {
            client: testkit::bus::connect(&nats.url()).await,
            nats,
            _dir: dir,
            wallet_config,
            giftcode_config,
            wallet: None,
            giftcode: None,
        };
        p.start_wallet().await;
        if with_giftcode {
            let config = p.giftcode_config.clone();
            p.giftcode = Some(
                spawn(|l, s| async move {
                    giftcode_svc::run(config, l, s)
                        .await
                        .expect("giftcode-svc ran");
                })
                .await,
            );
            let client = p.client.clone();
            eventually(Duration::from_secs(20), "giftcode-svc answers", || {
                let client = client.clone();
                async move {
                    client
                        .call::<_, Value>(
                            shared_events::subjects::giftcode::GROUPS_LIST,
                            &json!({}),
                            None,
                        )
                        .await
                        .is_ok()
                }
            })
            .await;
        }
        p
    }

    pub async fn start_wallet(&mut self) {
        let config = self.wallet_config.clone();
        self.wallet = Some(
            spawn(|l, s| async move {
                wallet_svc::run(config, l, s).await.expect("wallet-svc ran");
            })
            .await,
        );
        let client = self.client.clone();
        eventually(Duration::from_secs(20), "wallet-svc answers", || {
            let client = client.clone();
            async move {
                client
                    .call::<_, Value>(ep::LEDGER_CHECK, &json!({}), None)
                    .await
                    .is_ok()
            }
        })
        .await;
    }

    pub async fn stop_wallet(&mut self) {
        if let Some(r) = self.wallet.take() {
            let _ = r.stop.send(());
            r.task.await.expect("wallet task");
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

    pub async fn wallet(&self, phone: &str) -> Wallet {
        self.call(ep::WALLETS_GET, json!({"phone": phone}))
            .await
            .expect("wallet")
    }

    pub async fn credit(
        &self,
        phone: &str,
        amount: i64,
        key: &str,
    ) -> Result<MoveReply, CallError> {
        self.call(
            ep::CREDITS_CREATE,
            json!({"phone": phone, "amount": amount, "idempotency_key": key}),
        )
        .await
    }

    pub async fn debit(&self, phone: &str, amount: i64, key: &str) -> Result<MoveReply, CallError> {
        self.call(
            ep::DEBITS_CREATE,
            json!({"phone": phone, "amount": amount, "idempotency_key": key}),
        )
        .await
    }

    /// The invariants of DESIGN.md §5 hold: every test ends with this.
    pub async fn assert_ledger_consistent(&self) -> LedgerCheck {
        let check: LedgerCheck = self.call(ep::LEDGER_CHECK, json!({})).await.expect("check");
        assert!(check.ok, "ledger inconsistent: {check:?}");
        assert_eq!(check.sum_of_balances, 0);
        check
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        for r in [self.wallet.take(), self.giftcode.take()]
            .into_iter()
            .flatten()
        {
            let _ = r.stop.send(());
        }
    }
}

async fn spawn<F, Fut>(run: F) -> Running
where
    F: FnOnce(
        tokio::net::TcpListener,
        std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>,
    ) -> Fut,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let (tx, rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run(
        listener,
        Box::pin(async {
            let _ = rx.await;
        }),
    ));
    Running { stop: tx, task }
}
