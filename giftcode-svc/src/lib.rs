//! giftcode-svc: gift-code groups, their codes and redemptions (DESIGN.md §3, §4,
//! §7). It owns its database, answers the NATS service `giftcode`, and publishes
//! `giftcode.events.>` to JetStream through its outbox. Its HTTP port serves only
//! `/healthz`, `/readyz` and `/metrics`. svc-kit runs it ([`run`]); this crate
//! holds the domain and declares what the service has ([`service`]).

pub mod codes;
mod config;
pub mod consumers;
pub mod error;
pub mod groups;
mod keys;
pub mod reconciliation;
pub mod redeem;
pub mod redemptions;
pub mod redrive;
pub mod reverse;
pub mod settle;

use std::{
    future::Future,
    sync::{
        Arc,
        atomic::{AtomicI64, Ordering},
    },
};

use shared_events::{
    endpoint::giftcode as ep,
    subjects::{GIFTCODE_EVENTS, GIFTCODE_SERVICE, WALLET_EVENTS, WALLET_EVENTS_STREAM, events},
};
use svc_kit::{HasKit, Kit, Service, db::Migrations};
use tokio::net::TcpListener;

pub use config::Config;
pub use error::{Error, Result};

/// The `source` of the events this service emits.
pub const SOURCE: &str = "giftcode-svc";
/// The durable consumer of credit events that earlier builds had (credits
/// are now settled by asking the ledger, see [`settle`]): removed at start.
pub const RETIRED_CREDITS_CONSUMER: &str = "giftcode-svc-credits";

/// `migrations/`, then svc-kit's (the outbox and processed events).
pub const MIGRATIONS: Migrations = svc_kit::migrations!();

/// The service's state: cheap to clone, shared by every request.
#[derive(Clone)]
pub struct App(Arc<Inner>);

struct Inner {
    kit: Kit,
    key: codes::CodeKey,
    /// Where the next settling round starts (`redeemed_at`; 0: the start).
    settle_cursor: AtomicI64,
}

impl App {
    /// Opens the database (running migrations) and loads the code key.
    pub async fn open(config: &Config) -> Result<Self> {
        let kit = Kit::open(SOURCE, &config.kit, &MIGRATIONS).await?;
        let key = keys::load(config.code_key.as_deref(), &kit.db).await?;
        Ok(Self(Arc::new(Inner {
            kit,
            key,
            settle_cursor: AtomicI64::new(0),
        })))
    }

    pub(crate) fn key(&self) -> &codes::CodeKey {
        &self.0.key
    }
    pub(crate) fn settle_cursor(&self) -> i64 {
        self.0.settle_cursor.load(Ordering::Relaxed)
    }
    pub(crate) fn set_settle_cursor(&self, at: i64) {
        self.0.settle_cursor.store(at, Ordering::Relaxed);
    }
}

impl HasKit for App {
    fn kit(&self) -> &Kit {
        &self.0.kit
    }
}

/// What the service has: its stream, its consumer of credits, its endpoints.
pub fn service(app: App) -> Service<App> {
    Service::new(
        app,
        GIFTCODE_SERVICE,
        "Gift-code groups, codes and redemptions",
    )
    .publishes(GIFTCODE_EVENTS)
    .retires(WALLET_EVENTS_STREAM, RETIRED_CREDITS_CONSUMER)
    .every(
        "settling credits",
        settle::EVERY,
        |app, wallet| async move { app.settle(&wallet).await },
    )
    .redrives("uncredited redemptions", |app, after| async move {
        app.redrive_redemptions(after).await
    })
    .redrives("unanswered reversals", |app, after| async move {
        app.redrive_reversals(after).await
    })
    .consumes(
        WALLET_EVENTS,
        consumers::spec(consumers::REVERSED_CONSUMER, events::WALLET_REVERSED),
        consumers::handle,
    )
    .consumes(
        WALLET_EVENTS,
        consumers::spec(consumers::REFUSED_CONSUMER, events::WALLET_REVERSAL_REFUSED),
        consumers::handle,
    )
    .warms(|app| async move { app.warm().await })
    .endpoints(|e| {
        e.endpoint::<ep::Redeem, _, _, _>(|app, ctx, req| async move {
            app.redeem(req, ctx.request_id, ctx.reply_to.as_deref())
                .await
                .map(shared_events::giftcode::RedeemInbox::Redeemed)
        })
        .framed::<ep::GroupsCreate, _, _, _, _>(|app, ctx, req| async move {
            app.create_group(req, ctx.request_id)
                .await
                .map(groups::frames)
        })
        .endpoint::<ep::GroupsList, _, _, _>(
            |app, _, req| async move { app.list_groups(req).await },
        )
        .endpoint::<ep::GroupsGet, _, _, _>(
            |app, _, req| async move { app.get_group(req.id).await },
        )
        .endpoint::<ep::GroupsUpdate, _, _, _>(|app, ctx, req| async move {
            app.update_group(req, ctx.request_id).await
        })
        .endpoint::<ep::CodesList, _, _, _>(|app, _, req| async move { app.list_codes(req).await })
        .endpoint::<ep::CodesLookup, _, _, _>(|app, _, req| async move {
            app.lookup_code(&req.code).await
        })
        .endpoint::<ep::RedemptionsList, _, _, _>(|app, _, req| async move {
            app.list_redemptions(req).await
        })
        .endpoint::<ep::RedemptionsGet, _, _, _>(|app, _, req| async move {
            app.get_redemption(req.id).await
        })
        .endpoint::<ep::ReconciliationPage, _, _, _>(|app, _, req| async move {
            app.reconciliation_page(req).await
        })
        .endpoint::<ep::GroupsTimeline, _, _, _>(
            |app, _, req| async move { app.timeline(req).await },
        )
        .endpoint::<ep::RedemptionsReverse, _, _, _>(|app, ctx, req| async move {
            app.reverse(req, ctx)
                .await
                .map(|r| shared_events::giftcode::ReverseInbox::Recorded(Box::new(r)))
        })
        .endpoint::<ep::CodesUpdate, _, _, _>(
            |app, _, req| async move { app.update_code(req).await },
        )
    })
}

/// Runs the service until `shutdown` resolves, then drains it (svc-kit's
/// runtime: stop taking requests, finish those in flight, publish what the
/// outbox holds, flush NATS, close the database).
pub async fn run(
    config: Config,
    listener: TcpListener,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let app = App::open(&config).await?;
    service(app).run(&config.kit, listener, shutdown).await?;
    Ok(())
}
