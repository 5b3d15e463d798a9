//! Admin routes for wallets (DESIGN.md §8). Credits and debits need an
//! `Idempotency-Key` header: the same key and body answer with the original
//! transaction (and `Idempotent-Replayed: true`), another body is 409.

use axum::{
    extract::State,
    http::StatusCode,
    response::{IntoResponse, Response},
};
use serde::Deserialize;
use shared_events::{
    Amount, Page,
    endpoint::wallet as wl,
    wallet::{
        ListTransactionsRequest, ListWalletsRequest, MoveRequest, PhoneRequest, Transaction, Wallet,
    },
};
use utoipa::ToSchema;

use crate::{
    AppState,
    error::{ApiResult, Problem},
    extract::{Admin, Body, IdemKey, Params, PathPhone, RequestId},
    groups::PageQuery,
};

/// A page of wallets: they are in phone order, and the cursor is a phone.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WalletsQuery {
    /// 1–500, default 50.
    limit: Option<shared_events::Limit>,
    /// `next_cursor` of the previous page: the last phone of that page (any
    /// `+` and digits are a position in phone order).
    #[param(pattern = r"^\+[0-9]{1,16}$")]
    cursor: Option<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateBody {
    /// E.164, or national format in `DEFAULT_REGION`.
    #[schema(example = "+14155552671", pattern = r"^\+?[0-9][0-9 ().-]{3,23}$")]
    phone: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct MoveBody {
    amount: Amount,
    /// At most 500 characters.
    #[schema(max_length = 500)]
    description: Option<String>,
}

#[utoipa::path(
    post, path = "/wallets", tag = "wallets", summary = "Open a wallet for a phone",
    security(("admin" = [])), request_body = CreateBody,
    responses(
        (status = 201, body = Wallet),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`wallet_exists`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_phone`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: wallet-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Body(body): Body<CreateBody>,
) -> ApiResult<Response> {
    let req = PhoneRequest {
        phone: s.phone(&body.phone)?,
    };
    let wallet = s
        .nats
        .request::<wl::WalletsCreate>(&req, Some(&rid))
        .await?;
    Ok((StatusCode::CREATED, axum::Json(wallet)).into_response())
}

#[utoipa::path(
    get, path = "/wallets", tag = "wallets", summary = "Wallets, in phone order",
    security(("admin" = [])), params(WalletsQuery),
    responses(
        (status = 200, body = Page<Wallet>),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: bad `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: wallet-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Params(q): Params<WalletsQuery>,
) -> ApiResult<axum::Json<Page<Wallet>>> {
    let req = ListWalletsRequest {
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(axum::Json(
        s.nats.request::<wl::WalletsList>(&req, Some(&rid)).await?,
    ))
}

#[utoipa::path(
    get, path = "/wallets/{phone}", tag = "wallets", summary = "One wallet and its balance",
    security(("admin" = [])), params(("phone" = String, Path, description = "E.164 (`+14155552671`) or national format in `DEFAULT_REGION`")),
    responses(
        (status = 200, body = Wallet),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`wallet_not_found`", body = Problem, content_type = "application/problem+json"), (status = 422, description = "`invalid_phone`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "`service_unavailable`: wallet-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathPhone(phone): PathPhone,
) -> ApiResult<axum::Json<Wallet>> {
    Ok(axum::Json(
        s.nats
            .request::<wl::WalletsGet>(&PhoneRequest { phone }, Some(&rid))
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/wallets/{phone}/transactions", tag = "wallets",
    summary = "A wallet's transactions, newest first",
    security(("admin" = [])), params(("phone" = String, Path, description = "E.164 (`+14155552671`) or national format in `DEFAULT_REGION`"), PageQuery),
    responses(
        (status = 200, body = Page<Transaction>),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`wallet_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_phone`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: wallet-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn transactions(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathPhone(phone): PathPhone,
    Params(q): Params<PageQuery>,
) -> ApiResult<axum::Json<Page<Transaction>>> {
    let req = ListTransactionsRequest {
        phone,
        limit: q.limit,
        cursor: q.cursor(),
    };
    Ok(axum::Json(
        s.nats
            .request::<wl::TransactionsList>(&req, Some(&rid))
            .await?,
    ))
}

#[utoipa::path(
    post, path = "/wallets/{phone}/credits", tag = "wallets",
    summary = "Add balance (opens the wallet if needed)",
    security(("admin" = [])), params(("phone" = String, Path, description = "E.164 (`+14155552671`) or national format in `DEFAULT_REGION`"), ("Idempotency-Key" = String, Header, min_length = 1, max_length = 200, pattern = r"^\S(.*\S)?$", description = "Required, 1–200 characters. The same key and body replay the original transaction; another body is 409 `idempotency_conflict`")), request_body = MoveBody,
    responses(
        (status = 201, body = Transaction, headers(("Idempotent-Replayed" = bool, description = "`true` when this is the original answer replayed"))),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_conflict`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_phone`, `validation_failed` (amount ≤ 0, no `Idempotency-Key`)", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: wallet-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn credit(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathPhone(phone): PathPhone,
    IdemKey(key): IdemKey,
    Body(body): Body<MoveBody>,
) -> ApiResult<Response> {
    let req = move_request(phone, key, body);
    let reply = s
        .nats
        .request::<wl::CreditsCreate>(&req, Some(&rid))
        .await?;
    Ok(created(reply))
}

#[utoipa::path(
    post, path = "/wallets/{phone}/debits", tag = "wallets", summary = "Spend balance",
    security(("admin" = [])), params(("phone" = String, Path, description = "E.164 (`+14155552671`) or national format in `DEFAULT_REGION`"), ("Idempotency-Key" = String, Header, min_length = 1, max_length = 200, pattern = r"^\S(.*\S)?$", description = "Required, 1–200 characters. The same key and body replay the original transaction; another body is 409 `idempotency_conflict`")), request_body = MoveBody,
    responses(
        (status = 201, body = Transaction, headers(("Idempotent-Replayed" = bool, description = "`true` when this is the original answer replayed"))),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`wallet_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`idempotency_conflict`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`insufficient_funds`, `invalid_phone`, `validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: wallet-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn debit(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathPhone(phone): PathPhone,
    IdemKey(key): IdemKey,
    Body(body): Body<MoveBody>,
) -> ApiResult<Response> {
    let req = move_request(phone, key, body);
    let reply = s.nats.request::<wl::DebitsCreate>(&req, Some(&rid)).await?;
    Ok(created(reply))
}

fn move_request(
    phone: shared_events::Phone,
    idempotency_key: shared_events::IdempotencyKey,
    body: MoveBody,
) -> MoveRequest {
    MoveRequest {
        phone,
        amount: body.amount,
        description: body.description,
        idempotency_key,
    }
}

/// 201 with the transaction; `Idempotent-Replayed: true` on a replay.
fn created(reply: shared_events::wallet::MoveReply) -> Response {
    let replayed = if reply.replayed { "true" } else { "false" };
    (
        StatusCode::CREATED,
        [("idempotent-replayed", replayed)],
        axum::Json(reply.transaction),
    )
        .into_response()
}
