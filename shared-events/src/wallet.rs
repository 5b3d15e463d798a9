//! Requests and replies of the `wallet` NATS service (DESIGN.md §5, §8), and the
//! credit notice that answers a redeem's reply inbox (§7 step 4).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::{
    Amount, Currency, FieldError, IdempotencyKey, Limit, Phone,
    ids::{GroupId, RedemptionId, TransactionId},
};

/// A user's wallet: `{phone, balance, currency, created_at, updated_at}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Wallet {
    pub phone: Phone,
    pub balance: i64,
    pub currency: Currency,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    GiftCodeRedemption,
    /// A redemption undone (DESIGN.md §12): the amount back to the group.
    GiftCodeReversal,
    AdminCredit,
    AdminDebit,
}

impl TransactionKind {
    pub const ALL: [Self; 4] = [
        Self::GiftCodeRedemption,
        Self::GiftCodeReversal,
        Self::AdminCredit,
        Self::AdminDebit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::GiftCodeRedemption => "gift_code_redemption",
            Self::GiftCodeReversal => "gift_code_reversal",
            Self::AdminCredit => "admin_credit",
            Self::AdminDebit => "admin_debit",
        }
    }

    /// The kind of a stored word; `None` for a word this build does not know.
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Credit,
    Debit,
}

/// One movement of a wallet, as its owner sees it: `amount` is positive and
/// `direction` says which way it went; `balance_after` is the wallet's balance
/// right after it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Transaction {
    pub id: TransactionId,
    pub phone: Phone,
    pub kind: TransactionKind,
    pub direction: Direction,
    pub amount: Amount,
    pub currency: Currency,
    pub balance_after: i64,
    /// What caused it: the redemption id, or the admin's idempotency key.
    pub reference: String,
    pub description: Option<String>,
    pub created_at: DateTime<Utc>,
}

/// `wallet.wallets.create`, `wallet.wallets.get`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PhoneRequest {
    pub phone: Phone,
}

/// `wallet.wallets.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListWalletsRequest {
    #[serde(default)]
    pub limit: Option<Limit>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `wallet.transactions.list`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTransactionsRequest {
    pub phone: Phone,
    #[serde(default)]
    pub limit: Option<Limit>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `wallet.credits.create` and `wallet.debits.create`. The same
/// `idempotency_key` with the same body returns the original transaction; with
/// another body it is `idempotency_conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub phone: Phone,
    pub amount: Amount,
    /// At most 500 characters.
    #[serde(default)]
    pub description: Option<String>,
    pub idempotency_key: IdempotencyKey,
}

impl MoveRequest {
    pub const MAX_DESCRIPTION: usize = 500;
}

/// A credit or debit, and whether it was this request that made it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MoveReply {
    pub transaction: Transaction,
    /// True when the idempotency key had been used with this body before.
    pub replayed: bool,
}

/// `wallet.funding.get`: what a gift-code group's funding account paid out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FundingRequest {
    pub group_id: GroupId,
}

/// `wallet.redemptions.get`: the credit of one gift-code redemption. Answers
/// a [`CreditNotice`] (with the balance right after that credit), or
/// `not_found` while the credit has not been made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedemptionCreditRequest {
    pub redemption_id: RedemptionId,
}

/// `wallet.redemptions.credited`: which of these redemptions the ledger has
/// credited ([`Credits`]; the others are left out). giftcode-svc asks it
/// for the redemptions it still calls pending, the gateway for the pending
/// items of a list: the ledger is the authority on a credit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreditsQuery {
    /// At most [`CreditsQuery::MAX`].
    pub redemption_ids: Vec<RedemptionId>,
}

impl CreditsQuery {
    pub const MAX: usize = 1_000;

    /// The query's size, checked.
    pub fn check(&self) -> Result<(), FieldError> {
        if self.redemption_ids.len() > Self::MAX {
            return Err(FieldError::new(
                "redemption_ids",
                format!("at most {} at a time", Self::MAX),
            ));
        }
        Ok(())
    }
}

/// The credits of a [`CreditsQuery`], in no particular order.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credits {
    pub credits: Vec<Credit>,
}

/// A redemption's credit: the transaction that made it, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credit {
    pub redemption_id: RedemptionId,
    pub transaction_id: TransactionId,
    pub credited_at: DateTime<Utc>,
}

