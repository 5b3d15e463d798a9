//! Gift-code groups (DESIGN.md §4): reading them with their stats,
//! activating and deactivating them, and the one rule that says whether a
//! group's codes may be redeemed now ([`Window`]). Creation is in [`create`],
//! its checks in [`spec`], drawing codes in [`draw`], listing them in
//! [`codes`], their redemptions per minute in [`timeline`].

pub mod codes;
pub mod create;
pub mod draw;
pub mod spec;
pub mod timeline;

use shared_events::{
    Envelope, GroupId, Limit, Page,
    events::GroupUpdated,
    giftcode::{Group, GroupKind, GroupStats, GroupStatus, ListGroupsRequest, UpdateGroupRequest},
};
use svc_kit::{
    HasKit,
    db::{On, Row, query},
    outbox,
    time::{from_micros, now_micros},
};
use uuid::Uuid;

pub use create::frames;
pub use draw::draw_codes;

use crate::{
    App,
    error::{Error, Result},
};

macro_rules! group_select {
    () => {
        "SELECT g.id, g.name, g.kind, g.amount, g.currency, g.total_codes, g.max_redemptions, \
         g.per_phone_limit, g.prefix, g.starts_at, g.expires_at, g.active, g.created_at, \
         g.updated_at, g.reversed, g.released, \
         (SELECT COUNT(*) FROM redemptions r WHERE r.group_id = g.id) AS redemptions \
         FROM groups g"
    };
}

/// When a group's codes may be redeemed. The one rule behind a group's
/// `status` and behind a redeem's refusals.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Window {
    pub active: bool,
    pub starts_at: Option<i64>,
    pub expires_at: Option<i64>,
}

impl Window {
    /// Why nothing may be redeemed at `now`, as the group's status; `None`
    /// while the group is open.
    pub fn closed(&self, now: i64) -> Option<GroupStatus> {
        if !self.active {
            Some(GroupStatus::Inactive)
        } else if self.starts_at.is_some_and(|s| now < s) {
            Some(GroupStatus::Scheduled)
        } else if self.expires_at.is_some_and(|e| now >= e) {
            Some(GroupStatus::Expired)
        } else {
            None
        }
    }

    /// The refusal a redeem gets at `now`, if any.
    pub fn refusal(&self, now: i64) -> Option<Error> {
        self.closed(now).map(|status| match status {
            GroupStatus::Scheduled => Error::CodeNotYetActive,
            GroupStatus::Expired => Error::CodeExpired,
            _ => Error::CodeInactive,
        })
    }
}

impl App {
    pub async fn list_groups(&self, req: ListGroupsRequest) -> Result<Page<Group>> {
        let limit = Limit::or_default(req.limit);
        let cursor = parse_cursor(req.cursor.as_deref())?;
        let rows = match cursor {
            Some(c) => {
                query(concat!(
                    group_select!(),
                    " WHERE g.id < $1 ORDER BY g.id DESC LIMIT $2"
                ))
                .bind(c)
                .bind(limit + 1)
                .fetch_all(self.db())
                .await?
            }
            None => {
                query(concat!(group_select!(), " ORDER BY g.id DESC LIMIT $1"))
                    .bind(limit + 1)
                    .fetch_all(self.db())
                    .await?
            }
        };
        let items = rows
            .iter()
            .map(group_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |g| g.id.to_string()))
    }

    pub async fn get_group(&self, id: GroupId) -> Result<Group> {
        fetch_group(self.db(), id)
            .await?
            .ok_or(Error::GroupNotFound)
    }

    /// Activates or deactivates a group; a change emits `group.updated`.
    pub async fn update_group(
        &self,
        req: UpdateGroupRequest,
        correlation_id: Option<String>,
    ) -> Result<Group> {
        self.db()
            .write(move |tx| {
                Box::pin(async move {
                    let current = fetch_group(&mut *tx, req.id)
                        .await?
                        .ok_or(Error::GroupNotFound)?;
                    if current.active == req.active {
                        return Ok(current);
                    }
                    let now = now_micros();
                    query("UPDATE groups SET active = $1, updated_at = $2 WHERE id = $3")
                        .bind(req.active)
                        .bind(now)
                        .bind(req.id.to_string())
                        .execute(tx)
                        .await?;
                    let event = Envelope::new(
                        crate::SOURCE,
                        correlation_id,
                        GroupUpdated {
                            group_id: req.id,
                            active: req.active,
                            updated_at: from_micros(now),
                        },
                    );
                    outbox::enqueue(tx, &event).await?;
                    fetch_group(&mut *tx, req.id)
                        .await?
                        .ok_or(Error::GroupNotFound)
                })
            })
            .await
    }
}

/// A group with its stats, read on `on` (a reader, or a write's
/// transaction).
pub(crate) async fn fetch_group<'a>(on: impl Into<On<'a>>, id: GroupId) -> Result<Option<Group>> {
    query(concat!(group_select!(), " WHERE g.id = $1"))
        .bind(id.to_string())
        .fetch_optional(on)
        .await?
        .as_ref()
        .map(group_from_row)
        .transpose()
}

fn group_from_row(row: &Row) -> Result<Group> {
    let kind = row.word("kind", GroupKind::parse)?;
    let amount = row.amount("amount")?;
    let total_codes: i64 = row.get("total_codes")?;
    let max_redemptions: Option<i64> = row.get("max_redemptions")?;
    // Every redemption ever recorded; reversed ones are counted out of the
    // stats, and those that released their code out of what is used.
    let recorded: i64 = row.get("redemptions")?;
    let reversed: i64 = row.get("reversed")?;
    let released: i64 = row.get("released")?;
    let redemptions = recorded - reversed;
    let used = recorded - released;
    let window = Window {
        active: row.get::<i64>("active")? != 0,
        starts_at: row.get("starts_at")?,
        expires_at: row.get("expires_at")?,
    };
    let capacity = match kind {
        GroupKind::Unique => total_codes,
        GroupKind::Shared => max_redemptions
            .ok_or_else(|| Error::Internal("a shared group without max_redemptions".into()))?,
    };
    let remaining = (capacity - used).max(0);
    let redeemed_codes = match kind {
        GroupKind::Unique => used,
        GroupKind::Shared => i64::from(remaining == 0),
    };
    let status = window.closed(now_micros()).unwrap_or(if remaining == 0 {
        GroupStatus::Exhausted
    } else {
        GroupStatus::Active
    });
    // amount <= 10^12 and capacity <= 10^8 were checked at creation; saturate
    // rather than panic should a stored row ever say otherwise.
    let stats = GroupStats {
        total_codes,
        redeemed_codes,
        unredeemed_codes: total_codes - redeemed_codes,
        redemptions,
        redeemed_amount: amount.get().saturating_mul(redemptions),
        remaining_amount: amount.get().saturating_mul(remaining),
        reversed,
        status,
    };
    Ok(Group {
        id: row.parsed("id")?,
        name: row.get("name")?,
        kind,
        amount,
        currency: row.parsed("currency")?,
        starts_at: window.starts_at.map(from_micros),
        expires_at: window.expires_at.map(from_micros),
        active: window.active,
        created_at: from_micros(row.get("created_at")?),
        updated_at: from_micros(row.get("updated_at")?),
        per_phone_limit: row.get("per_phone_limit")?,
        max_redemptions,
        prefix: row.get("prefix")?,
        stats,
    })
}

/// Cursors are the id of the last item of the previous page.
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(c) => Uuid::parse_str(c)
            .map(|u| Some(u.to_string()))
            .map_err(|_| Error::validation("cursor", "is not a cursor this service gave out")),
    }
}
