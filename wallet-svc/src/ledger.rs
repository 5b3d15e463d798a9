//! The double-entry core (DESIGN.md §5): accounts, immutable transfers, and the
//! ledger's own checks.
//!
//! An account holds the sums of its debits and credits; its balance is credits
//! minus debits. [`post`] moves money in the caller's transaction: it bumps the
//! two accounts with guarded updates (a user account cannot go below zero, no
//! sum can overflow) and records the transfer under its permanent idempotency
//! key. Accounts are updated in id order, so two transfers between the same
//! pair of accounts lock them in the same order and cannot deadlock.

use shared_events::{
    Amount, Currency, GroupId, Phone, TransactionId,
    wallet::{Direction, Funding, LedgerCheck, Transaction, TransactionKind},
};
use svc_kit::{
    HasKit,
    db::{Conn, Row, SqlError, query},
    time::from_micros,
};
use uuid::Uuid;

use crate::{App, error::Result};

macro_rules! transfer_select {
    () => {
        "SELECT id, debit_account, credit_account, amount, kind, reference, description, \
         request_fingerprint, debit_balance_after, credit_balance_after, created_at, event_id \
         FROM transfers"
    };
}
pub(crate) use transfer_select;

/// An account of the ledger. Stored as its id: `user:+14155552671`,
/// `group:<uuid>`, `admin_adjustments`, `spend`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Account {
    /// A user's wallet: never below zero.
    User(Phone),
    /// What a gift-code group pays its redemptions from.
    GroupFunding(GroupId),
    /// Where admin credits come from.
    AdminAdjustments,
    /// Where admin debits go.
    Spend,
}

impl Account {
    /// The `kind` column.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::User(_) => "user",
            Self::GroupFunding(_) => "group_funding",
            Self::AdminAdjustments => "admin_adjustments",
            Self::Spend => "spend",
        }
    }
}

impl std::fmt::Display for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::User(phone) => write!(f, "user:{phone}"),
            Self::GroupFunding(group) => write!(f, "group:{group}"),
            Self::AdminAdjustments => f.write_str("admin_adjustments"),
            Self::Spend => f.write_str("spend"),
        }
    }
}

impl std::str::FromStr for Account {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.split_once(':') {
            Some(("user", phone)) => phone.parse().map(Self::User).map_err(|e| e.to_string()),
            Some(("group", id)) => id
                .parse()
                .map(Self::GroupFunding)
                .map_err(|e| e.to_string()),
            None if s == "admin_adjustments" => Ok(Self::AdminAdjustments),
            None if s == "spend" => Ok(Self::Spend),
            _ => Err("not an account this build knows".into()),
        }
    }
}

pub struct Posting<'a> {
    pub debit: &'a Account,
    pub credit: &'a Account,
    pub amount: Amount,
    pub kind: TransactionKind,
    pub reference: &'a str,
    pub description: Option<&'a str>,
    /// Permanent: a second posting with this key is refused as a duplicate.
    pub key: &'a str,
    /// The request as made; a replay of the key must match it.
    pub fingerprint: &'a str,
    /// The id of the event that announces the transfer.
    pub event_id: Uuid,
}

/// A stored transfer.
#[derive(Debug, Clone)]
pub struct Transfer {
    pub id: TransactionId,
    pub debit: Account,
    pub credit: Account,
    pub amount: Amount,
    pub kind: TransactionKind,
    pub reference: String,
    pub description: Option<String>,
    pub fingerprint: String,
    pub debit_balance_after: i64,
    pub credit_balance_after: i64,
    pub created_at: i64,
    /// The event that announced it (none for transfers made before this was
    /// kept).
    pub event_id: Option<Uuid>,
}

