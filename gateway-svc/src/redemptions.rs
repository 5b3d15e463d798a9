//! `POST /api/v1/redemptions` and `GET /api/v1/redemptions/{id}` (DESIGN.md §7).
//!
//! A redeem subscribes to a fresh inbox and sends `giftcode.redeem` with it.
//! Two answers may come back there: giftcode-svc's redemption (or its refusal),
//! then wallet-svc's credit notice once the credit is committed. Credited
//! within `GATEWAY_REDEEM_TIMEOUT_MS`: 200 with the merged result. Recorded but
//! not yet credited: 202 with `Location`; the credit lands when wallet-svc can
//! make it. No giftcode-svc: 503, and nothing was recorded.

use std::net::SocketAddr;

use axum::{
    extract::{ConnectInfo, State},
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use shared_events::{
    Currency, Endpoint, ErrorCode, Phone, RedemptionId, TransactionId,
    endpoint::{giftcode as gc, wallet as wl},
    giftcode::{GetRedemptionRequest, RedeemInbox, RedeemRequest, Redemption, RedemptionStatus},
    wallet::{CreditNotice, CreditsQuery, PhoneRequest, RedemptionCreditRequest},
};
use svc_kit::nats::{CallError, client::Answer};
use utoipa::ToSchema;

use crate::{
    AppState,
    error::{ApiError, ApiResult, Problem},
    extract::{Body, PathId, RequestId},
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RedeemBody {
    /// The gift code; case, spaces and dashes do not matter.
    #[schema(
        example = "K7QX-4M9P-2ZHD",
        max_length = 64,
        pattern = "^[ -]*(?:[A-Za-z0-9][ -]*){4,32}$"
    )]
    code: String,
    /// E.164, or national format in `DEFAULT_REGION`.
    #[schema(example = "+14155552671", pattern = r"^\+?[0-9][0-9 ().-]{3,23}$")]
    phone: String,
}

/// The merged answer: the redemption and, once credited, the wallet.
#[derive(Debug, Serialize, ToSchema)]
pub struct RedemptionView {
    #[serde(flatten)]
    redemption: Redemption,
    wallet: Option<WalletView>,
}

impl RedemptionView {
    /// A redemption shown without its wallet (a reversal's answer).
    pub fn without_wallet(redemption: Redemption) -> Self {
        Self {
            redemption,
            wallet: None,
        }
    }
}

/// The wallet credited by a redemption, as it is now.
#[derive(Debug, Serialize, ToSchema)]
pub struct WalletView {
    phone: Phone,
    balance: i64,
    currency: Currency,
    transaction_id: TransactionId,
}

/// Refusals that count against a phone's failed-attempt limit: guessing.
fn is_failed_attempt(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::InvalidCode
            | ErrorCode::CodeNotFound
            | ErrorCode::CodeAlreadyRedeemed
            | ErrorCode::RedemptionLimitReached
            | ErrorCode::PerPhoneLimitReached
            | ErrorCode::CodeExpired
            | ErrorCode::CodeInactive
            | ErrorCode::CodeNotYetActive
    )
}

fn limited(retry_after: u64, what: &str) -> ApiError {
    ApiError {
        retry_after: Some(retry_after),
        ..ApiError::new(ErrorCode::RateLimited, what)
    }
}

#[utoipa::path(
    post, path = "/redemptions", tag = "redemptions", summary = "Redeem a code for a phone",
    description = "Records the redemption and waits up to `GATEWAY_REDEEM_TIMEOUT_MS` for the wallet credit (DESIGN.md §7). The same phone and code again answer with the original redemption.",
    request_body = RedeemBody,
    responses(
        (status = 200, description = "Credited: the redemption with `status: credited` and the wallet", body = RedemptionView),
        (status = 202, description = "Recorded, credit not yet confirmed: `status: pending`, `wallet: null`; poll `Location`", body = RedemptionView, headers(("Location" = String))),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`code_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`code_already_redeemed`, `redemption_limit_reached`, `per_phone_limit_reached`, `code_not_yet_active`", body = Problem, content_type = "application/problem+json"),
        (status = 410, description = "`code_expired`, `code_inactive`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_phone`, `invalid_code`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 429, description = "`rate_limited`, with `Retry-After` (seconds)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64))),
        (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached (nothing was recorded), or the platform is at capacity (with `Retry-After`)", body = Problem, content_type = "application/problem+json", headers(("Retry-After" = u64))),
    )
)]
pub async fn redeem(
    State(s): State<AppState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    RequestId(rid): RequestId,
    Body(body): Body<RedeemBody>,
) -> ApiResult<Response> {
    if let Some(wait) = s.per_ip.hit(&peer.ip().to_string()) {
        return Err(limited(wait, "too many redeem requests from this address"));
    }
    let phone = s.phone(&body.phone)?;
    if let Some(wait) = s.failed_per_phone.blocked(phone.as_str()) {
        return Err(limited(wait, "too many failed attempts for this phone"));
    }
    let code = body.code.trim();
    if code.is_empty() || code.len() > 64 {
        return Err(ApiError::new(
            ErrorCode::InvalidCode,
            "not a valid gift code",
        ));
    }
    let result = redeem_over_nats(&s, code, &phone, &rid).await;
    if let Err(e) = &result
        && is_failed_attempt(e.code)
    {
        s.failed_per_phone.record(phone.as_str());
    }
    result
}

