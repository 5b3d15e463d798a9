//! Wallets as users and admins see them (DESIGN.md §5, §8): create, read, list,
//! and their transactions.

use shared_events::{
    Envelope, Limit, Page, Phone, TransactionId,
    events::WalletCreated,
    wallet::{ListTransactionsRequest, ListWalletsRequest, Transaction, Wallet},
};
use svc_kit::{
    HasKit,
    db::{Conn, On, Row, query},
    outbox,
    time::{from_micros, now_micros},
};

use crate::{
    App,
    error::{Error, Result},
    ledger::{self, Account, transfer_select},
};

impl App {
    /// Creates a wallet explicitly, with its `wallet.created` event:
    /// `wallet_exists` if there is one. (A wallet opened by its first credit
    /// is announced by that credit's `wallet.credited`, `created: true`.)
    pub async fn create_wallet(
        &self,
        phone: &Phone,
        correlation_id: Option<String>,
    ) -> Result<Wallet> {
        let now = now_micros();
        let (currency, phone) = (self.currency().clone(), phone.clone());
        self.db()
            .write(move |tx| {
                Box::pin(async move {
                    let account = Account::User(phone.clone());
                    if !ledger::ensure_account(tx, &account, &currency, now).await? {
                        return Err(Error::WalletExists);
                    }
                    let event = Envelope::new(
                        crate::SOURCE,
                        correlation_id,
                        WalletCreated {
                            phone: phone.clone(),
                            currency,
                            created_at: from_micros(now),
                        },
                    );
                    outbox::enqueue(tx, &event).await?;
                    fetch_wallet(&mut *tx, &phone)
                        .await?
                        .ok_or(Error::WalletNotFound)
                })
            })
            .await
    }

    pub async fn get_wallet(&self, phone: &Phone) -> Result<Wallet> {
        fetch_wallet(self.db(), phone)
            .await?
            .ok_or(Error::WalletNotFound)
    }

    /// Wallets in phone order.
    pub async fn list_wallets(&self, req: ListWalletsRequest) -> Result<Page<Wallet>> {
        let limit = Limit::or_default(req.limit);
        // The cursor is the last phone of the previous page. Anything shaped
        // like one (`+` and 1 to 16 digits) is a position in phone order,
        // whether or not a carrier could issue it.
        let cursor = match req.cursor {
            Some(c) if is_phone_shaped(&c) => format!("user:{c}"),
            Some(_) => return Err(bad_cursor()),
            None => String::new(),
        };
        let rows = query(
            "SELECT phone, credits - debits AS balance, currency, created_at, updated_at \
             FROM accounts WHERE kind = 'user' AND id > $1 ORDER BY id LIMIT $2",
        )
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(self.db())
        .await?;
        let items = rows
            .iter()
            .map(wallet_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |w| w.phone.to_string()))
    }

    /// A wallet's transactions, newest first.
    pub async fn list_transactions(
        &self,
        req: ListTransactionsRequest,
    ) -> Result<Page<Transaction>> {
        let limit = Limit::or_default(req.limit);
        let cursor = match req.cursor {
            Some(c) => c
                .parse::<TransactionId>()
                .map_err(|_| bad_cursor())?
                .to_string(),
            None => "~".to_owned(), // sorts after every id
        };
        let account = Account::User(req.phone.clone()).to_string();
        self.get_wallet(&req.phone).await?;
        let rows = query(concat!(
            transfer_select!(),
            " WHERE (debit_account = $1 OR credit_account = $1) AND id < $2 ORDER BY id DESC LIMIT $3"
        ))
        .bind(&account)
        .bind(cursor)
        .bind(limit + 1)
        .fetch_all(self.db())
        .await?;
        let items = rows
            .iter()
            .map(|r| {
                ledger::transfer_from_row(r).map(|t| t.for_wallet(&req.phone, self.currency()))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Page::from_overfetch(items, limit, |t| t.id.to_string()))
    }
}

const WALLET: &str = "SELECT phone, credits - debits AS balance, currency, created_at, \
     updated_at FROM accounts WHERE id = $1";

/// Prepares the read of one wallet on `conn` (a start-up warm-up).
pub(crate) async fn prepare(conn: &mut Conn) -> Result<()> {
    Ok(conn.prepare(WALLET).await?)
}

pub(crate) async fn fetch_wallet<'a>(
    on: impl Into<On<'a>>,
    phone: &Phone,
) -> Result<Option<Wallet>> {
    query(WALLET)
        .bind(Account::User(phone.clone()).to_string())
        .fetch_optional(on)
        .await?
        .as_ref()
        .map(wallet_from_row)
        .transpose()
}

fn wallet_from_row(row: &Row) -> Result<Wallet> {
    Ok(Wallet {
        phone: row.parsed("phone")?,
        balance: row.get("balance")?,
        currency: row.parsed("currency")?,
        created_at: from_micros(row.get("created_at")?),
        updated_at: from_micros(row.get("updated_at")?),
    })
}

fn is_phone_shaped(s: &str) -> bool {
    s.strip_prefix('+')
        .is_some_and(|d| (1..=16).contains(&d.len()) && d.bytes().all(|b| b.is_ascii_digit()))
}

fn bad_cursor() -> Error {
    Error::field("cursor", "is not a cursor this service gave out")
}
