//! `GET /api/v1/reconciliation` (admin): does the money add up? It checks
//! DESIGN.md §7's invariant from both owners of the truth:
//!
//! - per group, giftcode-svc's `redemptions` and `redeemed_amount` (net of
//!   reversals) against what wallet-svc debited from the group's funding
//!   account, net of what reversals credited back (DESIGN.md §12);
//! - per redemption, by merging the two services' lists (each in redemption-id
//!   order, a page at a time, so nothing is held whole): recorded but not (yet)
//!   credited, credited twice, credited with no redemption, credited with
//!   another amount or group;
//! - the ledger's own check: balances sum to zero and match the transfers.
//!
//! `ok` is true only when all of it matches. While redeems are in flight a
//! redemption may show as not yet credited; run it once the platform is quiet.

use std::collections::VecDeque;

use axum::extract::State;
use chrono::{DateTime, Utc};
use futures::{StreamExt, TryStreamExt};
use serde::Serialize;
use shared_events::{
    Endpoint, GroupId, Limit, RedemptionId,
    endpoint::{giftcode as gc, wallet as wl},
    giftcode::ListGroupsRequest,
    reconciliation::{Item, ItemPage, PageRequest},
    wallet::{FundingRequest, LedgerCheck, LedgerCheckRequest},
};
use utoipa::ToSchema;

use crate::{
    AppState,
    error::{ApiResult, Problem},
    extract::{Admin, RequestId},
};