/// `wallet.ledger.check` takes nothing.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LedgerCheckRequest {}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    pub group_id: GroupId,
    /// Total debited from the group's funding account.
    pub debited: i64,
    /// Number of redemptions credited from it.
    pub transfers: i64,
    pub currency: Currency,
}

/// `wallet.ledger.check`: the ledger's own invariants (DESIGN.md §5).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerCheck {
    pub accounts: i64,
    pub transfers: i64,
    /// Sum over all accounts of credits minus debits; always 0.
    pub sum_of_balances: i64,
    /// Accounts whose debits or credits differ from the sums of their
    /// transfers, and user accounts below zero. Always empty.
    pub inconsistent_accounts: Vec<String>,
    pub ok: bool,
}

/// Published to a reversal's reply inbox once wallet-svc has moved the money
/// back (`transaction_id`) or refused (`refused`: the wallet held `balance`,
/// less than the amount).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReversalNotice {
    pub redemption_id: RedemptionId,
    pub attempt_id: uuid::Uuid,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transaction_id: Option<TransactionId>,
    pub refused: bool,
    pub balance: i64,
    pub at: DateTime<Utc>,
}

/// Published to a redeem's reply inbox once its credit is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNotice {
    pub redemption_id: RedemptionId,
    pub transaction_id: TransactionId,
    pub credited_at: DateTime<Utc>,
    pub phone: Phone,
    pub balance: i64,
    pub currency: Currency,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_messages_round_trip() {
        let phone = Phone::from_e164("+14155552671").expect("phone");
        let usd: Currency = "USD".parse().expect("USD");
        let tx = Transaction {
            id: TransactionId::generate(),
            phone: phone.clone(),
            kind: TransactionKind::GiftCodeRedemption,
            direction: Direction::Credit,
            amount: Amount::new(500).expect("amount"),
            currency: usd.clone(),
            balance_after: 500,
            reference: RedemptionId::generate().to_string(),
            description: None,
            created_at: Utc::now(),
        };
        let json = serde_json::to_value(&tx).expect("ser");
        assert_eq!(json["kind"], "gift_code_redemption");
        assert_eq!(json["direction"], "credit");
        assert_eq!(
            serde_json::from_value::<Transaction>(json).expect("parse"),
            tx
        );
        for kind in TransactionKind::ALL {
            assert_eq!(TransactionKind::parse(kind.as_str()), Some(kind));
        }
        assert_eq!(TransactionKind::parse("gift_card"), None);
        let req: MoveRequest =
            serde_json::from_str(r#"{"phone":"+14155552671","amount":5,"idempotency_key":"k1"}"#)
                .expect("parse");
        assert_eq!(req.description, None);
        assert_eq!(req.idempotency_key.as_str(), "k1");
        for bad in [
            r#"{"phone":"+14155552671","amount":0,"idempotency_key":"k1"}"#,
            r#"{"phone":"4155552671","amount":5,"idempotency_key":"k1"}"#,
            r#"{"phone":"+14155552671","amount":5,"idempotency_key":" "}"#,
        ] {
            assert!(serde_json::from_str::<MoveRequest>(bad).is_err(), "{bad}");
        }
        let notice = CreditNotice {
            redemption_id: RedemptionId::generate(),
            transaction_id: TransactionId::generate(),
            credited_at: Utc::now(),
            phone,
            balance: 500,
            currency: usd,
        };
        let back: CreditNotice =
            serde_json::from_slice(&serde_json::to_vec(&notice).expect("ser")).expect("parse");
        assert_eq!(back, notice);
        let check = LedgerCheck {
            accounts: 3,
            transfers: 2,
            sum_of_balances: 0,
            inconsistent_accounts: vec![],
            ok: true,
        };
        let back: LedgerCheck =
            serde_json::from_value(serde_json::to_value(&check).expect("ser")).expect("parse");
        assert_eq!(back, check);
        let credits = Credits {
            credits: vec![Credit {
                redemption_id: RedemptionId::generate(),
                transaction_id: TransactionId::generate(),
                credited_at: Utc::now(),
            }],
        };
        let back: Credits =
            serde_json::from_value(serde_json::to_value(&credits).expect("ser")).expect("parse");
        assert_eq!(back, credits);
        let query = CreditsQuery {
            redemption_ids: vec![RedemptionId::generate(); CreditsQuery::MAX + 1],
        };
        assert!(query.check().is_err(), "a query has a bound");
        assert!(
            serde_json::from_str::<CreditsQuery>(r#"{"redemption_ids":["x"]}"#).is_err(),
            "ids are ids"
        );
    }
}
