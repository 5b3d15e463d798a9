//! Requests and replies of the `wallet` NATS service (DESIGN.md §5, §8), and the
//! credit notice that answers a redeem's reply inbox (§7 step 4).

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// A user's wallet: `{phone, balance, currency, created_at, updated_at}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Wallet {
    pub phone: String,
    pub balance: i64,
    pub currency: String,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TransactionKind {
    GiftCodeRedemption,
    AdminCredit,
    AdminDebit,
}

impl TransactionKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::GiftCodeRedemption => "gift_code_redemption",
            Self::AdminCredit => "admin_credit",
            Self::AdminDebit => "admin_debit",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "gift_code_redemption" => Some(Self::GiftCodeRedemption),
            "admin_credit" => Some(Self::AdminCredit),
            "admin_debit" => Some(Self::AdminDebit),
            _ => None,
        }
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
    pub id: Uuid,
    pub phone: String,
    pub kind: TransactionKind,
    pub direction: Direction,
    pub amount: i64,
    pub currency: String,
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
    pub phone: String,
}

/// `wallet.wallets.list`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListWalletsRequest {
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `wallet.transactions.list`: newest first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListTransactionsRequest {
    pub phone: String,
    #[serde(default)]
    pub limit: Option<u32>,
    #[serde(default)]
    pub cursor: Option<String>,
}

/// `wallet.credits.create` and `wallet.debits.create`. The same
/// `idempotency_key` with the same body returns the original transaction; with
/// another body it is `idempotency_conflict`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MoveRequest {
    pub phone: String,
    pub amount: i64,
    #[serde(default)]
    pub description: Option<String>,
    pub idempotency_key: String,
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
    pub group_id: Uuid,
}

/// `wallet.redemptions.get`: the credit of one gift-code redemption. Answers
/// a [`CreditNotice`] (with the balance right after that credit), or
/// `not_found` while the credit has not been made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedemptionCreditRequest {
    pub redemption_id: Uuid,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Funding {
    pub group_id: Uuid,
    /// Total debited from the group's funding account.
    pub debited: i64,
    /// Number of redemptions credited from it.
    pub transfers: i64,
    pub currency: String,
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

/// Published to a redeem's reply inbox once its credit is committed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CreditNotice {
    pub redemption_id: Uuid,
    pub transaction_id: Uuid,
    pub credited_at: DateTime<Utc>,
    pub phone: String,
    pub balance: i64,
    pub currency: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wallet_messages_round_trip() {
        let tx = Transaction {
            id: Uuid::now_v7(),
            phone: "+14155552671".into(),
            kind: TransactionKind::GiftCodeRedemption,
            direction: Direction::Credit,
            amount: 500,
            currency: "USD".into(),
            balance_after: 500,
            reference: Uuid::now_v7().to_string(),
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
        for kind in [
            TransactionKind::GiftCodeRedemption,
            TransactionKind::AdminCredit,
            TransactionKind::AdminDebit,
        ] {
            assert_eq!(TransactionKind::parse(kind.as_str()), Some(kind));
        }
        let req: MoveRequest =
            serde_json::from_str(r#"{"phone":"+14155552671","amount":5,"idempotency_key":"k1"}"#)
                .expect("parse");
        assert_eq!(req.description, None);
        let notice = CreditNotice {
            redemption_id: Uuid::now_v7(),
            transaction_id: Uuid::now_v7(),
            credited_at: Utc::now(),
            phone: "+14155552671".into(),
            balance: 500,
            currency: "USD".into(),
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
    }
}
