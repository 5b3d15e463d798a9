//! Crediting gift-code redemptions (DESIGN.md §7 step 3). Each `code.redeemed`
//! event moves the amount from the group's funding account to the wallet
//! (opening either with its first move) under the permanent key
//! `redemption:<id>`, with its `wallet.credited` event. The key is what makes
//! a credit happen once: an event seen twice (redelivered after a crash,
//! re-driven by giftcode-svc, or republished under a new id) changes nothing
//! the second time and answers as the first time: the credit it made, and
//! its `wallet.credited` published again with the same id, so that
//! giftcode-svc catches up after a broker that lost its store (issue 11).
//!
//! [`crate::consumers::code_redeemed`] feeds it; `wallet.redemptions.get`
//! reads a credit back.

use shared_events::{
    Envelope, RedemptionId,
    events::{Cause, CodeRedeemed, WalletCredited},
    wallet::{Credit, CreditNotice, Credits, CreditsQuery, TransactionKind},
};
use svc_kit::{
    HasKit,
    db::{Conn, query},
    outbox,
    time::{from_micros, now_micros},
};

use uuid::Uuid;

use crate::{
    App,
    error::{Error, Result},
    ledger::{self, Account, PostError, Posting, Transfer},
};

/// The permanent idempotency key of a redemption's credit.
fn credit_key(redemption_id: RedemptionId) -> String {
    format!("redemption:{redemption_id}")
}

impl App {
    /// The credit of one redemption, if it has been made: lets the gateway
    /// answer a replayed or polled redemption from the ledger itself, without
    /// waiting for giftcode-svc to hear of the credit.
    pub async fn redemption_credit(&self, redemption_id: RedemptionId) -> Result<CreditNotice> {
        let mut conn = self.db().reader().await?;
        let t = ledger::find_by_key(&mut conn, &credit_key(redemption_id))
            .await?
            .ok_or(Error::CreditNotFound)?;
        self.notice(redemption_id, &t)
    }

    /// Which of the queried redemptions the ledger has credited, and by
    /// which transfer: one indexed read (`transfers_by_reference`).
    pub async fn redemption_credits(&self, q: CreditsQuery) -> Result<Credits> {
        q.check().map_err(|e| Error::Validation(vec![e]))?;
        if q.redemption_ids.is_empty() {
            return Ok(Credits::default());
        }
        let backend = self.db().backend();
        let sql = format!(
            "SELECT reference, id, created_at FROM transfers WHERE kind = {} AND reference IN ({})",
            backend.placeholder(1),
            backend.list_placeholders(q.redemption_ids.len(), 2)
        );
        let mut select = query(sql).bind(TransactionKind::GiftCodeRedemption.as_str());
        for id in &q.redemption_ids {
            select = select.bind(id.to_string());
        }
        let credits = select
            .fetch_all(self.db())
            .await?
            .iter()
            .map(|r| -> Result<Credit> {
                Ok(Credit {
                    redemption_id: r.parsed("reference")?,
                    transaction_id: r.parsed("id")?,
                    credited_at: from_micros(r.get("created_at")?),
                })
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(Credits { credits })
    }

    /// The credit notice of a redemption's transfer.
    fn notice(&self, redemption_id: RedemptionId, t: &Transfer) -> Result<CreditNotice> {
        let Account::User(phone) = &t.credit else {
            return Err(Error::Ledger(format!("credit {} not to a wallet", t.id)));
        };
        Ok(CreditNotice {
            redemption_id,
            transaction_id: t.id,
            credited_at: from_micros(t.created_at),
            phone: phone.clone(),
            balance: t.credit_balance_after,
            currency: self.currency().clone(),
        })
    }

    /// Applies a `code.redeemed` event exactly once; its credit. The write
    /// joins the database's next group commit, so the credits of a batch
    /// of events commit together, each in its own savepoint: one that
    /// cannot be applied does not hold back the others.
    pub async fn apply_redemption(&self, event: Envelope<CodeRedeemed>) -> Result<CreditNotice> {
        let app = self.clone();
        self.db()
            .write(move |tx| Box::pin(async move { app.apply_one(tx, &event).await }))
            .await
    }

    /// One event inside the caller's transaction: its credit.
    async fn apply_one(
        &self,
        tx: &mut Conn,
        event: &Envelope<CodeRedeemed>,
    ) -> Result<CreditNotice> {
        let d = &event.data;
        let key = credit_key(d.redemption_id);
        let now = now_micros();
        let funding = Account::GroupFunding(d.group_id);
        let reference = d.redemption_id.to_string();
        let wallet = Account::User(d.phone.clone());
        let posting = Posting {
            debit: &funding,
            credit: &wallet,
            amount: d.amount,
            kind: TransactionKind::GiftCodeRedemption,
            reference: &reference,
            description: Some(d.code_hint.as_str()),
            key: &key,
            fingerprint: &reference,
            event_id: Uuid::now_v7(),
        };
        let posted = match ledger::post(tx, &posting, self.currency(), now).await {
            Ok(p) => p,
            // Seen before (redelivered, re-driven, or republished under
            // another event id): credited already.
            Err(PostError::Duplicate(t)) => return self.answer_again(tx, event, &t).await,
            Err(PostError::Race) => {
                return Err(Error::Ledger("concurrent credit; retrying".into()));
            }
            Err(PostError::Insufficient | PostError::Overflow) => {
                return Err(Error::Ledger(format!(
                    "cannot credit redemption {}",
                    d.redemption_id
                )));
            }
            Err(PostError::Db(e)) => return Err(e.into()),
            Err(PostError::Kit(e)) => return Err(e.into()),
        };
        let credited = self.credited(event, &posted.transfer, posting.event_id, posted.opened)?;
        outbox::enqueue(tx, &credited).await?;
        self.notice(d.redemption_id, &posted.transfer)
    }

    /// A redemption seen again, credited already by `t`: the same credit,
    /// and its `wallet.credited` published again with its id (a new one for
    /// a credit made before ids were kept).
    async fn answer_again(
        &self,
        tx: &mut Conn,
        event: &Envelope<CodeRedeemed>,
        t: &Transfer,
    ) -> Result<CreditNotice> {
        // Whether that credit opened the wallet: then the account was made
        // in the same transaction, at the same time.
        let Account::User(phone) = &t.credit else {
            return Err(Error::Ledger(format!("credit {} not to a wallet", t.id)));
        };
        let opened = crate::wallets::fetch_wallet(&mut *tx, phone)
            .await?
            .is_some_and(|w| w.created_at == from_micros(t.created_at));
        let id = t.event_id.unwrap_or_else(Uuid::now_v7);
        let credited = self.credited(event, t, id, opened)?;
        outbox::resend(tx, &credited, now_micros()).await?;
        self.notice(event.data.redemption_id, t)
    }

    /// The `wallet.credited` of the credit `t` made for `event`.
    fn credited(
        &self,
        event: &Envelope<CodeRedeemed>,
        t: &Transfer,
        id: Uuid,
        created: bool,
    ) -> Result<Envelope<WalletCredited>> {
        let Account::User(phone) = &t.credit else {
            return Err(Error::Ledger(format!("credit {} not to a wallet", t.id)));
        };
        Ok(Envelope::again(
            id,
            from_micros(t.created_at),
            crate::SOURCE,
            event.correlation_id.clone(),
            WalletCredited {
                transaction_id: t.id,
                phone: phone.clone(),
                amount: t.amount,
                currency: self.currency().clone(),
                balance_after: t.credit_balance_after,
                cause: Cause::GiftCodeRedemption(event.data.redemption_id),
                created,
            },
        ))
    }
}
