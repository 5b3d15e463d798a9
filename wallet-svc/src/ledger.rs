//! The double-entry core (DESIGN.md §5): accounts and immutable transfers.
//!
//! An account holds the sums of its debits and credits; its balance is credits
//! minus debits. [`post`] moves money in the caller's transaction: it bumps the
//! two accounts with guarded updates (a user account cannot go below zero, no
//! sum can overflow) and records the transfer under its permanent idempotency
//! key. Accounts are updated in id order, so two transfers between the same
//! pair of accounts lock them in the same order and cannot deadlock.

use sqlx::{AnyConnection, Row, any::AnyRow};
use svc_kit::time::from_micros;
use uuid::Uuid;

use shared_events::wallet::{Direction, Transaction, TransactionKind};

macro_rules! transfer_select {
    () => {
        "SELECT id, debit_account, credit_account, amount, kind, reference, description, \
         request_fingerprint, debit_balance_after, credit_balance_after, created_at FROM transfers"
    };
}
pub(crate) use transfer_select;

pub const ADMIN_ADJUSTMENTS: &str = "admin_adjustments";
pub const SPEND: &str = "spend";

pub fn user_account(phone: &str) -> String {
    format!("user:{phone}")
}

pub fn funding_account(group_id: Uuid) -> String {
    format!("group:{group_id}")
}

pub struct Posting<'a> {
    pub debit: &'a str,
    pub credit: &'a str,
    pub amount: i64,
    pub kind: TransactionKind,
    pub reference: &'a str,
    pub description: Option<&'a str>,
    /// Permanent: a second posting with this key is refused as a duplicate.
    pub key: &'a str,
    /// The request as made; a replay of the key must match it.
    pub fingerprint: &'a str,
}

/// A stored transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub id: Uuid,
    pub debit_account: String,
    pub credit_account: String,
    pub amount: i64,
    pub kind: TransactionKind,
    pub reference: String,
    pub description: Option<String>,
    pub fingerprint: String,
    pub debit_balance_after: i64,
    pub credit_balance_after: i64,
    pub created_at: i64,
}

