//! `wallet.reconciliation.page`: every credit a redemption caused, in
//! redemption-id order, a page at a time, for the gateway to merge with
//! giftcode-svc's redemptions (DESIGN.md §7's invariant). The walk is over the
//! transfers themselves, not the unique idempotency keys, so a redemption
//! credited twice (by any path) shows up twice.

use shared_events::{
    reconciliation::{Item, ItemPage, PageRequest},
    wallet::TransactionKind,
};
use sqlx::Row;
use uuid::Uuid;

use crate::{
    App,
    error::{Error, Result},
};

impl App {
    pub async fn reconciliation_page(&self, req: PageRequest) -> Result<ItemPage> {
        let limit = req.limit().map_err(|e| Error::Validation(vec![e]))?;
        let (reference, id) = match req.after.as_deref() {
            None => (String::new(), String::new()),
            Some(a) => a
                .split_once('/')
                .filter(|(r, i)| Uuid::parse_str(r).is_ok() && Uuid::parse_str(i).is_ok())
                .map(|(r, i)| (r.to_owned(), i.to_owned()))
                .ok_or_else(|| Error::validation("after", "is not a page this service gave out"))?,
        };
        let rows = sqlx::query(
            "SELECT id, reference, debit_account, amount FROM transfers \
             WHERE kind = $1 AND (reference, id) > ($2, $3) ORDER BY reference, id LIMIT $4",
        )
        .bind(TransactionKind::GiftCodeRedemption.as_str())
        .bind(reference)
        .bind(id)
        .bind(limit)
        .fetch_all(self.db().read())
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in &rows {
            let id: String = r.try_get("id")?;
            let reference: String = r.try_get("reference")?;
            let debit: String = r.try_get("debit_account")?;
            let group = debit
                .strip_prefix("group:")
                .and_then(|g| Uuid::parse_str(g).ok())
                .ok_or_else(|| Error::Ledger(format!("transfer {id} not from a group")))?;
            let redemption = Uuid::parse_str(&reference)
                .map_err(|_| Error::Ledger(format!("transfer {id} has no redemption")))?;
            items.push(Item {
                redemption_id: redemption,
                group_id: group,
                amount: r.try_get("amount")?,
            });
            last = Some(format!("{reference}/{id}"));
        }
        let next = (rows.len() as i64 == limit).then_some(last).flatten();
        Ok(ItemPage { items, next })
    }
}
