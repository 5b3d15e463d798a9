//! Reversing gift-code redemptions (DESIGN.md §12 step 2). A
//! `redemption.reversal_requested` moves the amount back from the wallet to
//! the group's funding account, kind `gift_code_reversal`, under the
//! permanent key `reversal:<redemption id>`: at most one reversal of a
//! redemption ever moves money, whichever attempt, however often its event
//! arrives. The wallet's guard (never below zero) refuses a wallet holding
//! less; then nothing is written but the `wallet.reversal_refused` event,
//! and the attempt may be made again later.
//!
//! The transfer's fingerprint keeps the attempt and its `release_code`, so
//! an event seen again answers with the attempt that moved the money.

use shared_events::{
    Envelope, RedemptionId,
    events::{ReversalRequested, WalletReversalRefused, WalletReversed},
    wallet::{ReversalNotice, TransactionKind},
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
    ledger::{self, Account, PostError, Posting, Transfer},
};

fn reversal_key(redemption_id: RedemptionId) -> String {
    format!("reversal:{redemption_id}")
}

/// What the fingerprint of a reversal's transfer records.
fn fingerprint(attempt: Uuid, release_code: bool) -> String {
    format!("attempt:{attempt}:release:{release_code}")
}

fn parse_fingerprint(f: &str) -> Option<(Uuid, bool)> {
    let rest = f.strip_prefix("attempt:")?;
    let (attempt, release) = rest.split_once(":release:")?;
    Some((attempt.parse().ok()?, release.parse().ok()?))
}

impl App {
    /// Applies a reversal request: the money moved (or moved before), or the
    /// refusal. Either way its event is in the outbox when this returns.
    pub async fn apply_reversal(
        &self,
        event: Envelope<ReversalRequested>,
    ) -> Result<ReversalNotice> {
        let app = self.clone();
        let e = event.clone();
        let moved = self
            .db()
            .write(move |tx| Box::pin(async move { app.reverse_one(tx, &e).await }))
            .await;
        match moved {
            Err(Error::InsufficientFunds) => {}
            other => return other,
        }
        // Refused: the posting's savepoint rolled back; only the refusal is
        // written, in a write of its own.
        let app = self.clone();
        self.db()
            .write(move |tx| Box::pin(async move { app.refuse(tx, &event).await }))
            .await
    }

    async fn reverse_one(
        &self,
        tx: &mut Conn,
        event: &Envelope<ReversalRequested>,
    ) -> Result<ReversalNotice> {
        let d = &event.data;
        let key = reversal_key(d.redemption_id);
        let wallet = Account::User(d.phone.clone());
        let funding = Account::GroupFunding(d.group_id);
        let reference = d.redemption_id.to_string();
        let print = fingerprint(d.attempt_id, d.release_code);
        let posting = Posting {
            debit: &wallet,
            credit: &funding,
            amount: d.amount,
            kind: TransactionKind::GiftCodeReversal,
            reference: &reference,
            description: Some(d.reason.as_str()),
            key: &key,
            fingerprint: &print,
            event_id: Uuid::now_v7(),
        };
        match ledger::post(tx, &posting, self.currency(), now_micros()).await {
            Ok(posted) => {
                let reversed = self.reversed(event, &posted.transfer, posting.event_id)?;
                outbox::enqueue(tx, &reversed).await?;
                Ok(notice_of(&reversed.data))
            }
            // Reversed before (this attempt or another): the same answer,
            // its event published again so giftcode-svc catches up.
            Err(PostError::Duplicate(t)) => {
                let id = t.event_id.unwrap_or_else(Uuid::now_v7);
                let reversed = self.reversed(event, &t, id)?;
                outbox::resend(tx, &reversed, now_micros()).await?;
                Ok(notice_of(&reversed.data))
            }
            Err(PostError::Insufficient) => Err(Error::InsufficientFunds),
            Err(PostError::Race) => Err(Error::Ledger("concurrent reversal; retrying".into())),
            Err(PostError::Overflow) => Err(Error::Ledger(format!(
                "reversing {} would overflow the group's account",
                d.redemption_id
            ))),
            Err(PostError::Db(e)) => Err(e.into()),
            Err(PostError::Kit(e)) => Err(e.into()),
        }
    }

    /// The `wallet.reversed` of transfer `t`, with the attempt that made it.
    fn reversed(
        &self,
        event: &Envelope<ReversalRequested>,
        t: &Transfer,
        id: Uuid,
    ) -> Result<Envelope<WalletReversed>> {
        let d = &event.data;
        let (attempt_id, release_code) =
            parse_fingerprint(&t.fingerprint).unwrap_or((d.attempt_id, d.release_code));
        let Account::User(phone) = &t.debit else {
            return Err(Error::Ledger(format!(
                "reversal {} not from a wallet",
                t.id
            )));
        };
        Ok(Envelope::again(
            id,
            from_micros(t.created_at),
            crate::SOURCE,
            event.correlation_id.clone(),
            WalletReversed {
                attempt_id,
                redemption_id: d.redemption_id,
                group_id: d.group_id,
                transaction_id: t.id,
                phone: phone.clone(),
                amount: t.amount,
                currency: self.currency().clone(),
                balance_after: t.debit_balance_after,
                release_code,
                reversed_at: from_micros(t.created_at),
            },
        ))
    }

    async fn refuse(
        &self,
        tx: &mut Conn,
        event: &Envelope<ReversalRequested>,
    ) -> Result<ReversalNotice> {
        let d = &event.data;
        let balance = crate::wallets::fetch_wallet(&mut *tx, &d.phone)
            .await?
            .map_or(0, |w| w.balance);
        let refused = Envelope::new(
            crate::SOURCE,
            event.correlation_id.clone(),
            WalletReversalRefused {
                attempt_id: d.attempt_id,
                redemption_id: d.redemption_id,
                phone: d.phone.clone(),
                amount: d.amount,
                balance,
                refused_at: from_micros(now_micros()),
            },
        );
        outbox::enqueue(tx, &refused).await?;
        tracing::info!(redemption_id = %d.redemption_id, balance, "reversal refused: insufficient funds");
        Ok(ReversalNotice {
            redemption_id: d.redemption_id,
            attempt_id: d.attempt_id,
            transaction_id: None,
            refused: true,
            balance,
            at: refused.data.refused_at,
        })
    }
}

fn notice_of(r: &WalletReversed) -> ReversalNotice {
    ReversalNotice {
        redemption_id: r.redemption_id,
        attempt_id: r.attempt_id,
        transaction_id: Some(r.transaction_id),
        refused: false,
        balance: r.balance_after,
        at: r.reversed_at,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fingerprint_keeps_the_attempt_and_its_release() {
        let a = Uuid::now_v7();
        assert_eq!(parse_fingerprint(&fingerprint(a, true)), Some((a, true)));
        assert_eq!(parse_fingerprint(&fingerprint(a, false)), Some((a, false)));
        assert_eq!(parse_fingerprint("something else"), None);
    }
}