impl Transfer {
    /// The transfer as the owner of `account` sees it.
    pub fn for_wallet(&self, account: &str, phone: &str, currency: &str) -> Transaction {
        let (direction, balance_after) = if self.credit_account == account {
            (Direction::Credit, self.credit_balance_after)
        } else {
            (Direction::Debit, self.debit_balance_after)
        };
        Transaction {
            id: self.id,
            phone: phone.to_owned(),
            kind: self.kind,
            direction,
            amount: self.amount,
            currency: currency.to_owned(),
            balance_after,
            reference: self.reference.clone(),
            description: self.description.clone(),
            created_at: from_micros(self.created_at),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PostError {
    #[error("insufficient funds")]
    Insufficient,
    #[error("the amount would overflow an account")]
    Overflow,
    /// The key was used before: here is what it did.
    #[error("duplicate idempotency key")]
    Duplicate(Box<Transfer>),
    /// A concurrent posting with the same key won; roll back and read it.
    #[error("concurrent duplicate")]
    Race,
    #[error(transparent)]
    Db(#[from] sqlx::Error),
}

/// Creates the account if it does not exist; true if it was created.
pub async fn ensure_account(
    conn: &mut AnyConnection,
    id: &str,
    kind: &str,
    phone: Option<&str>,
    currency: &str,
    now: i64,
) -> Result<bool, sqlx::Error> {
    let created = sqlx::query(
        "INSERT INTO accounts (id, kind, phone, currency, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(id)
    .bind(kind)
    .bind(phone)
    .bind(currency)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(created == 1)
}

pub async fn find_by_key(
    conn: &mut AnyConnection,
    key: &str,
) -> Result<Option<Transfer>, sqlx::Error> {
    sqlx::query(concat!(transfer_select!(), " WHERE idempotency_key = $1"))
        .bind(key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(transfer_from_row)
        .transpose()
}

/// Posts a transfer in the caller's transaction. On any error the caller rolls
/// the transaction back: a half-moved amount is never committed.
pub async fn post(
    conn: &mut AnyConnection,
    p: &Posting<'_>,
    now: i64,
) -> Result<Transfer, PostError> {
    if let Some(existing) = find_by_key(conn, p.key).await? {
        return Err(PostError::Duplicate(Box::new(existing)));
    }
    let mut debit_after = 0;
    let mut credit_after = 0;
    let mut sides = [(p.debit, true), (p.credit, false)];
    sides.sort_by(|a, b| a.0.cmp(b.0));
    for (account, is_debit) in sides {
        let sql = if is_debit {
            "UPDATE accounts SET debits = debits + $1, updated_at = $2 \
             WHERE id = $3 AND debits <= 9223372036854775807 - $1 \
             AND (kind <> 'user' OR credits - debits >= $1) RETURNING credits - debits AS balance"
        } else {
            "UPDATE accounts SET credits = credits + $1, updated_at = $2 \
             WHERE id = $3 AND credits <= 9223372036854775807 - $1 \
             RETURNING credits - debits AS balance"
        };
        let row = sqlx::query(sql)
            .bind(p.amount)
            .bind(now)
            .bind(account)
            .fetch_optional(&mut *conn)
            .await?;
        let Some(row) = row else {
            let is_user = account.starts_with("user:");
            return Err(if is_debit && is_user {
                PostError::Insufficient
            } else {
                PostError::Overflow
            });
        };
        let balance: i64 = row.try_get("balance")?;
        if is_debit {
            debit_after = balance;
        } else {
            credit_after = balance;
        }
    }
    let transfer = Transfer {
        id: Uuid::now_v7(),
        debit_account: p.debit.to_owned(),
        credit_account: p.credit.to_owned(),
        amount: p.amount,
        kind: p.kind,
        reference: p.reference.to_owned(),
        description: p.description.map(str::to_owned),
        fingerprint: p.fingerprint.to_owned(),
        debit_balance_after: debit_after,
        credit_balance_after: credit_after,
        created_at: now,
    };
    let inserted = sqlx::query(
        "INSERT INTO transfers (id, debit_account, credit_account, amount, kind, reference, \
         description, idempotency_key, request_fingerprint, debit_balance_after, \
         credit_balance_after, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(transfer.id.to_string())
    .bind(p.debit)
    .bind(p.credit)
    .bind(p.amount)
    .bind(p.kind.as_str())
    .bind(p.reference)
    .bind(p.description)
    .bind(p.key)
    .bind(p.fingerprint)
    .bind(debit_after)
    .bind(credit_after)
    .bind(now)
    .execute(&mut *conn)
    .await;
    match inserted {
        Ok(_) => Ok(transfer),
        Err(e) if svc_kit::db::is_unique_violation(&e) => Err(PostError::Race),
        Err(e) => Err(e.into()),
    }
}

pub fn transfer_from_row(row: &AnyRow) -> Result<Transfer, sqlx::Error> {
    let id: String = row.try_get("id")?;
    let kind: String = row.try_get("kind")?;
    Ok(Transfer {
        id: Uuid::parse_str(&id).map_err(|e| sqlx::Error::Decode(Box::new(e)))?,
        debit_account: row.try_get("debit_account")?,
        credit_account: row.try_get("credit_account")?,
        amount: row.try_get("amount")?,
        kind: TransactionKind::parse(&kind)
            .ok_or_else(|| sqlx::Error::Decode(format!("unknown transfer kind {kind}").into()))?,
        reference: row.try_get("reference")?,
        description: row.try_get("description")?,
        fingerprint: row.try_get("request_fingerprint")?,
        debit_balance_after: row.try_get("debit_balance_after")?,
        credit_balance_after: row.try_get("credit_balance_after")?,
        created_at: row.try_get("created_at")?,
    })
}
