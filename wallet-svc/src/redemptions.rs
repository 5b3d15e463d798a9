//! Crediting gift-code redemptions (DESIGN.md §7 step 3). Each `code.redeemed`
//! event records its id, opens the wallet if needed, and moves the amount from
//! the group's funding account to the wallet under the permanent key
//! `redemption:<id>`, with its `wallet.credited` event. An event seen twice
//! (redelivered after a crash, or republished under a new id) changes nothing
//! the second time and answers with the credit it made the first time.
//!
//! [`crate::consumers::code_redeemed`] feeds it; `wallet.redemptions.get`
//! reads a credit back.

use std::collections::HashSet;

use shared_events::{
    Envelope, GroupId, RedemptionId,
    events::{Cause, CodeRedeemed, WalletCredited},
    wallet::{CreditNotice, TransactionKind},
};
use svc_kit::{
    outbox,
    time::{from_micros, now_micros},
};

use crate::{
    App,
    error::{Error, Result},
    ledger::{self, Account, PostError, Posting, Transfer},
};
use svc_kit::HasKit;

/// The permanent idempotency key of a redemption's credit.
fn credit_key(redemption_id: RedemptionId) -> String {
    format!("redemption:{redemption_id}")
}

impl App {
    /// The credit of one redemption, if it has been made: lets the gateway
    /// answer a replayed or polled redemption from the ledger itself, without
    /// waiting for giftcode-svc to hear of the credit.
    pub async fn redemption_credit(&self, redemption_id: RedemptionId) -> Result<CreditNotice> {
        let mut conn = self.db().read().acquire().await?;
        let t = ledger::find_by_key(&mut conn, &credit_key(redemption_id))
            .await?
            .ok_or(Error::CreditNotFound)?;
        self.notice(redemption_id, &t)
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

    /// Applies `code.redeemed` events exactly once each, all in one
    /// transaction; returns their credits in order. Any error rolls all of
    /// them back.
    pub async fn apply_redemptions(
        &self,
        events: &[&Envelope<CodeRedeemed>],
    ) -> Result<Vec<CreditNotice>> {
        let mut tx = self.db().begin().await?;
        let mut notices = Vec::with_capacity(events.len());
        let mut credited = false;
        // The funding accounts this transaction has made sure of: a batch
        // mostly credits codes of a few groups.
        let mut funded = HashSet::new();
        for event in events {
            let (notice, new) = self.apply_one(&mut tx, event, &mut funded).await?;
            notices.push(notice);
            credited |= new;
        }
        tx.commit().await?;
        if credited {
            self.wake_outbox();
        }
        Ok(notices)
    }

    /// One event inside the caller's transaction: its credit, and whether it
    /// is new (not a redelivery or a republished duplicate).
    async fn apply_one(
        &self,
        tx: &mut sqlx::AnyConnection,
        event: &Envelope<CodeRedeemed>,
        funded: &mut HashSet<GroupId>,
    ) -> Result<(CreditNotice, bool)> {
        let d = &event.data;
        let key = credit_key(d.redemption_id);
        let now = now_micros();
        let first_time = sqlx::query(
            "INSERT INTO processed_events (event_id, processed_at) VALUES ($1, $2) \
             ON CONFLICT (event_id) DO NOTHING",
        )
        .bind(event.id.to_string())
        .bind(now)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if !first_time {
            let t = ledger::find_by_key(tx, &key).await?.ok_or_else(|| {
                Error::Ledger(format!("event {} processed without its credit", event.id))
            })?;
            return Ok((self.notice(d.redemption_id, &t)?, false));
        }
        self.open_wallet(tx, &d.phone, now, event.correlation_id.clone())
            .await?;
        let funding = Account::GroupFunding(d.group_id);
        if funded.insert(d.group_id) {
            ledger::ensure_account(tx, &funding, self.currency(), now).await?;
        }
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
        };
        let transfer = match ledger::post(tx, &posting, now).await {
            Ok(t) => t,
            // The same redemption under another event id: credited already.
            // The new event id stays recorded so it is not examined again.
            Err(PostError::Duplicate(t)) => return Ok((self.notice(d.redemption_id, &t)?, false)),
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
        let credited = Envelope::new(
            crate::SOURCE,
            event.correlation_id.clone(),
            WalletCredited {
                transaction_id: transfer.id,
                phone: d.phone.clone(),
                amount: d.amount,
                currency: self.currency().clone(),
                balance_after: transfer.credit_balance_after,
                cause: Cause::GiftCodeRedemption(d.redemption_id),
            },
        );
        outbox::enqueue(tx, &credited).await?;
        Ok((self.notice(d.redemption_id, &transfer)?, true))
    }
}
