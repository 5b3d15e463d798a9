//! `POST /api/v1/redemptions/{id}/reversal` (admin, DESIGN.md §12) and
//! `PATCH /api/v1/gift-groups/{group_id}/codes/{code_id}`.
//!
//! A reversal is a saga in the style of the redeem: the gateway sends
//! `giftcode.redemptions.reverse` with a fresh inbox; giftcode-svc records
//! the attempt and answers there; wallet-svc moves the money back (or
//! refuses) and sends its outcome to the same inbox. Done within
//! `GATEWAY_REDEEM_TIMEOUT_MS`: 200 with the redemption and its `reversal`.
//! Refused: 422 `insufficient_funds`. Not answered in time: 202 with
//! `Location`, the reversal still pending.

use axum::{
    extract::State,
    http::{StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared_events::{
    Endpoint, ErrorCode, GroupId, RedemptionId,
    endpoint::giftcode as gc,
    giftcode::{
        CodeSummary, GetRedemptionRequest, Redemption, ReversalStatus, ReverseInbox,
        ReverseRequest, UpdateCodeRequest,
    },
};
use svc_kit::nats::{CallError, client::Answer};
use utoipa::ToSchema;

use crate::{
    AppState,
    error::{ApiError, ApiResult, Problem},
    extract::{Admin, Body, IdemKey, PathId, RequestId},
    redemptions::RedemptionView,
};

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReversalBody {
    /// Why: 1–500 characters, kept with the reversal and on the ledger.
    #[schema(
        min_length = 1,
        max_length = 500,
        example = "redeemed with a leaked code"
    )]
    reason: String,
    /// Free the code (or the shared cap's slot) and the phone's count, so
    /// that it can be redeemed again. Default: the code stays burned.
    #[serde(default)]
    release_code: bool,
}

#[utoipa::path(
    post, path = "/redemptions/{id}/reversal", tag = "redemptions",
    summary = "Reverse a credited redemption",
    description = "Moves the amount back from the wallet to the group (a `gift_code_reversal` transaction) and marks the redemption `reversed` (DESIGN.md §12). At most one reversal of a redemption completes; asked again, it answers with that one.",
    security(("admin" = [])),
    params(("id" = Uuid, Path), ("Idempotency-Key" = String, Header, min_length = 1, max_length = 200, pattern = r"^\S(.*\S)?$", description = "Required, 1–200 characters. The same key with another body is 409 `idempotency_conflict`")),
    request_body = ReversalBody,
    responses(
        (status = 200, description = "Reversed: the redemption with `status: reversed` and its `reversal`", body = RedemptionView),
        (status = 202, description = "Asked, not answered yet: `reversal.status: pending`; poll `Location`", body = RedemptionView, headers(("Location" = String))),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`redemption_not_credited` (its credit is not confirmed yet), `idempotency_conflict`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds` (nothing changed; may be asked again later), `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn reverse(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathId(id): PathId<RedemptionId>,
    IdemKey(key): IdemKey,
    Body(body): Body<ReversalBody>,
) -> ApiResult<Response> {
    let req = ReverseRequest {
        redemption_id: id,
        reason: body.reason,
        release_code: body.release_code,
        idempotency_key: key,
    };
    let (done, redemption) = run(&s, req, &rid).await?;
    let location = format!("/api/v1/redemptions/{}", redemption.id);
    let view = RedemptionView::without_wallet(redemption);
    Ok(if done {
        (StatusCode::OK, axum::Json(view)).into_response()
    } else {
        (
            StatusCode::ACCEPTED,
            [(header::LOCATION, location)],
            axum::Json(view),
        )
            .into_response()
    })
}

/// The saga from the gateway's side (the API route and the console): the
/// redemption as it stands, and whether its reversal is done (else still
/// pending). A refusal is `insufficient_funds`.
pub async fn run(s: &AppState, req: ReverseRequest, rid: &str) -> ApiResult<(bool, Redemption)> {
    let id = req.redemption_id;
    let deadline = tokio::time::Instant::now() + s.redeem_timeout;
    let mut inbox = s
        .nats
        .request_replies::<gc::RedemptionsReverse>(&req, Some(rid))
        .await?;
    // Either may come first: wallet-svc's outcome can beat giftcode-svc's
    // reply, which re-reads the redemption after its commit. A replay asked
    // nothing new, so no outcome follows it.
    let (recorded, outcome) = inbox
        .reply_and_notice(
            s.nats.timeout(),
            deadline,
            |m| match m {
                ReverseInbox::Recorded(r) => Answer::Reply(*r),
                ReverseInbox::Outcome(n) => Answer::Notice(n),
            },
            |r| r.replayed,
        )
        .await?;
    let Some(recorded) = recorded else {
        return Err(CallError::Timeout(gc::RedemptionsReverse::SUBJECT.into()).into());
    };
    if let Some(n) = outcome.as_ref().filter(|n| n.refused) {
        return Err(ApiError::new(
            ErrorCode::InsufficientFunds,
            format!(
                "the wallet holds {} and the reversal needs {}: nothing changed; it may be asked again",
                n.balance,
                recorded.redemption.amount.get()
            ),
        ));
    }
    // Done (or done before): read the redemption as giftcode-svc has it now,
    // which the outcome may have reached a moment ago.
    let mut redemption = recorded.redemption;
    if outcome.is_some()
        || redemption
            .reversal
            .as_ref()
            .is_some_and(|r| r.status == ReversalStatus::Pending)
    {
        let deadline = tokio::time::Instant::now() + s.nats.timeout();
        loop {
            let fresh = s
                .nats
                .request::<gc::RedemptionsGet>(&GetRedemptionRequest { id }, Some(rid))
                .await?;
            let settled = fresh
                .reversal
                .as_ref()
                .is_some_and(|r| r.status != ReversalStatus::Pending);
            redemption = fresh;
            if settled || outcome.is_none() || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
    let status = redemption.reversal.as_ref().map(|r| r.status);
    if status == Some(ReversalStatus::Refused) {
        return Err(ApiError::new(
            ErrorCode::InsufficientFunds,
            "the wallet held less than the amount: nothing changed; it may be asked again",
        ));
    }
    Ok((status == Some(ReversalStatus::Done), redemption))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CodePatch {
    active: bool,
}

#[utoipa::path(
    patch, path = "/gift-groups/{group_id}/codes/{code_id}", tag = "gift-groups",
    summary = "Disable or re-enable one code",
    description = "By the code's id (from the group's codes, or `GET /gift-codes/{code}`): a full code never goes in a URL after its creation. Redeeming a disabled code is 410 `code_inactive`.",
    security(("admin" = [])),
    params(("group_id" = Uuid, Path), ("code_id" = Uuid, Path)),
    request_body = CodePatch,
    responses(
        (status = 200, body = CodeSummary),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`group_not_found`, `code_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch_code(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    axum::extract::Path((group_id, code_id)): axum::extract::Path<(String, String)>,
    Body(body): Body<CodePatch>,
) -> ApiResult<axum::Json<CodeSummary>> {
    let group_id: GroupId = group_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::GroupNotFound, "no group has this id"))?;
    let code_id = code_id
        .parse()
        .map_err(|_| ApiError::new(ErrorCode::CodeNotFound, "no code has this id"))?;
    let req = UpdateCodeRequest {
        group_id,
        code_id,
        active: body.active,
    };
    Ok(axum::Json(
        s.nats.request::<gc::CodesUpdate>(&req, Some(&rid)).await?,
    ))
}
