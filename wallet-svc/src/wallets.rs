//! Wallets as users and admins see them (DESIGN.md §5, §8): create, read, list,
//! their transactions, and admin credits and debits under an idempotency key.

use shared_events::{
    Envelope, Page, Phone,
    events::{Cause, WalletCreated, WalletCredited, WalletDebited},
    wallet::{
        Funding, LedgerCheck, ListTransactionsRequest, ListWalletsRequest, MoveReply, MoveRequest,
        Transaction, TransactionKind, Wallet,
    },
};
use sqlx::{AnyConnection, Row, any::AnyRow};
use svc_kit::{
    outbox,
    time::{from_micros, now_micros},
};
use uuid::Uuid;

use crate::{
    App,
    error::{Error, Result},
    ledger::{
        self, ADMIN_ADJUSTMENTS, PostError, Posting, SPEND, funding_account, transfer_select,
        user_account,
    },
};

const MAX_KEY: usize = 200;
const MAX_DESCRIPTION: usize = 500;

impl App {
    pub(crate) fn phone(&self, input: &str) -> Result<Phone> {
        Phone::parse(input, self.region()).map_err(|_| Error::InvalidPhone)
    }

    /// Creates a wallet explicitly: `wallet_exists` if there is one.
    pub async fn create_wallet(
        &self,
        phone: &str,
        correlation_id: Option<String>,
    ) -> Result<Wallet> {
        let phone = self.phone(phone)?;
        let now = now_micros();
        let mut tx = self.db().begin().await?;
        if !self
            .open_wallet(&mut tx, &phone, now, correlation_id)
            .await?
        {
            return Err(Error::WalletExists);
        }
        let wallet = fetch_wallet(&mut tx, phone.as_str())
            .await?
            .ok_or(Error::WalletNotFound)?;
        tx.commit().await?;
        self.wake_outbox();
        Ok(wallet)
    }

    /// Creates the wallet's account if missing, with its `wallet.created`
    /// event, in the caller's transaction. True if it was created.
    pub(crate) async fn open_wallet(
        &self,
        conn: &mut AnyConnection,
        phone: &Phone,
        now: i64,
        correlation_id: Option<String>,
    ) -> Result<bool> {
        let created = ledger::ensure_account(
            conn,
            &user_account(phone.as_str()),
            "user",
            Some(phone.as_str()),
            self.currency(),
            now,
        )
        .await?;
        if created {
            let event = Envelope::new(
                crate::SOURCE,
                correlation_id,
                WalletCreated {
                    phone: phone.to_string(),
                    currency: self.currency().to_owned(),
                    created_at: from_micros(now),
                },
            );
            outbox::enqueue(conn, &event).await?;
        }
        Ok(created)
    }

    pub async fn get_wallet(&self, phone: &str) -> Result<Wallet> {
        let phone = self.phone(phone)?;
        let mut conn = self.db().read().acquire().await?;
        fetch_wallet(&mut conn, phone.as_str())
            .await?
            .ok_or(Error::WalletNotFound)
    }

    /// Wallets in phone order.
    pub async fn list_wallets(&self, req: ListWalletsRequest) -> Result<Page<Wallet>> {
        let limit = page_limit(req.limit)?;
        let cursor = match req.cursor {
            Some(c) => user_account(self.phone(&c).map_err(|_| bad_cursor())?.as_str()),
            None => String::new(),
        };
        let rows = sqlx::query(
            "SELECT phone, credits - debits AS balance, currency, created_at, updated_at \
             FROM accounts WHERE kind = 'user' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(self.db().read())
        .await?;
        let items = rows
            .iter()
            .map(wallet_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |w| w.phone.clone()))
    }

