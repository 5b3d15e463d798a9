//! The reconciliation pages (DESIGN.md §7's invariant, issue 5): each side
//! lists what it holds for gift-code redemptions, ordered by redemption id, so
//! that the gateway can merge the two lists in one pass without holding either.
//!
//! - `giftcode.reconciliation.page`: one item per recorded redemption.
//! - `wallet.reconciliation.page`: one item per credit transfer caused by a
//!   redemption. A redemption credited twice appears twice, adjacent.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{Amount, FieldError, GroupId, RedemptionId};

/// Largest page either side answers: ~100 bytes an item, well under NATS'
/// 1 MB message limit.
pub const MAX_PAGE: u32 = 5_000;

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PageRequest {
    /// The `next` of the previous page.
    #[serde(default)]
    pub after: Option<String>,
    /// 1..=[`MAX_PAGE`], default [`MAX_PAGE`].
    #[serde(default)]
    pub limit: Option<u32>,
}

impl PageRequest {
    /// The page size asked for, or the largest.
    pub fn limit(&self) -> Result<i64, FieldError> {
        match self.limit.unwrap_or(MAX_PAGE) {
            n @ 1..=MAX_PAGE => Ok(i64::from(n)),
            _ => Err(FieldError::new(
                "limit",
                format!("must be between 1 and {MAX_PAGE}"),
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Item {
    pub redemption_id: RedemptionId,
    pub group_id: GroupId,
    pub amount: Amount,
    /// When it happened (giftcode-svc: the redemption), if the side says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// giftcode-svc: the redemption is reversed. wallet-svc: its credit has a
    /// reversal transfer. A credit and its reversal net to zero.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub reversed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ItemPage {
    pub items: Vec<Item>,
    /// Absent on the last page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_round_trip() {
        let page = ItemPage {
            items: vec![Item {
                redemption_id: RedemptionId::generate(),
                group_id: GroupId::generate(),
                amount: Amount::new(500).expect("amount"),
                at: Some(Utc::now()),
                reversed: false,
            }],
            next: Some("k".into()),
        };
        let back: ItemPage =
            serde_json::from_slice(&serde_json::to_vec(&page).expect("ser")).expect("parse");
        assert_eq!(back, page);
        let req: PageRequest = serde_json::from_str("{}").expect("empty request");
        assert_eq!(req, PageRequest::default());
        assert!(serde_json::from_str::<PageRequest>(r#"{"limt": 3}"#).is_err());
        assert_eq!(req.limit(), Ok(i64::from(MAX_PAGE)));
        let zero = PageRequest {
            limit: Some(0),
            ..PageRequest::default()
        };
        assert_eq!(zero.limit().map_err(|e| e.field), Err("limit".to_owned()));
    }
}
