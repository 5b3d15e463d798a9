//! The NATS service `wallet` (DESIGN.md §6): one endpoint per operation, in the
//! default queue group so that replicas share the load.

use std::time::Instant;

use async_nats::{
    Client,
    service::{Request, Service},
};
use shared_events::{
    ErrorCode, ServiceError,
    reconciliation::PageRequest,
    subjects::{WALLET_SERVICE, wallet as ep},
    wallet::{
        FundingRequest, ListTransactionsRequest, ListWalletsRequest, MoveRequest, PhoneRequest,
        RedemptionCreditRequest,
    },
};
use svc_kit::nats::{parse_request, reply, request_id};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{App, error::Error};

pub async fn serve(app: &App, client: &Client, tracker: &TaskTracker) -> Result<Service, Error> {
    let app = app.clone();
    svc_kit::nats::serve(
        client,
        WALLET_SERVICE,
        "Wallets and their double-entry ledger",
        &ep::ALL,
        tracker,
        move |subject, req| handle(app.clone(), subject, req),
    )
    .await
    .map_err(Error::Nats)
}

async fn handle(app: App, subject: &'static str, req: Request) {
    let started = Instant::now();
    let rid = request_id(&req.message);
    let span = tracing::info_span!(
        "request",
        endpoint = subject,
        request_id = rid.as_deref().unwrap_or("")
    );
    let payload = req.message.payload.clone();
    let outcome = async {
        match subject {
            ep::WALLETS_CREATE => {
                reply(
                    &req,
                    run(async {
                        app.create_wallet(
                            &parse_request::<PhoneRequest>(&payload)?.phone,
                            rid.clone(),
                        )
                        .await
                    })
                    .await,
                )
                .await
            }
            ep::WALLETS_GET => {
                reply(
                    &req,
                    run(async {
                        app.get_wallet(&parse_request::<PhoneRequest>(&payload)?.phone)
                            .await
                    })
                    .await,
                )
                .await
            }
            ep::WALLETS_LIST => {
                reply(
                    &req,
                    run(async {
                        app.list_wallets(parse_request::<ListWalletsRequest>(&payload)?)
                            .await
                    })
                    .await,
                )
                .await
            }
            ep::TRANSACTIONS_LIST => {
                reply(
                    &req,
                    run(async {
                        app.list_transactions(parse_request::<ListTransactionsRequest>(&payload)?)
                            .await
                    })
                    .await,
                )
                .await
            }
            ep::CREDITS_CREATE => {
                reply(
                    &req,
                    run(async {
                        app.credit(parse_request::<MoveRequest>(&payload)?, rid.clone())
                            .await
                    })
                    .await,
                )
                .await
            }
            ep::DEBITS_CREATE => {
                reply(
                    &req,
                    run(async {
                        app.debit(parse_request::<MoveRequest>(&payload)?, rid.clone())
                            .await
                    })
                    .await,
                )
                .await
            }
            ep::FUNDING_GET => {
                reply(
                    &req,
                    run(async {
                        app.funding(parse_request::<FundingRequest>(&payload)?.group_id)
                            .await
                    })
                    .await,
                )
                .await
            }
            ep::LEDGER_CHECK => reply(&req, run(app.ledger_check()).await).await,
            ep::RECONCILIATION_PAGE => {
                reply(
                    &req,
                    run(async {
                        app.reconciliation_page(parse_request::<PageRequest>(&payload)?)
                            .await
                    })
                    .await,
                )
                .await
            }
            ep::REDEMPTIONS_GET => {
                reply(
                    &req,
                    run(async {
                        app.redemption_credit(
                            parse_request::<RedemptionCreditRequest>(&payload)?.redemption_id,
                        )
                        .await
                    })
                    .await,
                )
                .await
            }
            other => {
                tracing::error!(subject = other, "no handler for endpoint");
                "internal"
            }
        }
    }
    .instrument(span)
    .await;
    app.metrics()
        .observe(subject, outcome, started.elapsed().as_secs_f64());
}

/// Runs a handler, logging what went wrong on our side.
async fn run<T>(work: impl Future<Output = Result<T, Error>>) -> Result<T, ServiceError> {
    work.await.map_err(|e| {
        if e.code() == ErrorCode::Internal {
            tracing::error!(error = %e, "request failed");
        }
        e.to_service_error()
    })
}