    /// A wallet's transactions, newest first.
    pub async fn list_transactions(
        &self,
        req: ListTransactionsRequest,
    ) -> Result<Page<Transaction>> {
        let phone = self.phone(&req.phone)?;
        let limit = page_limit(req.limit)?;
        let cursor = match req.cursor {
            Some(c) => Uuid::parse_str(&c).map_err(|_| bad_cursor())?.to_string(),
            None => "~".to_owned(), // sorts after every id
        };
        let account = user_account(phone.as_str());
        self.get_wallet(phone.as_str()).await?;
        let rows = sqlx::query(concat!(
            transfer_select!(),
            " WHERE (debit_account = $1 OR credit_account = $1) AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(&account)
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(self.db().read())
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                ledger::transfer_from_row(r)
                    .map(|t| t.for_wallet(&account, phone.as_str(), self.currency()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |t| t.id.to_string()))
    }

    /// An admin credit from `admin_adjustments`; opens the wallet if needed.
    pub async fn credit(
        &self,
        req: MoveRequest,
        correlation_id: Option<String>,
    ) -> Result<MoveReply> {
        self.admin_move(req, TransactionKind::AdminCredit, correlation_id)
            .await
    }

    /// An admin debit to `spend`; never below zero.
    pub async fn debit(
        &self,
        req: MoveRequest,
        correlation_id: Option<String>,
    ) -> Result<MoveReply> {
        self.admin_move(req, TransactionKind::AdminDebit, correlation_id)
            .await
    }

    async fn admin_move(
        &self,
        req: MoveRequest,
        kind: TransactionKind,
        correlation_id: Option<String>,
    ) -> Result<MoveReply> {
        let phone = self.phone(&req.phone)?;
        let mut errs = Vec::new();
        if shared_events::Amount::new(req.amount).is_none() {
            errs.push(shared_events::FieldError::new(
                "amount",
                "must be an integer number of minor units from 1 to 10^12",
            ));
        }
        let key = req.idempotency_key.trim();
        if key.is_empty() || key.len() > MAX_KEY {
            errs.push(shared_events::FieldError::new(
                "idempotency_key",
                "must be 1 to 200 characters",
            ));
        }
        let description = req
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty());
        if description.is_some_and(|d| d.chars().count() > MAX_DESCRIPTION) {
            errs.push(shared_events::FieldError::new(
                "description",
                "must be at most 500 characters",
            ));
        }
        if !errs.is_empty() {
            return Err(Error::Validation(errs));
        }
        let account = user_account(phone.as_str());
        let fingerprint =
            serde_json::json!([kind.as_str(), phone.as_str(), req.amount, description]).to_string();
        let stored_key = format!("admin:{key}");
        let (debit, credit) = match kind {
            TransactionKind::AdminDebit => (account.as_str(), SPEND),
            _ => (ADMIN_ADJUSTMENTS, account.as_str()),
        };
        let posting = Posting {
            debit,
            credit,
            amount: req.amount,
            kind,
            reference: key,
            description,
            key: &stored_key,
            fingerprint: &fingerprint,
        };
        let replay = |t: &ledger::Transfer| -> Result<MoveReply> {
            if t.fingerprint != fingerprint {
                return Err(Error::IdempotencyConflict);
            }
            Ok(MoveReply {
                transaction: t.for_wallet(&account, phone.as_str(), self.currency()),
                replayed: true,
            })
        };
        let now = now_micros();
        let mut tx = self.db().begin().await?;
        match kind {
            TransactionKind::AdminDebit => {
                if let Some(t) = ledger::find_by_key(&mut tx, &stored_key).await? {
                    return replay(&t);
                }
                if fetch_wallet(&mut tx, phone.as_str()).await?.is_none() {
                    return Err(Error::WalletNotFound);
                }
            }
            _ => {
                self.open_wallet(&mut tx, &phone, now, correlation_id.clone())
                    .await?;
            }
        }
        let system = if kind == TransactionKind::AdminDebit {
            SPEND
        } else {
            ADMIN_ADJUSTMENTS
        };
        ledger::ensure_account(&mut tx, system, system, None, self.currency(), now).await?;
        let transfer = match ledger::post(&mut tx, &posting, now).await {
            Ok(t) => t,
            Err(PostError::Duplicate(t)) => return replay(&t),
            Err(PostError::Race) => {
                tx.rollback().await?;
                let mut conn = self.db().read().acquire().await?;
                let t = ledger::find_by_key(&mut conn, &stored_key)
                    .await?
                    .ok_or_else(|| Error::Ledger("duplicate key vanished".into()))?;
                return replay(&t);
            }
            Err(PostError::Insufficient) => return Err(Error::InsufficientFunds),
            Err(PostError::Overflow) => {
                return Err(Error::validation("amount", "would overflow the account"));
            }
            Err(PostError::Db(e)) => return Err(e.into()),
        };
        let cause = Cause {
            kind: kind.as_str().to_owned(),
            id: key.to_owned(),
        };
        let transaction = transfer.for_wallet(&account, phone.as_str(), self.currency());
        if kind == TransactionKind::AdminDebit {
            let event = Envelope::new(
                crate::SOURCE,
                correlation_id,
                WalletDebited {
                    transaction_id: transfer.id,
                    phone: phone.to_string(),
                    amount: req.amount,
                    currency: self.currency().to_owned(),
                    balance_after: transaction.balance_after,
                    cause,
                },
            );
            outbox::enqueue(&mut tx, &event).await?;
        } else {
            let event = Envelope::new(
                crate::SOURCE,
                correlation_id,
                WalletCredited {
                    transaction_id: transfer.id,
                    phone: phone.to_string(),
                    amount: req.amount,
                    currency: self.currency().to_owned(),
                    balance_after: transaction.balance_after,
                    cause,
                },
            );
            outbox::enqueue(&mut tx, &event).await?;
        }
        tx.commit().await?;
        self.wake_outbox();
        Ok(MoveReply {
            transaction,
            replayed: false,
        })
    }

    /// What a group's funding account paid out.
    pub async fn funding(&self, group_id: Uuid) -> Result<Funding> {
        let account = funding_account(group_id);
        let row = sqlx::query(
            "SELECT a.debits AS debited, \
             (SELECT COUNT(*) FROM transfers t WHERE t.debit_account = a.id) AS transfers \
             FROM accounts a WHERE a.id = $1",
        )
        .bind(&account)
        .fetch_optional(self.db().read())
        .await?;
        let (debited, transfers) = match row {
            Some(r) => (r.try_get("debited")?, r.try_get("transfers")?),
            None => (0, 0),
        };
        Ok(Funding {
            group_id,
            debited,
            transfers,
            currency: self.currency().to_owned(),
        })
    }

    /// The ledger's invariants, checked against the data (DESIGN.md §5).
    pub async fn ledger_check(&self) -> Result<LedgerCheck> {
        let mut conn = self.db().read().acquire().await?;
        let totals = sqlx::query(
            "SELECT COUNT(*) AS accounts, CAST(COALESCE(SUM(credits - debits), 0) AS BIGINT) AS sum, \
             (SELECT COUNT(*) FROM transfers) AS transfers FROM accounts",
        )
        .fetch_one(&mut *conn)
        .await?;
        let bad = sqlx::query(
            "SELECT a.id FROM accounts a WHERE (a.kind = 'user' AND a.credits < a.debits) \
             OR a.credits <> (SELECT COALESCE(SUM(t.amount), 0) FROM transfers t WHERE t.credit_account = a.id) \
             OR a.debits <> (SELECT COALESCE(SUM(t.amount), 0) FROM transfers t WHERE t.debit_account = a.id) \
             ORDER BY a.id",
        )
        .fetch_all(&mut *conn)
        .await?;
        let inconsistent_accounts = bad
            .iter()
            .map(|r| r.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        let sum: i64 = totals.try_get("sum")?;
        Ok(LedgerCheck {
            accounts: totals.try_get("accounts")?,
            transfers: totals.try_get("transfers")?,
            sum_of_balances: sum,
            ok: sum == 0 && inconsistent_accounts.is_empty(),
            inconsistent_accounts,
        })
    }
}

pub(crate) async fn fetch_wallet(conn: &mut AnyConnection, phone: &str) -> Result<Option<Wallet>> {
    sqlx::query(
        "SELECT phone, credits - debits AS balance, currency, created_at, updated_at \
         FROM accounts WHERE id = $1",
    )
    .bind(user_account(phone))
    .fetch_optional(conn)
    .await?
    .as_ref()
    .map(wallet_from_row)
    .transpose()
    .map_err(Error::from)
}

fn wallet_from_row(row: &AnyRow) -> Result<Wallet, sqlx::Error> {
    Ok(Wallet {
        phone: row.try_get("phone")?,
        balance: row.try_get("balance")?,
        currency: row.try_get("currency")?,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
    })
}

fn bad_cursor() -> Error {
    Error::validation("cursor", "is not a cursor this service gave out")
}

fn page_limit(limit: Option<u32>) -> Result<i64> {
    shared_events::values::page_limit(limit).map_err(|e| Error::Validation(vec![e]))
}
