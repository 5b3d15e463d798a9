//! `wallet.reconciliation.page`: every credit a redemption caused, in
//! redemption-id order, a page at a time, for the gateway to merge with
//! giftcode-svc's redemptions (DESIGN.md §7's invariant). The walk is over the
//! transfers themselves, not the unique idempotency keys, so a redemption
//! credited twice (by any path) shows up twice.

use shared_events::{
    RedemptionId, TransactionId,
    reconciliation::{Item, ItemPage, PageRequest},
    wallet::TransactionKind,
};
use svc_kit::{HasKit, db::query};

use crate::{
    App,
    error::{Error, Result},
    ledger::Account,
};

impl App {
    pub async fn reconciliation_page(&self, req: PageRequest) -> Result<ItemPage> {
        let limit = req.limit().map_err(|e| Error::Validation(vec![e]))?;
        let (reference, id) = match req.after.as_deref() {
            None => (String::new(), String::new()),
            Some(a) => a
                .split_once('/')
                .filter(|(r, i)| {
                    r.parse::<RedemptionId>().is_ok() && i.parse::<TransactionId>().is_ok()
                })
                .map(|(r, i)| (r.to_owned(), i.to_owned()))
                .ok_or_else(|| Error::field("after", "is not a page this service gave out"))?,
        };
        let rows = query(
            "SELECT t.id, t.reference, t.debit_account, t.amount, \
             CASE WHEN EXISTS (SELECT 1 FROM transfers r WHERE r.kind = $5 \
             AND r.reference = t.reference) THEN 1 ELSE 0 END AS reversed FROM transfers t \
             WHERE t.kind = $1 AND (t.reference, t.id) > ($2, $3) ORDER BY t.reference, t.id LIMIT $4",
        )
        .bind(TransactionKind::GiftCodeRedemption.as_str())
        .bind(reference)
        .bind(id)
        .bind(limit)
        .bind(TransactionKind::GiftCodeReversal.as_str())
        .fetch_all(self.db())
        .await?;
        let mut items = Vec::with_capacity(rows.len());
        let mut last = None;
        for r in &rows {
            let id: String = r.get("id")?;
            let Account::GroupFunding(group_id) = r.parsed("debit_account")? else {
                return Err(Error::Ledger(format!(
                    "redemption credit {id} not from a group"
                )));
            };
            let redemption_id: RedemptionId = r.parsed("reference")?;
            items.push(Item {
                redemption_id,
                group_id,
                amount: r.amount("amount")?,
                at: None,
                reversed: r.get::<i64>("reversed")? != 0,
            });
            last = Some(format!("{redemption_id}/{id}"));
        }
        let next = (rows.len() as i64 == limit).then_some(last).flatten();
        Ok(ItemPage { items, next })
    }
}