impl Transfer {
    /// The transfer as the owner of `phone`'s wallet sees it.
    pub fn for_wallet(&self, phone: &Phone, currency: &Currency) -> Transaction {
        let (direction, balance_after) = match &self.credit {
            Account::User(p) if p == phone => (Direction::Credit, self.credit_balance_after),
            _ => (Direction::Debit, self.debit_balance_after),
        };
        Transaction {
            id: self.id,
            phone: phone.clone(),
            kind: self.kind,
            direction,
            amount: self.amount,
            currency: currency.clone(),
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
    Db(#[from] SqlError),
    #[error(transparent)]
    Kit(#[from] svc_kit::Error),
}

/// Creates the account if it does not exist; true if it was created.
pub async fn ensure_account(
    conn: &mut Conn,
    account: &Account,
    currency: &Currency,
    now: i64,
) -> Result<bool, SqlError> {
    let phone = match account {
        Account::User(p) => Some(p.as_str()),
        _ => None,
    };
    let created = query(
        "INSERT INTO accounts (id, kind, phone, currency, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $5) ON CONFLICT (id) DO NOTHING",
    )
    .bind(account.to_string())
    .bind(account.kind())
    .bind(phone)
    .bind(currency.as_str())
    .bind(now)
    .execute(conn)
    .await?;
    Ok(created == 1)
}

pub async fn find_by_key(conn: &mut Conn, key: &str) -> Result<Option<Transfer>, svc_kit::Error> {
    query(concat!(transfer_select!(), " WHERE idempotency_key = $1"))
        .bind(key)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(transfer_from_row)
        .transpose()
}

/// A posting made: the transfer, and whether it opened the credited account
/// (a wallet's first credit opens it).
pub struct Posted {
    pub transfer: Transfer,
    pub opened: bool,
}

/// Guarded moves of one account, in the dialect both engines share. A debit
/// never takes a user account below zero; no sum overflows.
const DEBIT: &str = "UPDATE accounts SET debits = debits + $1, updated_at = $2 \
     WHERE id = $3 AND debits <= 9223372036854775807 - $1 \
     AND (kind <> 'user' OR credits - debits >= $1) RETURNING credits - debits AS balance";
const CREDIT: &str = "UPDATE accounts SET credits = credits + $1, updated_at = $2 \
     WHERE id = $3 AND credits <= 9223372036854775807 - $1 RETURNING credits - debits AS balance";
/// An account opened by its first move: a row only if it was new.
const OPEN_DEBITED: &str = "INSERT INTO accounts (id, kind, phone, currency, debits, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING \
     RETURNING credits - debits AS balance";
const OPEN_CREDITED: &str = "INSERT INTO accounts (id, kind, phone, currency, credits, created_at, \
     updated_at) VALUES ($1, $2, $3, $4, $5, $6, $6) ON CONFLICT (id) DO NOTHING \
     RETURNING credits - debits AS balance";
const INSERT_TRANSFER: &str = "INSERT INTO transfers (id, debit_account, credit_account, amount, \
     kind, reference, description, idempotency_key, request_fingerprint, debit_balance_after, \
     credit_balance_after, created_at, event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)";

/// Prepares the statements of [`post`] on `conn` (a start-up warm-up).
pub async fn prepare(conn: &mut Conn) -> Result<(), SqlError> {
    for sql in [
        DEBIT,
        CREDIT,
        OPEN_DEBITED,
        OPEN_CREDITED,
        INSERT_TRANSFER,
        concat!(transfer_select!(), " WHERE idempotency_key = $1"),
    ] {
        conn.prepare(sql).await?;
    }
    Ok(())
}

/// Posts a transfer in the caller's transaction. An account that does not
/// exist yet is opened by its first move: a wallet by its first credit, a
/// group's funding account by its first redemption. A user account is never
/// opened by a debit (there is nothing to debit). On any error the caller
/// rolls the transaction back: a half-moved amount is never committed.
///
/// The common case costs one statement a side: the guarded update, or for
/// a new wallet the insert that opens it with the amount.
pub async fn post(
    conn: &mut Conn,
    p: &Posting<'_>,
    currency: &Currency,
    now: i64,
) -> Result<Posted, PostError> {
    if let Some(existing) = find_by_key(conn, p.key).await? {
        return Err(PostError::Duplicate(Box::new(existing)));
    }
    let (debit_id, credit_id) = (p.debit.to_string(), p.credit.to_string());
    let mut debit_after = 0;
    let mut credit_after = 0;
    let mut opened = false;
    // In id order, so that two transfers between the same accounts take
    // their row locks in the same order (PostgreSQL) and cannot deadlock.
    let mut sides = [(&debit_id, p.debit, true), (&credit_id, p.credit, false)];
    sides.sort_by(|a, b| a.0.cmp(b.0));
    for (id, account, is_debit) in sides {
        let (balance, new) =
            side(conn, account, id, is_debit, p.amount.get(), currency, now).await?;
        if is_debit {
            debit_after = balance;
        } else {
            credit_after = balance;
            opened = new;
        }
    }
    let transfer = Transfer {
        id: TransactionId::generate(),
        debit: p.debit.clone(),
        credit: p.credit.clone(),
        amount: p.amount,
        kind: p.kind,
        reference: p.reference.to_owned(),
        description: p.description.map(str::to_owned),
        fingerprint: p.fingerprint.to_owned(),
        debit_balance_after: debit_after,
        credit_balance_after: credit_after,
        created_at: now,
        event_id: Some(p.event_id),
    };
    let inserted = query(INSERT_TRANSFER)
        .bind(transfer.id.to_string())
        .bind(&debit_id)
        .bind(&credit_id)
        .bind(p.amount.get())
        .bind(p.kind.as_str())
        .bind(p.reference)
        .bind(p.description)
        .bind(p.key)
        .bind(p.fingerprint)
        .bind(debit_after)
        .bind(credit_after)
        .bind(now)
        .bind(p.event_id.to_string())
        .execute(conn)
        .await;
    match inserted {
        Ok(_) => Ok(Posted { transfer, opened }),
        Err(e) if e.is_unique_violation() => Err(PostError::Race),
        Err(e) => Err(e.into()),
    }
}

/// One side of a posting: the account's balance after it, and whether the
/// posting opened the account. A wallet's first credit (the common case of
/// a redemption) opens it in one statement; otherwise the guarded update,
/// and if the account is missing, the insert that opens it. An account
/// opened meanwhile by a concurrent posting (PostgreSQL) is updated after
/// all.
async fn side(
    conn: &mut Conn,
    account: &Account,
    id: &str,
    is_debit: bool,
    amount: i64,
    currency: &Currency,
    now: i64,
) -> Result<(i64, bool), PostError> {
    let user = matches!(account, Account::User(_));
    let (update, open_sql) = if is_debit {
        (DEBIT, OPEN_DEBITED)
    } else {
        (CREDIT, OPEN_CREDITED)
    };
    if user && !is_debit {
        if let Some(b) = open(conn, open_sql, account, currency, amount, now).await? {
            return Ok((b, true));
        }
    } else if let Some(b) = moved(conn, update, id, amount, now).await? {
        return Ok((b, false));
    } else if user {
        // A user's missing balance is not opened by a debit.
        return Err(PostError::Insufficient);
    } else if let Some(b) = open(conn, open_sql, account, currency, amount, now).await? {
        return Ok((b, true));
    }
    match moved(conn, update, id, amount, now).await? {
        Some(b) => Ok((b, false)),
        None if user && is_debit => Err(PostError::Insufficient),
        None => Err(PostError::Overflow),
    }
}

/// One side's guarded update: the balance after, or `None` if the guard (or
/// a missing account) stopped it.
async fn moved(
    conn: &mut Conn,
    sql: &'static str,
    id: &str,
    amount: i64,
    now: i64,
) -> Result<Option<i64>, PostError> {
    let row = query(sql)
        .bind(amount)
        .bind(now)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.get("balance")).transpose()?)
}

/// Opens `account` with its first move: its balance after, or `None` if it
/// exists already.
async fn open(
    conn: &mut Conn,
    sql: &'static str,
    account: &Account,
    currency: &Currency,
    amount: i64,
    now: i64,
) -> Result<Option<i64>, PostError> {
    let phone = match account {
        Account::User(p) => Some(p.as_str()),
        _ => None,
    };
    let row = query(sql)
        .bind(account.to_string())
        .bind(account.kind())
        .bind(phone)
        .bind(currency.as_str())
        .bind(amount)
        .bind(now)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(row.map(|r| r.get("balance")).transpose()?)
}

pub fn transfer_from_row(row: &Row) -> Result<Transfer, svc_kit::Error> {
    Ok(Transfer {
        id: row.parsed("id")?,
        debit: row.parsed("debit_account")?,
        credit: row.parsed("credit_account")?,
        amount: row.amount("amount")?,
        kind: row.word("kind", TransactionKind::parse)?,
        reference: row.get("reference")?,
        description: row.get("description")?,
        fingerprint: row.get("request_fingerprint")?,
        debit_balance_after: row.get("debit_balance_after")?,
        credit_balance_after: row.get("credit_balance_after")?,
        created_at: row.get("created_at")?,
        event_id: row.parsed_opt("event_id")?,
    })
}

impl App {
    /// What a group's funding account paid out.
    pub async fn funding(&self, group_id: GroupId) -> Result<Funding> {
        // Net of reversals, which credit the account back (DESIGN.md §12):
        // a credit and its reversal count for nothing.
        let row = query(
            "SELECT a.debits - a.credits AS debited, \
             (SELECT COUNT(*) FROM transfers t WHERE t.debit_account = a.id) \
             - (SELECT COUNT(*) FROM transfers t WHERE t.credit_account = a.id) AS transfers \
             FROM accounts a WHERE a.id = $1",
        )
        .bind(Account::GroupFunding(group_id).to_string())
        .fetch_optional(self.db())
        .await?;
        let (debited, transfers) = match row {
            Some(r) => (r.get("debited")?, r.get("transfers")?),
            None => (0, 0),
        };
        Ok(Funding {
            group_id,
            debited,
            transfers,
            currency: self.currency().clone(),
        })
    }

    /// The ledger's invariants, checked against the data (DESIGN.md §5).
    pub async fn ledger_check(&self) -> Result<LedgerCheck> {
        let mut conn = self.db().reader().await?;
        let totals = query(
            "SELECT COUNT(*) AS accounts, CAST(COALESCE(SUM(credits - debits), 0) AS BIGINT) AS sum, \
             (SELECT COUNT(*) FROM transfers) AS transfers FROM accounts",
        )
        .fetch_one(&mut conn)
        .await?;
        // One pass over the transfers per side, joined to the accounts. A
        // correlated sum per account lets PostgreSQL pick a sequential scan
        // for the skewed debit side (nearly every debit is a group's funding
        // account): quadratic, a minute at 17,000 accounts.
        let bad = query(
            "SELECT a.id FROM accounts a \
             LEFT JOIN (SELECT credit_account AS id, SUM(amount) AS total FROM transfers \
                        GROUP BY credit_account) c ON c.id = a.id \
             LEFT JOIN (SELECT debit_account AS id, SUM(amount) AS total FROM transfers \
                        GROUP BY debit_account) d ON d.id = a.id \
             WHERE (a.kind = 'user' AND a.credits < a.debits) \
             OR a.credits <> COALESCE(c.total, 0) OR a.debits <> COALESCE(d.total, 0) \
             ORDER BY a.id",
        )
        .fetch_all(&mut conn)
        .await?;
        let inconsistent_accounts = bad
            .iter()
            .map(|r| r.get::<String>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let sum: i64 = totals.get("sum")?;
        Ok(LedgerCheck {
            accounts: totals.get("accounts")?,
            transfers: totals.get("transfers")?,
            sum_of_balances: sum,
            ok: sum == 0 && inconsistent_accounts.is_empty(),
            inconsistent_accounts,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn account_ids_round_trip_and_unknown_ones_are_refused() {
        let phone: Phone = "+14155552671".parse().expect("phone");
        for account in [
            Account::User(phone),
            Account::GroupFunding(GroupId::generate()),
            Account::AdminAdjustments,
            Account::Spend,
        ] {
            assert_eq!(account.to_string().parse::<Account>(), Ok(account));
        }
        for bad in ["user:4155552671", "group:x", "treasury", "bank:1"] {
            assert!(bad.parse::<Account>().is_err(), "{bad}");
        }
    }
}