/// How many redemption ids each finding lists (the count is always whole).
const SHOWN: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct Reconciliation {
    /// True when every group, every redemption and the ledger match.
    pub ok: bool,
    pub checked_at: DateTime<Utc>,
    /// Redemptions giftcode-svc recorded, and redemption credits wallet-svc made.
    pub redemptions: u64,
    pub credits: u64,
    pub groups: Vec<GroupCheck>,
    /// Recorded, but no credit (yet).
    pub uncredited: Finding,
    /// Credited more than once.
    pub credited_twice: Finding,
    /// A credit for a redemption giftcode-svc never recorded.
    pub credited_without_redemption: Finding,
    /// A credit whose amount or group differs from the redemption's.
    pub mismatched: Finding,
    /// A reversal one service has completed and the other not (yet): the
    /// ledger moved the money back and giftcode-svc has not marked the
    /// redemption reversed, or the reverse. Settles within seconds.
    pub reversal_unsettled: Finding,
    pub ledger: LedgerCheck,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct GroupCheck {
    pub group_id: GroupId,
    /// giftcode-svc's stats of the group.
    pub redemptions: i64,
    pub redeemed_amount: i64,
    /// What wallet-svc paid from the group's funding account.
    pub credits: i64,
    pub credited_amount: i64,
    pub ok: bool,
}

#[derive(Debug, Default, Serialize, ToSchema)]
pub struct Finding {
    pub count: u64,
    /// The first redemption ids found (at most 100).
    pub redemption_ids: Vec<RedemptionId>,
    /// `uncredited`: when the oldest of them was redeemed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_at: Option<DateTime<Utc>>,
    /// `uncredited`: how long the oldest has waited for its credit, in
    /// seconds, when the check ran. A few seconds is a credit on its way;
    /// minutes mean it is stuck (RELIABILITY.md).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub oldest_age_seconds: Option<f64>,
}

impl Finding {
    fn add(&mut self, id: RedemptionId) {
        self.count += 1;
        if self.redemption_ids.len() < SHOWN {
            self.redemption_ids.push(id);
        }
    }

    /// Adds a finding that happened `at`, keeping the oldest.
    fn add_at(&mut self, id: RedemptionId, at: Option<DateTime<Utc>>) {
        self.add(id);
        if let Some(at) = at
            && self.oldest_at.is_none_or(|o| at < o)
        {
            self.oldest_at = Some(at);
        }
    }
}

#[utoipa::path(
    get, path = "/reconciliation", tag = "operations",
    summary = "Check that every redemption is credited exactly once and the ledger sums to zero",
    security(("admin" = [])),
    responses(
        (status = 200, description = "The report; `ok` says whether everything matches", body = Reconciliation),
        (status = 401, description = "`unauthorized`", body = Problem, content_type = "application/problem+json"),
        (status = 503, description = "`service_unavailable`: a service cannot be reached", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn check(
    _: Admin,
    State(s): State<AppState>,
    RequestId(rid): RequestId,
) -> ApiResult<axum::Json<Reconciliation>> {
    report(&s, &rid).await.map(axum::Json)
}

/// Runs the whole check (the API route and the console's page).
pub async fn report(s: &AppState, rid: &str) -> ApiResult<Reconciliation> {
    let checked_at = Utc::now();
    let groups = group_checks(s, rid).await?;
    let mut report = Reconciliation {
        ok: false,
        checked_at,
        redemptions: 0,
        credits: 0,
        groups,
        uncredited: Finding::default(),
        credited_twice: Finding::default(),
        credited_without_redemption: Finding::default(),
        mismatched: Finding::default(),
        reversal_unsettled: Finding::default(),
        ledger: s
            .nats
            .request::<wl::LedgerCheckRun>(&LedgerCheckRequest {}, Some(rid))
            .await?,
    };
    merge(s, rid, &mut report).await?;
    report.uncredited.oldest_age_seconds = report
        .uncredited
        .oldest_at
        .map(|at| (checked_at - at).num_milliseconds() as f64 / 1000.0);
    report.ok = report.ledger.ok
        && report.groups.iter().all(|g| g.ok)
        && [
            &report.uncredited,
            &report.credited_twice,
            &report.credited_without_redemption,
            &report.mismatched,
            &report.reversal_unsettled,
        ]
        .iter()
        .all(|f| f.count == 0);
    Ok(report)
}

/// Every group's stats beside its funding account.
async fn group_checks(s: &AppState, rid: &str) -> ApiResult<Vec<GroupCheck>> {
    let mut groups = Vec::new();
    let mut cursor = None;
    loop {
        let req = ListGroupsRequest {
            limit: Limit::new(500),
            cursor,
        };
        let page = s.nats.request::<gc::GroupsList>(&req, Some(rid)).await?;
        groups.extend(page.items);
        cursor = page.next_cursor;
        if cursor.is_none() {
            break;
        }
    }
    futures::stream::iter(groups)
        .map(|g| async move {
            let f = s
                .nats
                .request::<wl::FundingGet>(&FundingRequest { group_id: g.id }, Some(rid))
                .await?;
            Ok::<_, crate::ApiError>(GroupCheck {
                group_id: g.id,
                redemptions: g.stats.redemptions,
                redeemed_amount: g.stats.redeemed_amount,
                credits: f.transfers,
                credited_amount: f.debited,
                ok: g.stats.redemptions == f.transfers && g.stats.redeemed_amount == f.debited,
            })
        })
        .buffered(16)
        .try_collect()
        .await
}

/// One side's list (endpoint `E`), fetched a page at a time as the merge
/// consumes it.
struct Pages<'a, E> {
    s: &'a AppState,
    rid: &'a str,
    buf: VecDeque<Item>,
    after: Option<String>,
    done: bool,
    _endpoint: std::marker::PhantomData<E>,
}

impl<'a, E: Endpoint<Request = PageRequest, Reply = ItemPage>> Pages<'a, E> {
    fn new(s: &'a AppState, rid: &'a str) -> Self {
        Self {
            s,
            rid,
            buf: VecDeque::new(),
            after: None,
            done: false,
            _endpoint: std::marker::PhantomData,
        }
    }

    async fn peek(&mut self) -> ApiResult<Option<&Item>> {
        if self.buf.is_empty() && !self.done {
            let req = PageRequest {
                after: self.after.take(),
                limit: None,
            };
            let page = self.s.nats.request::<E>(&req, Some(self.rid)).await?;
            self.buf.extend(page.items);
            self.done = page.next.is_none();
            self.after = page.next;
        }
        Ok(self.buf.front())
    }

    fn pop(&mut self) -> Option<Item> {
        self.buf.pop_front()
    }
}

/// Walks both lists in redemption-id order, like a merge join.
async fn merge(s: &AppState, rid: &str, r: &mut Reconciliation) -> ApiResult<()> {
    let mut redeemed = Pages::<gc::ReconciliationPage>::new(s, rid);
    let mut credited = Pages::<wl::ReconciliationPage>::new(s, rid);
    loop {
        let g = redeemed.peek().await?.cloned();
        let w = credited.peek().await?.map(|i| i.redemption_id);
        let id = match (&g, w) {
            (None, None) => return Ok(()),
            (Some(g), Some(w)) => g.redemption_id.min(w),
            (Some(g), None) => g.redemption_id,
            (None, Some(w)) => w,
        };
        let mut credits = Vec::new();
        while credited
            .peek()
            .await?
            .is_some_and(|i| i.redemption_id == id)
        {
            credits.extend(credited.pop());
        }
        r.credits += credits.len() as u64;
        match g.filter(|g| g.redemption_id == id) {
            Some(g) => {
                redeemed.pop();
                r.redemptions += 1;
                if credits.is_empty() {
                    r.uncredited.add_at(id, g.at);
                }
                if credits.len() > 1 {
                    r.credited_twice.add(id);
                }
                if credits
                    .iter()
                    .any(|c| c.amount != g.amount || c.group_id != g.group_id)
                {
                    r.mismatched.add(id);
                }
                // A credit and its reversal net to zero only when both sides
                // say so: one side alone is a reversal half done.
                if credits.iter().any(|c| c.reversed != g.reversed)
                    || (credits.is_empty() && g.reversed)
                {
                    r.reversal_unsettled.add(id);
                }
            }
            None => r.credited_without_redemption.add(id),
        }
    }
}
