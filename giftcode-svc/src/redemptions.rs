//! Redemptions read back (DESIGN.md §8): one by id, a group's newest first,
//! and a phone's redemption of a code (what a replay answers with).

use shared_events::{
    CodeId, Limit, Page, Phone, RedemptionId,
    giftcode::{ListRedemptionsRequest, Redemption, RedemptionStatus, Reversal, ReversalStatus},
};
use svc_kit::{
    HasKit,
    db::{Row, query},
    time::from_micros,
};

use crate::{
    App,
    error::{Error, Result},
    groups::parse_cursor,
};

/// The columns [`from_row`] reads, joined with the group's name.
macro_rules! redemption_select {
    () => {
        "SELECT r.id, r.group_id, g.name AS group_name, r.code_id, r.code_hint, r.phone, \
         r.amount, r.currency, r.status, r.redeemed_at, r.credited_at, r.transaction_id, \
         r.reversal_status, r.reversal_reason, r.reversal_release, r.reversal_requested_at, \
         r.reversal_completed_at, r.reversal_transaction_id \
         FROM redemptions r JOIN groups g ON g.id = r.group_id"
    };
}

impl App {
    pub async fn get_redemption(&self, id: RedemptionId) -> Result<Redemption> {
        query(concat!(redemption_select!(), " WHERE r.id = $1"))
            .bind(id.to_string())
            .fetch_optional(self.db())
            .await?
            .as_ref()
            .map(from_row)
            .transpose()?
            .ok_or(Error::RedemptionNotFound)
    }

    /// What `phone` holds of code `code_id` (a redemption not released by
    /// a reversal), if anything.
    pub(crate) async fn find_redemption(
        &self,
        code_id: CodeId,
        phone: &Phone,
    ) -> Result<Option<Redemption>> {
        query(concat!(
            redemption_select!(),
            " WHERE r.code_id = $1 AND r.phone = $2 AND r.released_at IS NULL"
        ))
        .bind(code_id.to_string())
        .bind(phone.as_str())
        .fetch_optional(self.db())
        .await?
        .as_ref()
        .map(from_row)
        .transpose()
    }

    /// A group's redemptions, newest first.
    pub async fn list_redemptions(&self, req: ListRedemptionsRequest) -> Result<Page<Redemption>> {
        let limit = Limit::or_default(req.limit);
        let cursor = parse_cursor(req.cursor.as_deref())?;
        self.get_group(req.group_id).await?;
        let group_id = req.group_id.to_string();
        let rows = match cursor {
            Some(c) => {
                query(concat!(
                    redemption_select!(),
                    " WHERE r.group_id = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3"
                ))
                .bind(group_id)
                .bind(c)
                .bind(limit + 1)
                .fetch_all(self.db())
                .await?
            }
            None => {
                query(concat!(
                    redemption_select!(),
                    " WHERE r.group_id = $1 ORDER BY r.id DESC LIMIT $2"
                ))
                .bind(group_id)
                .bind(limit + 1)
                .fetch_all(self.db())
                .await?
            }
        };
        let items = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |r| r.id.to_string()))
    }
}

/// A row with the columns of `redemption_select!` (the redeem path's combined
/// query selects the same names).
pub(crate) fn from_row(row: &Row) -> Result<Redemption> {
    Ok(Redemption {
        id: row.parsed("id")?,
        group_id: row.parsed("group_id")?,
        group_name: row.get("group_name")?,
        code_id: row.parsed("code_id")?,
        code_hint: row.get("code_hint")?,
        phone: row.parsed("phone")?,
        amount: row.amount("amount")?,
        currency: row.parsed("currency")?,
        status: row.word("status", RedemptionStatus::parse)?,
        redeemed_at: from_micros(row.get("redeemed_at")?),
        credited_at: row.get::<Option<i64>>("credited_at")?.map(from_micros),
        transaction_id: row.parsed_opt("transaction_id")?,
        reversal: reversal_from_row(row)?,
    })
}

/// The reversal columns (`reversal_*`), if a reversal was asked for.
pub(crate) fn reversal_from_row(row: &Row) -> Result<Option<Reversal>> {
    let Some(status) = row.get::<Option<String>>("reversal_status")? else {
        return Ok(None);
    };
    Ok(Some(Reversal {
        status: ReversalStatus::parse(&status)
            .ok_or_else(|| Error::Internal(format!("reversal status {status}")))?,
        reason: row
            .get::<Option<String>>("reversal_reason")?
            .unwrap_or_default(),
        release_code: row.get::<Option<i64>>("reversal_release")?.unwrap_or(0) != 0,
        requested_at: from_micros(
            row.get::<Option<i64>>("reversal_requested_at")?
                .unwrap_or(0),
        ),
        completed_at: row
            .get::<Option<i64>>("reversal_completed_at")?
            .map(from_micros),
        transaction_id: row.parsed_opt("reversal_transaction_id")?,
    }))
}
