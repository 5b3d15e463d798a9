//! `giftcode.reconciliation.page`: every recorded redemption, in id order, a
//! page at a time, so the gateway can merge it with wallet-svc's credits
//! (DESIGN.md §7's invariant) without either side holding the whole list.

use shared_events::reconciliation::{Item, ItemPage, PageRequest};
use sqlx::Row;
use uuid::Uuid;

use crate::{
    App,
    error::{Error, Result},
};

impl App {
    pub async fn reconciliation_page(&self, req: PageRequest) -> Result<ItemPage> {
        let limit = req.limit().map_err(|e| Error::Validation(vec![e]))?;
        let after = match req.after {
            Some(a) => Uuid::parse_str(&a)
                .map_err(|_| Error::validation("after", "is not a page this service gave out"))?
                .to_string(),
            None => String::new(),
        };
        let rows = sqlx::query(
            "SELECT id, group_id, amount FROM redemptions WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(limit)
        .fetch_all(self.db().read())
        .await?;
        let items = rows
            .iter()
            .map(|r| -> Result<Item> {
                let id: String = r.try_get("id")?;
                let group: String = r.try_get("group_id")?;
                Ok(Item {
                    redemption_id: parse_id(&id)?,
                    group_id: parse_id(&group)?,
                    amount: r.try_get("amount")?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let next = (items.len() as i64 == limit)
            .then(|| items.last().map(|i| i.redemption_id.to_string()))
            .flatten();
        Ok(ItemPage { items, next })
    }
}

fn parse_id(s: &str) -> Result<Uuid> {
    Uuid::parse_str(s).map_err(|e| Error::Db(sqlx::Error::Decode(Box::new(e))))
}
