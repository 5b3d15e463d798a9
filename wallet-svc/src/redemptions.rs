//! Crediting gift-code redemptions (DESIGN.md §7 step 3). A durable pull
//! consumer reads `giftcode.events.code.redeemed`; each event records its id,
//! opens the wallet if needed, and moves the amount from the group's funding
//! account to the wallet under the permanent key `redemption:<id>`, with its
//! `wallet.credited` event. The events of one fetch share one transaction (one
//! commit for the lot, the big saving under load); only after it commits are
//! they acked. If the shared transaction fails, each event is applied alone,
//! so one that cannot be applied does not hold back the others.
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

/// A message checked and ready to apply.
struct Ready {
    msg: jetstream::Message,
    event: Envelope<CodeRedeemed>,
    phone: Phone,
}

/// Handles one fetched batch. Every well-formed event is applied in one
/// transaction (one commit for the lot); if that fails, each is applied on its
/// own, so one bad event cannot hold the others back. Only after the commit
/// are the messages acked (by the consumer loop) and the notices sent.
pub async fn handle(
    app: App,
    client: async_nats::Client,
    msgs: Vec<jetstream::Message>,
) -> Vec<(jetstream::Message, Outcome)> {
    let mut done = Vec::with_capacity(msgs.len());
    let mut ready = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match check(&app, &msg.payload) {
            Ok((event, phone)) => ready.push(Ready { msg, event, phone }),
            Err(why) => done.push((msg, Outcome::Poison(why))),
        }
    }
    let notices = apply(&app, &ready).await;
    if app.crash_after_commit() && notices.iter().any(Result::is_ok) {
        tracing::error!("fault injection: exiting after commit, before ack");
        std::process::exit(70);
    }
    for (r, notice) in ready.into_iter().zip(notices) {
        let notice = match notice {
            Ok(n) => n,
            Err(e) => {
                done.push((r.msg, Outcome::Retry(e.to_string())));
                continue;
            }
        };
        let inbox = r
            .msg
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
        done.push((r.msg, Outcome::Done));
    }
    done
}

/// The credit of each ready event, or why it must be retried: all in one
/// transaction, or one by one if that fails.
async fn apply(app: &App, ready: &[Ready]) -> Vec<Result<CreditNotice>> {
    if ready.is_empty() {
        return Vec::new();
    }
    let all: Vec<_> = ready.iter().map(|r| (&r.event, &r.phone)).collect();
    match app.apply_redemptions(&all).await {
        Ok(notices) => notices.into_iter().map(Ok).collect(),
        Err(e) if ready.len() == 1 => vec![Err(e)],
        Err(e) => {
            tracing::debug!(error = %e, events = ready.len(), "batch failed; applying one by one");
            let mut each = Vec::with_capacity(ready.len());
            for one in all {
                let notice = app.apply_redemptions(&[one]).await.and_then(|mut n| {
                    n.pop()
                        .ok_or_else(|| Error::Ledger("an event without its credit".into()))
                });
                each.push(notice);
            }
            each
        }
    }
}

/// An event that can never be applied is poison: the reason why.
fn check(
    app: &App,
    payload: &[u8],
) -> std::result::Result<(Envelope<CodeRedeemed>, Phone), String> {
    let event = Envelope::<CodeRedeemed>::from_slice(payload).map_err(|e| e.to_string())?;
    if event.data.currency != app.currency() {
        return Err(format!(
            "event in {} on a {} ledger",
            event.data.currency,
            app.currency()
        ));
    }
    let Ok(phone) = Phone::parse(&event.data.phone, app.region()) else {
        return Err(format!("bad phone in event {}", event.id));
    };
    if shared_events::Amount::new(event.data.amount).is_none() {
        return Err(format!("bad amount in event {}", event.id));
    }
    Ok((event, phone))
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

    /// Applies `code.redeemed` events exactly once each, all in one
    /// transaction; returns their credits in order. Any error rolls all of
    /// them back.
    pub async fn apply_redemptions(
        &self,
        events: &[(&Envelope<CodeRedeemed>, &Phone)],
    ) -> Result<Vec<CreditNotice>> {
        let mut tx = self.db().begin().await?;
        let mut notices = Vec::with_capacity(events.len());
        let mut credited = false;
        // The funding accounts this transaction has made sure of: a batch
        // mostly credits codes of a few groups.
        let mut funded = std::collections::HashSet::new();
        for (event, phone) in events {
            let (notice, new) = self.apply_one(&mut tx, event, phone, &mut funded).await?;
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
        phone: &Phone,
        funded: &mut std::collections::HashSet<uuid::Uuid>,
    ) -> Result<(CreditNotice, bool)> {
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
            return Ok((notice(&t), false));
        }
        self.open_wallet(tx, phone, now, event.correlation_id.clone())
            .await?;
        let funding = funding_account(d.group_id);
        if funded.insert(d.group_id) {
            ledger::ensure_account(tx, &funding, "group_funding", None, self.currency(), now)
                .await?;
        }
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
        let transfer = match ledger::post(tx, &posting, now).await {
            Ok(t) => t,
            // The same redemption under another event id: credited already.
            // The new event id stays recorded so it is not examined again.
            Err(PostError::Duplicate(t)) => return Ok((notice(&t), false)),
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
        outbox::enqueue(tx, &credited).await?;
        Ok((notice(&transfer), true))
    }
}