async fn redeem_over_nats(
    s: &AppState,
    code: &str,
    phone: &Phone,
    rid: &str,
) -> ApiResult<Response> {
    let deadline = tokio::time::Instant::now() + s.redeem_timeout;
    let req = RedeemRequest {
        code: code.to_owned(),
        phone: phone.clone(),
    };
    let mut inbox = s
        .nats
        .request_replies::<gc::Redeem>(&req, Some(rid))
        .await?;
    // The redemption must come within the service timeout; the notice within
    // the redeem timeout (counted from the start). A replay records nothing,
    // so no credit notice follows it: the ledger is asked below instead.
    let (reply, notice) = inbox
        .reply_and_notice(
            s.nats.timeout(),
            deadline,
            |m| match m {
                RedeemInbox::Redeemed(r) => Answer::Reply(r),
                RedeemInbox::Credited(n) => Answer::Notice(n),
            },
            |r| r.replayed,
        )
        .await?;
    let Some(reply) = reply else {
        return Err(CallError::Timeout(gc::Redeem::SUBJECT.into()).into());
    };
    let mut redemption = reply.redemption;
    let wallet = match notice {
        Some(n) if n.redemption_id == redemption.id => {
            credited(&mut redemption, &n);
            Some(WalletView {
                phone: n.phone,
                balance: n.balance,
                currency: n.currency,
                transaction_id: n.transaction_id,
            })
        }
        // A replay, or a credit not confirmed in time.
        _ => settle(s, &mut redemption, rid).await,
    };
    Ok(respond(redemption, wallet))
}

fn credited(r: &mut Redemption, n: &CreditNotice) {
    r.status = RedemptionStatus::Credited;
    r.transaction_id = Some(n.transaction_id);
    r.credited_at = Some(n.credited_at);
}

/// The credit status of a redemption as the ledger knows it, and the wallet
/// as it is now. giftcode-svc learns of a credit from `wallet.credited`
/// a moment after the ledger commits it; for a redemption it still calls
/// pending, the ledger (`wallet.redemptions.get`) is the authority.
async fn settle(s: &AppState, r: &mut Redemption, rid: &str) -> Option<WalletView> {
    if r.status == RedemptionStatus::Pending {
        let req = RedemptionCreditRequest {
            redemption_id: r.id,
        };
        // Not found, or wallet-svc down: the redemption stays pending.
        if let Ok(n) = s.nats.request::<wl::RedemptionsGet>(&req, Some(rid)).await {
            credited(r, &n);
        }
    }
    current_wallet(s, r, rid).await
}

/// [`settle`] for a list: the pending ones are asked about in one call
/// (`wallet.redemptions.credited`). If wallet-svc does not answer, they stay
/// pending.
pub async fn settle_all(s: &AppState, items: &mut [Redemption], rid: &str) {
    let redemption_ids: Vec<_> = items
        .iter()
        .filter(|r| r.status == RedemptionStatus::Pending)
        .map(|r| r.id)
        .collect();
    if redemption_ids.is_empty() {
        return;
    }
    let query = CreditsQuery { redemption_ids };
    let Ok(found) = s
        .nats
        .request::<wl::RedemptionsCredited>(&query, Some(rid))
        .await
    else {
        return;
    };
    for c in found.credits {
        if let Some(r) = items.iter_mut().find(|r| r.id == c.redemption_id) {
            r.status = RedemptionStatus::Credited;
            r.transaction_id = Some(c.transaction_id);
            r.credited_at = Some(c.credited_at);
        }
    }
}

/// The wallet as it is now, for a redemption credited.
async fn current_wallet(s: &AppState, r: &Redemption, rid: &str) -> Option<WalletView> {
    let transaction_id = r
        .transaction_id
        .filter(|_| r.status == RedemptionStatus::Credited)?;
    let req = PhoneRequest {
        phone: r.phone.clone(),
    };
    let wallet = s
        .nats
        .request::<wl::WalletsGet>(&req, Some(rid))
        .await
        .ok()?;
    Some(WalletView {
        phone: wallet.phone,
        balance: wallet.balance,
        currency: wallet.currency,
        transaction_id,
    })
}

fn respond(redemption: Redemption, wallet: Option<WalletView>) -> Response {
    let location = format!("/api/v1/redemptions/{}", redemption.id);
    let credited = wallet.is_some();
    let view = RedemptionView { redemption, wallet };
    if credited {
        (StatusCode::OK, axum::Json(view)).into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            axum::Json(view),
        )
            .into_response()
    }
}

#[utoipa::path(
    get, path = "/redemptions/{id}", tag = "redemptions",
    summary = "One redemption, with its credit status",
    params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = RedemptionView),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathId(id): PathId<RedemptionId>,
) -> ApiResult<axum::Json<RedemptionView>> {
    let mut redemption = s
        .nats
        .request::<gc::RedemptionsGet>(&GetRedemptionRequest { id }, Some(&rid))
        .await?;
    let wallet = settle(&s, &mut redemption, &rid).await;
    Ok(axum::Json(RedemptionView { redemption, wallet }))
}
