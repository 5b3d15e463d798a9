//! Admin credits and debits (DESIGN.md §5, §8) under a permanent
//! `Idempotency-Key`: the same key and body replay the original transaction,
//! another body is `idempotency_conflict`. A credit comes from
//! `admin_adjustments` and opens the wallet if needed; a debit goes to `spend`
//! and never takes a balance below zero.

use shared_events::{
    Envelope,
    events::{Cause, WalletCredited, WalletDebited},
    wallet::{MoveReply, MoveRequest, TransactionKind},
};
use svc_kit::{
    HasKit,
    db::Conn,
    outbox,
    time::{from_micros, now_micros},
};
use uuid::Uuid;

use crate::{
    App,
    error::{Error, Result},
    ledger::{self, Account, PostError, Posted, Posting, Transfer},
    wallets::fetch_wallet,
};

/// A move, checked: what the ledger will be asked to post.
struct Move {
    req: MoveRequest,
    kind: TransactionKind,
    description: Option<String>,
    /// The request as made: a replay of its key must match it.
    fingerprint: String,
    /// The ledger's key: `admin:<Idempotency-Key>`.
    key: String,
    /// The id of the event that will announce the move.
    event_id: Uuid,
}

impl Move {
    fn new(req: MoveRequest, kind: TransactionKind) -> Result<Self> {
        let description = req
            .description
            .as_deref()
            .map(str::trim)
            .filter(|d| !d.is_empty())
            .map(str::to_owned);
        if description
            .as_deref()
            .is_some_and(|d| d.chars().count() > MoveRequest::MAX_DESCRIPTION)
        {
            return Err(Error::field(
                "description",
                "must be at most 500 characters",
            ));
        }
        let fingerprint = serde_json::json!([
            kind.as_str(),
            req.phone.as_str(),
            req.amount.get(),
            description
        ])
        .to_string();
        let key = format!("admin:{}", req.idempotency_key.as_str());
        Ok(Self {
            req,
            kind,
            description,
            fingerprint,
            key,
            event_id: Uuid::now_v7(),
        })
    }

    /// The original answer to this key, or the conflict if the body differs.
    fn replay(&self, app: &App, t: &Transfer) -> Result<MoveReply> {
        if t.fingerprint != self.fingerprint {
            return Err(Error::IdempotencyConflict);
        }
        Ok(MoveReply {
            transaction: t.for_wallet(&self.req.phone, app.currency()),
            replayed: true,
        })
    }
}

impl App {
    /// An admin credit from `admin_adjustments`; opens the wallet if needed.
    pub async fn credit(
        &self,
        req: MoveRequest,
        correlation_id: Option<String>,
    ) -> Result<MoveReply> {
        let m = Move::new(req, TransactionKind::AdminCredit)?;
        let app = self.clone();
        self.db()
            .write(move |tx| Box::pin(async move { app.credit_in(tx, m, correlation_id).await }))
            .await
    }

    async fn credit_in(
        &self,
        tx: &mut Conn,
        m: Move,
        correlation_id: Option<String>,
    ) -> Result<MoveReply> {
        let now = now_micros();
        let wallet = Account::User(m.req.phone.clone());
        let (transfer, created) = match self
            .post_move(tx, &m, &Account::AdminAdjustments, &wallet, now)
            .await?
        {
            Outcome::New(p) => (p.transfer, p.opened),
            Outcome::Replay(reply) => return reply,
        };
        let event = Envelope::again(
            m.event_id,
            from_micros(now),
            crate::SOURCE,
            correlation_id,
            WalletCredited {
                transaction_id: transfer.id,
                phone: m.req.phone.clone(),
                amount: m.req.amount,
                currency: self.currency().clone(),
                balance_after: transfer.credit_balance_after,
                cause: Cause::AdminCredit(m.req.idempotency_key.as_str().to_owned()),
                created,
            },
        );
        outbox::enqueue(tx, &event).await?;
        Ok(self.made(&m, &transfer))
    }

    /// An admin debit to `spend`; never below zero.
    pub async fn debit(
        &self,
        req: MoveRequest,
        correlation_id: Option<String>,
    ) -> Result<MoveReply> {
        let m = Move::new(req, TransactionKind::AdminDebit)?;
        let app = self.clone();
        self.db()
            .write(move |tx| Box::pin(async move { app.debit_in(tx, m, correlation_id).await }))
            .await
    }

    async fn debit_in(
        &self,
        tx: &mut Conn,
        m: Move,
        correlation_id: Option<String>,
    ) -> Result<MoveReply> {
        let now = now_micros();
        if let Some(t) = ledger::find_by_key(tx, &m.key).await? {
            return m.replay(self, &t);
        }
        if fetch_wallet(&mut *tx, &m.req.phone).await?.is_none() {
            return Err(Error::WalletNotFound);
        }
        let wallet = Account::User(m.req.phone.clone());
        let transfer = match self
            .post_move(tx, &m, &wallet, &Account::Spend, now)
            .await?
        {
            Outcome::New(p) => p.transfer,
            Outcome::Replay(reply) => return reply,
        };
        let event = Envelope::again(
            m.event_id,
            from_micros(now),
            crate::SOURCE,
            correlation_id,
            WalletDebited {
                transaction_id: transfer.id,
                phone: m.req.phone.clone(),
                amount: m.req.amount,
                currency: self.currency().clone(),
                balance_after: transfer.debit_balance_after,
                cause: Cause::AdminDebit(m.req.idempotency_key.as_str().to_owned()),
            },
        );
        outbox::enqueue(tx, &event).await?;
        Ok(self.made(&m, &transfer))
    }

    fn made(&self, m: &Move, t: &Transfer) -> MoveReply {
        MoveReply {
            transaction: t.for_wallet(&m.req.phone, self.currency()),
            replayed: false,
        }
    }

    /// Posts `m` from `debit` to `credit` in the caller's transaction; a key
    /// used before answers its replay.
    async fn post_move(
        &self,
        tx: &mut Conn,
        m: &Move,
        debit: &Account,
        credit: &Account,
        now: i64,
    ) -> Result<Outcome> {
        let posting = Posting {
            debit,
            credit,
            amount: m.req.amount,
            kind: m.kind,
            reference: m.req.idempotency_key.as_str(),
            description: m.description.as_deref(),
            key: &m.key,
            fingerprint: &m.fingerprint,
            event_id: m.event_id,
        };
        match ledger::post(tx, &posting, self.currency(), now).await {
            Ok(p) => Ok(Outcome::New(p)),
            Err(PostError::Duplicate(t)) => Ok(Outcome::Replay(m.replay(self, &t))),
            Err(PostError::Race) => {
                // Another request with this key committed first: answer
                // with what it made, read outside this doomed transaction.
                // (Only PostgreSQL gets here: SQLite's writes are serial,
                // so the look-up above found the key.)
                let mut conn = self.db().reader().await?;
                let t = ledger::find_by_key(&mut conn, &m.key)
                    .await?
                    .ok_or_else(|| Error::Ledger("a duplicate key vanished".into()))?;
                Ok(Outcome::Replay(m.replay(self, &t)))
            }
            Err(PostError::Insufficient) => Err(Error::InsufficientFunds),
            Err(PostError::Overflow) => Err(Error::field("amount", "would overflow the account")),
            Err(PostError::Db(e)) => Err(e.into()),
            Err(PostError::Kit(e)) => Err(e.into()),
        }
    }
}

/// What posting a move did.
enum Outcome {
    New(Posted),
    /// The key was used before: the answer (its replay, or the conflict).
    Replay(Result<MoveReply>),
}
