//! Admin routes for wallets (DESIGN.md §8). Credits and debits need an
//! `Idempotency-Key` header: the same key and body answer with the original
//! transaction (and `Idempotent-Replayed: true`), another body is 409.

use axum::{
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared_events::{
    Page,
    subjects::wallet as wl,
    wallet::{
        ListTransactionsRequest, ListWalletsRequest, MoveReply, MoveRequest, PhoneRequest,
        Transaction, Wallet,
    },
};

use crate::{
    AppState,
    error::{ApiError, ApiResult},
    extract::{Body, Params, RequestId},
    groups::PageQuery,
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    phone: String,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    amount: i64,
    description: Option<String>,
}

pub async fn create(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    let wallet: Wallet = s
        .nats
        .call(
            wl::WALLETS_CREATE,
            &PhoneRequest { phone: body.phone },
            Some(&rid),
        )
        .await?;
    Ok((StatusCode::CREATED, axum::Json(wallet)).into_response())
}

pub async fn list(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Params(q): Params<PageQuery>,
) -> ApiResult<axum::Json<Page<Wallet>>> {
    let req = ListWalletsRequest {
        limit: q.limit(),
        cursor: q.cursor(),
    };
    Ok(axum::Json(
        s.nats.call(wl::WALLETS_LIST, &req, Some(&rid)).await?,
    ))
}

pub async fn get(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(phone): Path<String>,
) -> ApiResult<axum::Json<Wallet>> {
    Ok(axum::Json(
        s.nats
            .call(wl::WALLETS_GET, &PhoneRequest { phone }, Some(&rid))
            .await?,
    ))
}

pub async fn transactions(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(phone): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<axum::Json<Page<Transaction>>> {
    let req = ListTransactionsRequest {
        phone,
        limit: q.limit(),
        cursor: q.cursor(),
    };
    Ok(axum::Json(
        s.nats.call(wl::TRANSACTIONS_LIST, &req, Some(&rid)).await?,
    ))
}

pub async fn credit(
    s: State<AppState>,
    rid: RequestId,
    path: Path<String>,
    headers: HeaderMap,
    body: Body<MoveBody>,
) -> ApiResult<Response> {
    money(s, rid, path, headers, body, wl::CREDITS_CREATE).await
}

pub async fn debit(
    s: State<AppState>,
    rid: RequestId,
    path: Path<String>,
    headers: HeaderMap,
    body: Body<MoveBody>,
) -> ApiResult<Response> {
    money(s, rid, path, headers, body, wl::DEBITS_CREATE).await
}

async fn money(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(phone): Path<String>,
    headers: HeaderMap,
    Body(body): Body<MoveBody>,
    subject: &str,
) -> ApiResult<Response> {
    let key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .ok_or_else(|| ApiError::field("Idempotency-Key", "this header is required"))?;
    let req = MoveRequest {
        phone,
        amount: body.amount,
        description: body.description,
        idempotency_key: key,
    };
    let reply: MoveReply = s.nats.call(subject, &req, Some(&rid)).await?;
    let replayed = if reply.replayed { "true" } else { "false" };
    Ok((
        StatusCode::CREATED,
        [("idempotent-replayed", replayed)],
        axum::Json(reply.transaction),
    )
        .into_response())
}
