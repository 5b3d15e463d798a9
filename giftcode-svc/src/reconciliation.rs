//! `giftcode.reconciliation.page`: every recorded redemption, in id order, a
//! page at a time, so the gateway can merge it with wallet-svc's credits
//! (DESIGN.md §7's invariant) without either side holding the whole list.

use shared_events::{
    RedemptionId,
    reconciliation::{Item, ItemPage, PageRequest},
};
use svc_kit::{HasKit, db::query, time::from_micros};

use crate::{
    App,
    error::{Error, Result},
};

impl App {
    pub async fn reconciliation_page(&self, req: PageRequest) -> Result<ItemPage> {
        let limit = req.limit().map_err(|e| Error::Validation(vec![e]))?;
        let after = match req.after {
            Some(a) => a
                .parse::<RedemptionId>()
                .map_err(|_| Error::validation("after", "is not a page this service gave out"))?
                .to_string(),
            None => String::new(),
        };
        let rows = query(
            "SELECT id, group_id, amount, redeemed_at, status FROM redemptions WHERE id > $1 \
             ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.db())
        .await?;
        let items = rows
            .iter()
            .map(|r| -> Result<Item> {
                Ok(Item {
                    redemption_id: r.parsed("id")?,
                    group_id: r.parsed("group_id")?,
                    amount: r.amount("amount")?,
                    at: Some(from_micros(r.get("redeemed_at")?)),
                    reversed: r.get::<String>("status")? == "reversed",
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = (items.len() as i64 == limit)
            .then(|| items.last().map(|i| i.redemption_id.to_string()))
            .flatten();
        Ok(ItemPage { items, next })
    }
}
