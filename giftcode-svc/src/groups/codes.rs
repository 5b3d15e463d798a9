//! A group's codes as admins see them (DESIGN.md §8): listed by status, or
//! one looked up by the full code. Never the code itself: its hint and id.

use shared_events::{
    CodeId, Limit, Page,
    giftcode::{
        CodeDetails, CodeStatus, CodeSummary, Group, GroupKind, ListCodesRequest, UpdateCodeRequest,
    },
};
use svc_kit::{
    HasKit,
    db::{Row, query},
    time::from_micros,
};

use super::parse_cursor;
use crate::{
    App, codes,
    error::{Error, Result},
};

impl App {
    pub async fn list_codes(&self, req: ListCodesRequest) -> Result<Page<CodeSummary>> {
        let limit = Limit::or_default(req.limit);
        let cursor = parse_cursor(req.cursor.as_deref())?.unwrap_or_default();
        let group = self.get_group(req.group_id).await?;
        let cap = cap_of(&group);
        let base = query(match req.status {
            None => {
                "SELECT id, hint, redemption_count, redeemed_by, redeemed_at, active FROM codes \
                 WHERE group_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            }
            Some(CodeStatus::Unredeemed) => {
                "SELECT id, hint, redemption_count, redeemed_by, redeemed_at, active FROM codes \
                 WHERE group_id = $1 AND id > $2 AND redemption_count < $4 ORDER BY id LIMIT $3"
            }
            Some(CodeStatus::Redeemed) => {
                "SELECT id, hint, redemption_count, redeemed_by, redeemed_at, active FROM codes \
                 WHERE group_id = $1 AND id > $2 AND redemption_count >= $4 ORDER BY id LIMIT $3"
            }
        })
        .bind(req.group_id.to_string())
        .bind(cursor)
        .bind(limit + 1);
        let q = match req.status {
            None => base,
            Some(_) => base.bind(cap),
        };
        let rows = q.fetch_all(self.db()).await?;
        let items = rows
            .iter()
            .map(|r| code_from_row(r, cap))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |c| c.id.to_string()))
    }

    /// One code's details, found by the full code as typed.
    pub async fn lookup_code(&self, code: &str) -> Result<CodeDetails> {
        let canonical = codes::canonicalize(code).ok_or(Error::InvalidCode)?;
        let digest = self.key().digest(&canonical);
        let row = query(
            "SELECT group_id, id, hint, redemption_count, redeemed_by, redeemed_at, active FROM codes \
             WHERE digest = $1",
        )
        .bind(digest.to_vec())
        .fetch_optional(self.db())
        .await?
        .ok_or(Error::CodeNotFound)?;
        let group = self.get_group(row.parsed("group_id")?).await?;
        let code = code_from_row(&row, cap_of(&group))?;
        Ok(CodeDetails { code, group })
    }
}

impl App {
    /// Disables or re-enables one code of a group: redeeming a disabled code
    /// is `code_inactive` (410), whatever its group says.
    pub async fn update_code(&self, req: UpdateCodeRequest) -> Result<CodeSummary> {
        let group = self.get_group(req.group_id).await?;
        let cap = cap_of(&group);
        self.db()
            .write(move |tx| {
                Box::pin(async move {
                    let changed =
                        query("UPDATE codes SET active = $1 WHERE group_id = $2 AND id = $3")
                            .bind(req.active)
                            .bind(req.group_id.to_string())
                            .bind(req.code_id.to_string())
                            .execute(&mut *tx)
                            .await?;
                    if changed == 0 {
                        return Err(Error::CodeNotFound);
                    }
                    let row = query(
                        "SELECT id, hint, redemption_count, redeemed_by, redeemed_at, active \
                         FROM codes WHERE group_id = $1 AND id = $2",
                    )
                    .bind(req.group_id.to_string())
                    .bind(req.code_id.to_string())
                    .fetch_optional(tx)
                    .await?
                    .ok_or(Error::CodeNotFound)?;
                    code_from_row(&row, cap)
                })
            })
            .await
    }
}

/// How many redemptions a code of this group allows.
fn cap_of(group: &Group) -> i64 {
    match group.kind {
        GroupKind::Unique => 1,
        GroupKind::Shared => group.max_redemptions.unwrap_or(0),
    }
}

fn code_from_row(row: &Row, cap: i64) -> Result<CodeSummary> {
    let count: i64 = row.get("redemption_count")?;
    Ok(CodeSummary {
        id: row.parsed::<CodeId>("id")?,
        hint: row.get("hint")?,
        status: if count >= cap {
            CodeStatus::Redeemed
        } else {
            CodeStatus::Unredeemed
        },
        redeemed_by: row.parsed_opt("redeemed_by")?,
        redeemed_at: row.get::<Option<i64>>("redeemed_at")?.map(from_micros),
        redemptions: count,
        active: row.get::<i64>("active")? != 0,
    })
}
