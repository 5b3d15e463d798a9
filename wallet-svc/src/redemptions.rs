//! Crediting gift-code redemptions (DESIGN.md §7 step 3). A durable pull
//! consumer reads `giftcode.events.code.redeemed`; each event, in one
//! transaction, records its id, opens the wallet if needed, and moves the
//! amount from the group's funding account to the wallet under the permanent key
//! `redemption:<id>`, with its `wallet.credited` event. Only then is it acked.
//!
//! An event seen twice (redelivered after a crash, or republished under a new
//! id) changes nothing the second time; the caller's reply inbox, if the event
//! names one, still gets the credit notice.

use async_nats::jetstream;
use shared_events::{
    Envelope, Phone,
    events::{Cause, CodeRedeemed, WalletCredited},
    subjects::REPLY_INBOX_HEADER,
    wallet::{CreditNotice, TransactionKind},
};
use svc_kit::{consumer::Outcome, outbox, time::now_micros};

use crate::{
    App,
    error::{Error, Result},
    ledger::{self, PostError, Posting, funding_account, user_account},
};

/// Handles one delivered message; the consumer loop acks according to the
/// outcome.
pub async fn handle(
    app: App,
    client: async_nats::Client,
    msg: jetstream::Message,
) -> (jetstream::Message, Outcome) {
    let event = match Envelope::<CodeRedeemed>::from_slice(&msg.payload) {
        Ok(e) => e,
        Err(e) => return (msg, Outcome::Poison(e.to_string())),
    };
    if event.data.currency != app.currency() {
        let why = format!(
            "event in {} on a {} ledger",
            event.data.currency,
            app.currency()
        );
        return (msg, Outcome::Poison(why));
    }
    let Ok(phone) = Phone::parse(&event.data.phone, app.region()) else {
        return (
            msg,
            Outcome::Poison(format!("bad phone in event {}", event.id)),
        );
    };
    if shared_events::Amount::new(event.data.amount).is_none() {
        return (
            msg,
            Outcome::Poison(format!("bad amount in event {}", event.id)),
        );
    }
    let notice = match app.apply_redemption(&event, &phone).await {
        Ok(n) => n,
        Err(e) => return (msg, Outcome::Retry(e.to_string())),
    };
    if app.crash_after_commit() {
        tracing::error!("fault injection: exiting after commit, before ack");
        std::process::exit(70);
    }
    let inbox = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(REPLY_INBOX_HEADER))
        .map(|v| v.as_str().to_owned());
    if let (Some(inbox), Ok(body)) = (inbox, serde_json::to_vec(&notice)) {
        // Best effort: the caller may have given up; the credit stands anyway.
        if let Err(e) = client.publish(inbox, body.into()).await {
            tracing::debug!(error = %e, "credit notice not sent");
        }
    }
    (msg, Outcome::Done)
}

/// The permanent idempotency key of a redemption's credit.
fn credit_key(redemption_id: uuid::Uuid) -> String {
    format!("redemption:{redemption_id}")
}

impl App {
    /// The credit of one redemption, if it has been made: lets the gateway
    /// answer a replayed or polled redemption from the ledger itself, without
    /// waiting for giftcode-svc to hear of the credit.
    pub async fn redemption_credit(&self, redemption_id: uuid::Uuid) -> Result<CreditNotice> {
        let mut conn = self.db().read().acquire().await?;
        let t = ledger::find_by_key(&mut conn, &credit_key(redemption_id))
            .await?
            .ok_or(Error::CreditNotFound)?;
        let phone = t
            .credit_account
            .strip_prefix("user:")
            .ok_or_else(|| Error::Ledger(format!("credit {} not to a wallet", t.id)))?;
        Ok(CreditNotice {
            redemption_id,
            transaction_id: t.id,
            credited_at: svc_kit::time::from_micros(t.created_at),
            phone: phone.to_owned(),
            balance: t.credit_balance_after,
            currency: self.currency().to_owned(),
        })
    }

    /// Applies one `code.redeemed` event exactly once; returns the credit.
    pub async fn apply_redemption(
        &self,
        event: &Envelope<CodeRedeemed>,
        phone: &Phone,
    ) -> Result<CreditNotice> {
        let d = &event.data;
        let key = credit_key(d.redemption_id);
        let account = user_account(phone.as_str());
        let notice = |t: &ledger::Transfer| CreditNotice {
            redemption_id: d.redemption_id,
            transaction_id: t.id,
            credited_at: svc_kit::time::from_micros(t.created_at),
            phone: phone.to_string(),
            balance: t.credit_balance_after,
            currency: self.currency().to_owned(),
        };
        let now = now_micros();
        let mut tx = self.db().begin().await?;
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
            tx.rollback().await?;
            let mut conn = self.db().read().acquire().await?;
            let t = ledger::find_by_key(&mut conn, &key).await?.ok_or_else(|| {
                Error::Ledger(format!("event {} processed without its credit", event.id))
            })?;
            return Ok(notice(&t));
        }
        self.open_wallet(&mut tx, phone, now, event.correlation_id.clone())
            .await?;
        let funding = funding_account(d.group_id);
        ledger::ensure_account(
            &mut tx,
            &funding,
            "group_funding",
            None,
            self.currency(),
            now,
        )
        .await?;
        let reference = d.redemption_id.to_string();
        let posting = Posting {
            debit: &funding,
            credit: &account,
            amount: d.amount,
            kind: TransactionKind::GiftCodeRedemption,
            reference: &reference,
            description: Some(d.code_hint.as_str()),
            key: &key,
            fingerprint: &reference,
        };
        let transfer = match ledger::post(&mut tx, &posting, now).await {
            Ok(t) => t,
            // The same redemption under another event id: credited already.
            // Keep the new event id recorded so it is not examined again.
            Err(PostError::Duplicate(t)) => {
                tx.commit().await?;
                return Ok(notice(&t));
            }
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
        };
        let credited = Envelope::new(
            crate::SOURCE,
            event.correlation_id.clone(),
            WalletCredited {
                transaction_id: transfer.id,
                phone: phone.to_string(),
                amount: d.amount,
                currency: self.currency().to_owned(),
                balance_after: transfer.credit_balance_after,
                cause: Cause {
                    kind: TransactionKind::GiftCodeRedemption.as_str().to_owned(),
                    id: reference.clone(),
                },
            },
        );
        outbox::enqueue(&mut tx, &credited).await?;
        tx.commit().await?;
        self.wake_outbox();
        Ok(notice(&transfer))
    }
}
