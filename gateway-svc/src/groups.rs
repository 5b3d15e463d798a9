//! Admin routes for gift-code groups and codes (DESIGN.md §8). Creation returns
//! the full codes once: as JSON, or streamed as CSV with `Accept: text/csv`.

use axum::{
    body::Body as HttpBody,
    extract::{Path, State},
    http::{HeaderMap, StatusCode, header},
    response::{IntoResponse, Response},
};
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use shared_events::{
    Endpoint, ErrorCode, GroupId, Limit, Page,
    endpoint::giftcode as gc,
    giftcode::{
        CodeDetails, CodeStatus, CodeSummary, CreateGroupFrame, CreateGroupRequest,
        GetGroupRequest, Group, ListCodesRequest, ListGroupsRequest, ListRedemptionsRequest,
        LookupCodeRequest, Redemption, Timeline, TimelineRequest, UpdateGroupRequest,
    },
};
use svc_kit::nats::CallError;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::{
    AppState,
    error::{ApiError, ApiResult, Problem},
    extract::{Admin, Body, Params, PathId, RequestId},
};

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// 1–500, default 50.
    pub limit: Option<Limit>,
    /// `next_cursor` of the previous page.
    pub cursor: Option<Uuid>,
}

impl PageQuery {
    /// The cursor as the services take it.
    pub fn cursor(&self) -> Option<String> {
        self.cursor.map(|c| c.to_string())
    }
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CodesQuery {
    /// Only `redeemed` or only `unredeemed` codes.
    status: Option<CodeStatus>,
    /// 1–500, default 50.
    limit: Option<Limit>,
    /// `next_cursor` of the previous page.
    cursor: Option<Uuid>,
}

/// A new group with its full codes: the only time they are shown.
#[derive(Debug, Serialize, ToSchema)]
pub struct CreatedGroup {
    #[serde(flatten)]
    group: Group,
    codes: Vec<String>,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PatchBody {
    active: bool,
}

#[utoipa::path(
    post, path = "/gift-groups", tag = "gift-groups",
    summary = "Create a gift-code group and its codes",
    description = "`unique` groups get `count` single-use codes; `shared` groups get one code (`code`, or generated) for the first `max_redemptions` phones. The full codes are shown this once: as JSON, or streamed as CSV (`code` header, one per line) with `Accept: text/csv`.",
    security(("admin" = [])),
    request_body = CreateGroupRequest,
    responses(
        (status = 201, description = "Created; `Location` names the group", headers(("Location" = String)), content(
            (CreatedGroup = "application/json"),
            (String = "text/csv", example = "code\nK7QX-4M9P-2ZHD\n"),
        )),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "`code_exists`: the shared `code` is taken", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "`payload_too_large`", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "`unsupported_media_type`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed` with `errors`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn create(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    headers: HeaderMap,
    Body(req): Body<CreateGroupRequest>,
) -> ApiResult<Response> {
    let wants_csv = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|a| a.contains("text/csv"));
    let (group, frames) = start_create(&s, &req, &rid).await?;
    let location = format!("/api/v1/gift-groups/{}", group.id);
    if wants_csv {
        return Ok(csv_response(&group, frames));
    }
    let codes = collect_codes(&s, frames).await?;
    Ok((
        StatusCode::CREATED,
        [
            (header::LOCATION, location),
            (header::CACHE_CONTROL, "no-store".to_owned()),
        ],
        axum::Json(CreatedGroup { group, codes }),
    )
        .into_response())
}

type Frames = svc_kit::nats::client::Replies<gc::GroupsCreate>;

/// Asks giftcode-svc to create a group: the group once it is committed, and
/// the frames of its codes still to come.
pub(crate) async fn start_create(
    s: &AppState,
    req: &CreateGroupRequest,
    rid: &str,
) -> ApiResult<(Group, Frames)> {
    let mut frames = s
        .nats
        .request_replies::<gc::GroupsCreate>(req, Some(rid))
        .await?;
    // The first frame comes once the group is committed: for a big group,
    // long after an ordinary call would have given up.
    match next_frame(&mut frames, s.create_group_timeout).await? {
        CreateGroupFrame::Group { group } => Ok((*group, frames)),
        _ => Err(ApiError::new(ErrorCode::Internal, "unexpected reply")),
    }
}

/// The rest of a creation's codes, gathered.
pub(crate) async fn collect_codes(s: &AppState, mut frames: Frames) -> ApiResult<Vec<String>> {
    let mut codes = Vec::new();
    loop {
        match next_frame(&mut frames, s.nats.timeout()).await? {
            CreateGroupFrame::Codes { codes: c } => codes.extend(c),
            CreateGroupFrame::End { .. } => return Ok(codes),
            CreateGroupFrame::Group { .. } => {}
        }
    }
}

/// 201 with the codes streamed as CSV as they come: the group is committed,
/// and a big group's codes never sit whole in the gateway's memory.
pub(crate) fn csv_response(group: &Group, frames: Frames) -> Response {
    let lines =
        futures::stream::once(async { Ok::<_, std::io::Error>(bytes::Bytes::from("code\n")) })
            .chain(frames.into_stream().map(|frame| match frame {
                Ok(CreateGroupFrame::Codes { codes }) => {
                    let mut out = codes.join("\n");
                    out.push('\n');
                    Ok(bytes::Bytes::from(out))
                }
                Ok(_) => Ok(bytes::Bytes::new()),
                Err(e) => Err(std::io::Error::other(e.to_string())),
            }))
            .take_while(|chunk| futures::future::ready(!matches!(chunk, Ok(b) if b.is_empty())));
    (
        StatusCode::CREATED,
        [
            (header::CONTENT_TYPE, "text/csv; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (
                header::LOCATION,
                format!("/api/v1/gift-groups/{}", group.id),
            ),
            (
                header::HeaderName::from_static("x-group-id"),
                group.id.to_string(),
            ),
        ],
        HttpBody::from_stream(lines),
    )
        .into_response()
}

/// The next frame of a creation, within `wait`.
async fn next_frame(
    frames: &mut svc_kit::nats::client::Replies<gc::GroupsCreate>,
    wait: std::time::Duration,
) -> ApiResult<CreateGroupFrame> {
    let deadline = tokio::time::Instant::now() + wait;
    match frames.next_until(deadline).await {
        Some(frame) => Ok(frame?),
        None => Err(CallError::Timeout(gc::GroupsCreate::SUBJECT.into()).into()),
    }
}

#[utoipa::path(
    get, path = "/gift-groups", tag = "gift-groups", summary = "List groups, with their stats",
    security(("admin" = [])), params(PageQuery),
    responses(
        (status = 200, body = Page<Group>),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 422, description = "`validation_failed`: bad `limit` (1–500) or `cursor`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn list(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Params(q): Params<PageQuery>,
) -> ApiResult<axum::Json<Page<Group>>> {
    let req = ListGroupsRequest {
        limit: q.limit,
        cursor: q.cursor(),
    };
    Ok(axum::Json(
        s.nats.request::<gc::GroupsList>(&req, Some(&rid)).await?,
    ))
}

#[utoipa::path(
    get, path = "/gift-groups/{id}", tag = "gift-groups", summary = "One group, with its stats",
    security(("admin" = [])), params(("id" = Uuid, Path)),
    responses(
        (status = 200, body = Group),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`group_not_found`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn get(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathId(id): PathId<GroupId>,
) -> ApiResult<axum::Json<Group>> {
    Ok(axum::Json(
        s.nats
            .request::<gc::GroupsGet>(&GetGroupRequest { id }, Some(&rid))
            .await?,
    ))
}

#[utoipa::path(
    patch, path = "/gift-groups/{id}", tag = "gift-groups",
    summary = "Deactivate or activate a group",
    security(("admin" = [])), params(("id" = Uuid, Path)), request_body = PatchBody,
    responses(
        (status = 200, body = Group),
        (status = 400, description = "`malformed_json`", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`group_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn patch(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathId(id): PathId<GroupId>,
    Body(body): Body<PatchBody>,
) -> ApiResult<axum::Json<Group>> {
    let req = UpdateGroupRequest {
        id,
        active: body.active,
    };
    Ok(axum::Json(
        s.nats.request::<gc::GroupsUpdate>(&req, Some(&rid)).await?,
    ))
}

#[utoipa::path(
    get, path = "/gift-groups/{id}/codes", tag = "gift-groups",
    summary = "A group's codes (hints only, never the full codes)",
    security(("admin" = [])), params(("id" = Uuid, Path), CodesQuery),
    responses(
        (status = 200, body = Page<CodeSummary>),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`group_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`validation_failed`: bad `status`, `limit` or `cursor`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn codes(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathId(group_id): PathId<GroupId>,
    Params(q): Params<CodesQuery>,
) -> ApiResult<axum::Json<Page<CodeSummary>>> {
    let req = ListCodesRequest {
        group_id,
        status: q.status,
        limit: q.limit,
        cursor: q.cursor.map(|c| c.to_string()),
    };
    Ok(axum::Json(
        s.nats.request::<gc::CodesList>(&req, Some(&rid)).await?,
    ))
}

#[utoipa::path(
    get, path = "/gift-groups/{id}/redemptions", tag = "gift-groups",
    summary = "Who redeemed a group's codes, newest first",
    security(("admin" = [])), params(("id" = Uuid, Path), PageQuery),
    responses(
        (status = 200, body = Page<Redemption>),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`group_not_found`", body = Problem, content_type = "application/problem+json"), (status = 422, description = "`validation_failed`: bad `limit` (1–500) or `cursor`", body = Problem, content_type = "application/problem+json"), (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn redemptions(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathId(group_id): PathId<GroupId>,
    Params(q): Params<PageQuery>,
) -> ApiResult<axum::Json<Page<Redemption>>> {
    let req = ListRedemptionsRequest {
        group_id,
        limit: q.limit,
        cursor: q.cursor(),
    };
    let mut page = s
        .nats
        .request::<gc::RedemptionsList>(&req, Some(&rid))
        .await?;
    crate::redemptions::settle_all(&s, &mut page.items, &rid).await;
    Ok(axum::Json(page))
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct TimelineQuery {
    /// How many minutes back, ending with the current one: 1–1440, default 60.
    #[param(minimum = 1, maximum = 1440)]
    pub minutes: Option<u32>,
}

#[utoipa::path(
    get, path = "/gift-groups/{id}/timeline", tag = "gift-groups",
    summary = "A group's redemptions per minute",
    description = "One entry per minute of the window, oldest first, empty minutes included: what the console's chart draws.",
    security(("admin" = [])), params(("id" = Uuid, Path), TimelineQuery),
    responses(
        (status = 200, body = Timeline),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"), (status = 404, description = "`group_not_found`", body = Problem, content_type = "application/problem+json"), (status = 422, description = "`validation_failed`: `minutes` outside 1–1440", body = Problem, content_type = "application/problem+json"), (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn timeline(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    PathId(group_id): PathId<GroupId>,
    Params(q): Params<TimelineQuery>,
) -> ApiResult<axum::Json<Timeline>> {
    let req = TimelineRequest {
        group_id,
        minutes: q.minutes,
    };
    Ok(axum::Json(
        s.nats
            .request::<gc::GroupsTimeline>(&req, Some(&rid))
            .await?,
    ))
}

#[utoipa::path(
    get, path = "/gift-codes/{code}", tag = "gift-groups",
    summary = "One code's details, looked up by the full code",
    security(("admin" = [])), params(("code" = String, Path, max_length = 64, pattern = "^[ -]*(?:[A-Za-z0-9][ -]*){4,32}$", description = "The full code, any case, dashes optional")),
    responses(
        (status = 200, body = CodeDetails),
        (status = 401, description = "`unauthorized`: no or wrong bearer token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "`code_not_found`", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`invalid_code`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: giftcode-svc cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn lookup(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
    Path(code): Path<String>,
) -> ApiResult<axum::Json<CodeDetails>> {
    Ok(axum::Json(
        s.nats
            .request::<gc::CodesLookup>(&LookupCodeRequest { code }, Some(&rid))
            .await?,
    ))
}
