//! wallet-svc: wallets and their double-entry ledger (DESIGN.md §5, §7 step 3).
//! It owns its database, answers the NATS service `wallet`, credits wallets
//! from `giftcode.events.code.redeemed` (exactly once in effect), and publishes
//! `wallet.events.>` to JetStream through its outbox. Its HTTP port serves only
//! `/healthz`, `/readyz` and `/metrics`. svc-kit runs it ([`run`]); this crate
//! holds the domain and declares what the service has ([`service`]).

mod config;
pub mod consumers;
pub mod error;
pub mod ledger;
pub mod moves;
pub mod reconciliation;
pub mod redemptions;
pub mod reversals;
pub mod wallets;

use std::{future::Future, sync::Arc, time::Duration};

use shared_events::{
    endpoint::wallet as ep,
    subjects::{GIFTCODE_EVENTS, WALLET_EVENTS, WALLET_SERVICE, events},
};
use svc_kit::{HasKit, Kit, Service, consumer, db::Migrations};
use tokio::net::TcpListener;

pub use config::Config;
pub use error::{Error, Result};

/// The `source` of the events this service emits.
pub const SOURCE: &str = "wallet-svc";
/// The durable consumer of redemption events, shared by all replicas.
pub const REDEMPTIONS_CONSUMER: &str = "wallet-svc-redemptions";
/// The durable consumer of reversal requests (DESIGN.md §12).
pub const REVERSALS_CONSUMER: &str = "wallet-svc-reversals";

/// `migrations/`, then svc-kit's (the outbox and processed events).
pub const MIGRATIONS: Migrations = svc_kit::migrations!();

/// The service's state: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    kit: Kit,
    /// Fault injection (test builds only): exit after a credit commits.
    #[cfg(feature = "fault-injection")]
    crash_after_commit: bool,
}

impl App {
    /// Opens the database, running its migrations.
    pub async fn open(config: &Config) -> Result<Self> {
        Ok(Self(Arc::new(Inner {
            kit: Kit::open(SOURCE, &config.kit, &MIGRATIONS).await?,
            #[cfg(feature = "fault-injection")]
            crash_after_commit: config.fault_crash_after_commit,
        })))
    }

    #[cfg(feature = "fault-injection")]
    pub(crate) fn crash_after_commit(&self) -> bool {
        self.0.crash_after_commit
    }
}

impl App {
    /// Start-up warm-up (svc-kit's `warms`): the ledger's statements
    /// prepared on the writer (in a transaction that writes nothing) and the
    /// wallet read on the readers, so that neither the first credit nor the
    /// first admin read waits for a prepare.
    pub async fn warm(&self) -> Result<()> {
        self.db()
            .write(|tx| {
                Box::pin(async move {
                    ledger::prepare(tx).await?;
                    svc_kit::outbox::prepare(tx).await
                })
            })
            .await?;
        let mut readers = Vec::new();
        for _ in 0..svc_kit::db::READERS {
            let mut conn = self.db().reader().await?;
            wallets::prepare(&mut conn).await?;
            readers.push(conn);
        }
        Ok(())
    }
}

impl HasKit for App {
    fn kit(&self) -> &Kit {
        &self.0.kit
    }
}

/// What the service has: its stream, its consumer of redemptions, its
/// endpoints.
pub fn service(app: App, ack_wait: Duration) -> Service<App> {
    Service::new(app, WALLET_SERVICE, "Wallets and their double-entry ledger")
        .publishes(WALLET_EVENTS)
        .consumes(
            GIFTCODE_EVENTS,
            consumer::Spec {
                stream: GIFTCODE_EVENTS.name,
                durable: REDEMPTIONS_CONSUMER.to_owned(),
                filter: events::CODE_REDEEMED,
                ack_wait,
                batch: 256,
            },
            consumers::code_redeemed::handle,
        )
        .consumes(
            GIFTCODE_EVENTS,
            consumer::Spec {
                stream: GIFTCODE_EVENTS.name,
                durable: REVERSALS_CONSUMER.to_owned(),
                filter: events::REVERSAL_REQUESTED,
                ack_wait,
                batch: 64,
            },
            consumers::reversal_requested::handle,
        )
        .warms(|app| async move { app.warm().await })
        .endpoints(|e| {
            e.endpoint::<ep::WalletsCreate, _, _, _>(|app, ctx, req| async move {
                app.create_wallet(&req.phone, ctx.request_id).await
            })
            .endpoint::<ep::WalletsGet, _, _, _>(|app, _, req| async move {
                app.get_wallet(&req.phone).await
            })
            .endpoint::<ep::WalletsList, _, _, _>(|app, _, req| async move {
                app.list_wallets(req).await
            })
            .endpoint::<ep::TransactionsList, _, _, _>(|app, _, req| async move {
                app.list_transactions(req).await
            })
            .endpoint::<ep::CreditsCreate, _, _, _>(|app, ctx, req| async move {
                app.credit(req, ctx.request_id).await
            })
            .endpoint::<ep::DebitsCreate, _, _, _>(|app, ctx, req| async move {
                app.debit(req, ctx.request_id).await
            })
            .endpoint::<ep::FundingGet, _, _, _>(|app, _, req| async move {
                app.funding(req.group_id).await
            })
            .endpoint::<ep::LedgerCheckRun, _, _, _>(
                |app, _, _| async move { app.ledger_check().await },
            )
            .endpoint::<ep::RedemptionsGet, _, _, _>(|app, _, req| async move {
                app.redemption_credit(req.redemption_id).await
            })
            .endpoint::<ep::RedemptionsCredited, _, _, _>(|app, _, req| async move {
                app.redemption_credits(req).await
            })
            .endpoint::<ep::ReconciliationPage, _, _, _>(|app, _, req| async move {
                app.reconciliation_page(req).await
            })
        })
}

/// Runs the service until `shutdown` resolves, then drains it (svc-kit's
/// runtime: stop taking requests and events, finish those in flight, publish
/// what the outbox holds, flush NATS, close the database).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = App::open(&config).await?;
    let ack_wait = Duration::from_millis(config.consumer_ack_wait_ms.max(100));
    service(app, ack_wait)
        .run(&config.kit, listener, shutdown)
        .await?;
    Ok(())
}
