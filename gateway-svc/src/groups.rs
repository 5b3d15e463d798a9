//! Admin routes for gift-code groups and codes (DESIGN.md §8). Creation returns
//! the full codes once: as JSON, or streamed as CSV with `Accept: text/csv`.

use axum::{
    body::Body as HttpBody,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use serde::Deserialize;
use serde_json::json;
use shared_events::{
    ErrorCode, Page,
    giftcode::{
        CodeDetails, CodeStatus, CodeSummary, CreateGroupFrame, CreateGroupRequest,
        GetGroupRequest, Group, ListCodesRequest, ListGroupsRequest, ListRedemptionsRequest,
        LookupCodeRequest, Redemption, UpdateGroupRequest,
    },
    subjects::giftcode as gc,
};
use svc_kit::nats::{CallError, decode_reply};

use crate::{
    AppState,
    error::{ApiError, ApiResult},
    extract::{Body, Params, RequestId},
};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageQuery {
    limit: Option<u32>,
    cursor: Option<String>,
}

impl PageQuery {
    pub fn limit(&self) -> Option<u32> {
        self.limit
    }
    pub fn cursor(&self) -> Option<String> {
        self.cursor.clone()
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodesQuery {
    status: Option<CodeStatus>,
    limit: Option<u32>,
    cursor: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    active: bool,
}

pub async fn create(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    headers: HeaderMap,
    Body(req): Body<CreateGroupRequest>,
) -> ApiResult<Response> {
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    let mut frames = s
        .nats
        .call_stream(gc::GROUPS_CREATE, &req, Some(&rid))
        .await?;
    let first = tokio::time::timeout(s.nats.timeout(), frames.next())
        .await
        .map_err(|_| ApiError::from(CallError::Timeout(gc::GROUPS_CREATE.into())))?
        .ok_or_else(|| ApiError::from(CallError::Transport("reply stream closed".into())))?;
    if first.status == Some(async_nats::StatusCode::NO_RESPONDERS) {
        return Err(CallError::NoResponders(gc::GROUPS_CREATE.into()).into());
    }
    let group = match decode_reply::<CreateGroupFrame>(&first)? {
        CreateGroupFrame::Group { group } => *group,
        _ => return Err(ApiError::new(ErrorCode::Internal, "unexpected reply")),
    };
    let location = format!("/api/v1/gift-groups/{}", group.id);
    if wants_csv {
        // The group is committed; its codes stream to the caller as they come.
        let lines =
            futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from("code\n")) })
                .chain(
                    frames.map(|msg| match decode_reply::<CreateGroupFrame>(&msg) {
                        Ok(CreateGroupFrame::Codes { codes }) => {
                            let mut out = codes.join("\n");
                            out.push('\n');
                            Ok(bytes::Bytes::from(out))
                        }
                        Ok(_) => Ok(bytes::Bytes::new()),
                        Err(e) => Err(std::io::Error::other(e.to_string())),
                    }),
                )
                .take_while(|chunk| {
                    futures::future::ready(!matches!(chunk, Ok(b) if b.is_empty()))
                });
        return Ok((
            StatusCode::CREATED,
            [
                (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
                (header::LOCATION, location),
                (
                    header::HeaderName::from_static("x-group-id"),
                    group.id.to_string(),
                ),
            ],
            HttpBody::from_stream(lines),
        )
            .into_response());
    }
    let mut codes = Vec::new();
    loop {
        let msg = tokio::time::timeout(s.nats.timeout(), frames.next())
            .await
            .map_err(|_| ApiError::from(CallError::Timeout(gc::GROUPS_CREATE.into())))?
            .ok_or_else(|| ApiError::from(CallError::Transport("reply stream closed".into())))?;
        match decode_reply::<CreateGroupFrame>(&msg)? {
            CreateGroupFrame::Codes { codes: c } => codes.extend(c),
            CreateGroupFrame::End { .. } => break,
            CreateGroupFrame::Group { .. } => {}
        }
    }
    let mut body = serde_json::to_value(&group).unwrap_or_default();
    body["codes"] = json!(codes);
    Ok((
        StatusCode::CREATED,
        [(header::LOCATION, location)],
        axum::Json(body),
    )
        .into_response())
}

pub async fn list(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Params(q): Params<PageQuery>,
) -> ApiResult<axum::Json<Page<Group>>> {
    let req = ListGroupsRequest {
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(axum::Json(
        s.nats.call(gc::GROUPS_LIST, &req, Some(&rid)).await?,
    ))
}

pub async fn get(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(id): Path<String>,
) -> ApiResult<axum::Json<Group>> {
    Ok(axum::Json(
        s.nats
            .call(gc::GROUPS_GET, &GetGroupRequest { id }, Some(&rid))
            .await?,
    ))
}

pub async fn patch(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(id): Path<String>,
    Body(body): Body<PatchBody>,
) -> ApiResult<axum::Json<Group>> {
    let req = UpdateGroupRequest {
        id,
        active: body.active,
    };
    Ok(axum::Json(
        s.nats.call(gc::GROUPS_UPDATE, &req, Some(&rid)).await?,
    ))
}

pub async fn codes(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(group_id): Path<String>,
    Params(q): Params<CodesQuery>,
) -> ApiResult<axum::Json<Page<CodeSummary>>> {
    let req = ListCodesRequest {
        group_id,
        status: q.status,
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(axum::Json(
        s.nats.call(gc::CODES_LIST, &req, Some(&rid)).await?,
    ))
}

pub async fn redemptions(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(group_id): Path<String>,
    Params(q): Params<PageQuery>,
) -> ApiResult<axum::Json<Page<Redemption>>> {
    let req = ListRedemptionsRequest {
        group_id,
        limit: q.limit,
        cursor: q.cursor,
    };
    Ok(axum::Json(
        s.nats.call(gc::REDEMPTIONS_LIST, &req, Some(&rid)).await?,
    ))
}

pub async fn lookup(
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<CodeDetails>> {
    Ok(axum::Json(
        s.nats
            .call(gc::CODES_LOOKUP, &LookupCodeRequest { code }, Some(&rid))
            .await?,
    ))
}
