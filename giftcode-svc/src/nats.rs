//! The NATS service `giftcode` (DESIGN.md §6): one endpoint per operation, in the
//! default queue group so that replicas share the load. Each request is handled
//! on its own task; the tracker lets shutdown wait for the ones in flight.

use std::time::Instant;

use async_nats::{
    Client,
    service::{Request, Service},
};
use shared_events::{
    ServiceError,
    giftcode::{
        CreateGroupFrame, GetGroupRequest, GetRedemptionRequest, ListCodesRequest,
        ListGroupsRequest, ListRedemptionsRequest, LookupCodeRequest, RedeemRequest,
        UpdateGroupRequest,
    },
    reconciliation::PageRequest,
    subjects::{GIFTCODE_SERVICE, giftcode as ep},
};
use svc_kit::nats::{parse_request, request_id, respond};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use crate::{App, error::Error};

/// Codes per message of a creation reply: ~300 KB, well under NATS' 1 MB.
const CODES_PER_FRAME: usize = 10_000;

/// Registers the service and its endpoints and starts serving them.
pub async fn serve(app: &App, client: &Client, tracker: &TaskTracker) -> Result<Service, Error> {
    let (app, nats) = (app.clone(), client.clone());
    svc_kit::nats::serve(
        client,
        GIFTCODE_SERVICE,
        "Gift-code groups, codes and redemptions",
        &ep::ALL,
        tracker,
        move |subject, req| handle(app.clone(), nats.clone(), subject, req),
    )
    .await
    .map_err(Error::Nats)
}

async fn handle(app: App, client: Client, subject: &'static str, req: Request) {
    let started = Instant::now();
    let rid = request_id(&req.message);
    let span = tracing::info_span!(
        "request",
        endpoint = subject,
        request_id = rid.as_deref().unwrap_or("")
    );
    let outcome = async {
        let payload = req.message.payload.clone();
        match subject {
            ep::REDEEM => {
                reply(&req, async {
                    let inbox = req.message.reply.as_ref().map(|r| r.as_str());
                    app.redeem(
                        parse_request::<RedeemRequest>(&payload)?,
                        rid.clone(),
                        inbox,
                    )
                    .await
                })
                .await
            }
            ep::GROUPS_CREATE => create_group(&app, &client, &req, &payload, rid.clone()).await,
            ep::GROUPS_LIST => {
                reply(&req, async {
                    app.list_groups(parse_request::<ListGroupsRequest>(&payload)?)
                        .await
                })
                .await
            }
            ep::GROUPS_GET => {
                reply(&req, async {
                    app.get_group(&parse_request::<GetGroupRequest>(&payload)?.id)
                        .await
                })
                .await
            }
            ep::GROUPS_UPDATE => {
                reply(&req, async {
                    app.update_group(parse_request::<UpdateGroupRequest>(&payload)?, rid.clone())
                        .await
                })
                .await
            }
            ep::CODES_LIST => {
                reply(&req, async {
                    app.list_codes(parse_request::<ListCodesRequest>(&payload)?)
                        .await
                })
                .await
            }
            ep::CODES_LOOKUP => {
                reply(&req, async {
                    app.lookup_code(&parse_request::<LookupCodeRequest>(&payload)?.code)
                        .await
                })
                .await
            }
            ep::REDEMPTIONS_LIST => {
                reply(&req, async {
                    app.list_redemptions(parse_request::<ListRedemptionsRequest>(&payload)?)
                        .await
                })
                .await
            }
            ep::REDEMPTIONS_GET => {
                reply(&req, async {
                    app.get_redemption(&parse_request::<GetRedemptionRequest>(&payload)?.id)
                        .await
                })
                .await
            }
            ep::RECONCILIATION_PAGE => {
                reply(&req, async {
                    app.reconciliation_page(parse_request::<PageRequest>(&payload)?)
                        .await
                })
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

/// Runs a handler and sends its result; returns the outcome word for metrics.
async fn reply<T: serde::Serialize>(
    req: &Request,
    work: impl Future<Output = Result<T, Error>>,
) -> &'static str {
    let result = work.await.map_err(|e| log_error(&e));
    respond(req, &result).await;
    outcome(&result)
}

fn log_error(e: &Error) -> ServiceError {
    if e.code() == shared_events::ErrorCode::Internal {
        tracing::error!(error = %e, "request failed");
    } else {
        tracing::debug!(error = %e, "request refused");
    }
    e.to_service_error()
}

fn outcome<T>(result: &Result<T, ServiceError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    }
}

/// Creation replies in frames: the group (as the service reply), then the codes
/// in chunks, then `end`. The group is committed before the first frame leaves.
async fn create_group(
    app: &App,
    client: &Client,
    req: &Request,
    payload: &[u8],
    rid: Option<String>,
) -> &'static str {
    let created = async { app.create_group(parse_request(payload)?, rid).await }
        .await
        .map_err(|e| log_error(&e));
    let (group, codes) = match created {
        Ok(ok) => ok,
        Err(e) => {
            let result: Result<(), ServiceError> = Err(e);
            respond(req, &result).await;
            return outcome(&result);
        }
    };
    let Some(reply_to) = req.message.reply.clone() else {
        return "ok";
    };
    let first: Result<CreateGroupFrame, ServiceError> = Ok(CreateGroupFrame::Group {
        group: Box::new(group),
    });
    respond(req, &first).await;
    // One frame at a time: the codes are copied out a frame's worth at once.
    let mut codes_left = codes.iter();
    let mut end_sent = false;
    while !end_sent {
        let batch: Vec<String> = codes_left
            .by_ref()
            .take(CODES_PER_FRAME)
            .map(str::to_owned)
            .collect();
        let frame = if batch.is_empty() {
            end_sent = true;
            CreateGroupFrame::End {
                count: codes.len() as u64,
            }
        } else {
            CreateGroupFrame::Codes { codes: batch }
        };
        let body = match serde_json::to_vec(&frame) {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(error = %e, "cannot encode codes frame");
                return "internal";
            }
        };
        if let Err(e) = client.publish(reply_to.clone(), body.into()).await {
            tracing::error!(error = %e, "codes reply interrupted; the group exists, its codes were not all delivered");
            return "internal";
        }
    }
    if let Err(e) = client.flush().await {
        tracing::warn!(error = %e, "flush after codes reply failed");
    }
    "ok"
}
