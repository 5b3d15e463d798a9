//! Consumes `giftcode.events.code.redeemed` (DESIGN.md §7 step 3): every event
//! of a fetched batch is credited in one transaction (one commit for the lot,
//! the big saving under load; see `crate::redemptions`); if that fails, each
//! is applied alone, so one that cannot be applied does not hold back the
//! others. Only after the commit are the messages acked (by the consumer loop)
//! and the credit notices sent to the callers' inboxes.
//!
//! An event that cannot be decoded (a bad phone or amount fails at the type)
//! or is in another currency can never be applied: it is terminated and
//! logged, not redelivered forever.

use async_nats::{Client, jetstream};
use shared_events::{
    Envelope, events::CodeRedeemed, giftcode::RedeemInbox, subjects::REPLY_INBOX_HEADER,
    wallet::CreditNotice,
};
use svc_kit::{HasKit, consumer::Outcome};

use crate::{
    App,
    error::{Error, Result},
};

pub async fn handle(
    app: App,
    client: Client,
    msgs: Vec<jetstream::Message>,
) -> Vec<(jetstream::Message, Outcome)> {
    let mut done = Vec::with_capacity(msgs.len());
    let mut ready = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match decode(&app, &msg.payload) {
            Ok(event) => ready.push((msg, event)),
            Err(why) => done.push((msg, Outcome::Poison(why))),
        }
    }
    let notices = apply(&app, &ready).await;
    #[cfg(feature = "fault-injection")]
    if app.crash_after_commit() && notices.iter().any(Result::is_ok) {
        tracing::error!("fault injection: exiting after commit, before ack");
        std::process::exit(70);
    }
    for ((msg, _), notice) in ready.into_iter().zip(notices) {
        match notice {
            Ok(n) => {
                notify(&client, &msg, n).await;
                done.push((msg, Outcome::Done));
            }
            Err(e) => done.push((msg, Outcome::Retry(e.to_string()))),
        }
    }
    done
}

/// The event, or why it can never be applied.
fn decode(app: &App, payload: &[u8]) -> std::result::Result<Envelope<CodeRedeemed>, String> {
    let event = Envelope::<CodeRedeemed>::from_slice(payload).map_err(|e| e.to_string())?;
    if &event.data.currency != app.currency() {
        return Err(format!(
            "event {} in {} on a {} ledger",
            event.id,
            event.data.currency,
            app.currency()
        ));
    }
    Ok(event)
}

/// The credit of each event: all in one transaction, or one by one if that
/// fails.
async fn apply(
    app: &App,
    ready: &[(jetstream::Message, Envelope<CodeRedeemed>)],
) -> Vec<Result<CreditNotice>> {
    if ready.is_empty() {
        return Vec::new();
    }
    let all: Vec<_> = ready.iter().map(|(_, e)| e).collect();
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

/// Sends the credit notice to the inbox the event names, if any. Best
/// effort: the caller may have given up; the credit stands anyway.
async fn notify(client: &Client, msg: &jetstream::Message, notice: CreditNotice) {
    let Some(inbox) = msg
        .headers
        .as_ref()
        .and_then(|h| h.get(REPLY_INBOX_HEADER))
        .map(|v| v.as_str().to_owned())
    else {
        return;
    };
    match serde_json::to_vec(&RedeemInbox::Credited(notice)) {
        Ok(body) => {
            if let Err(e) = client.publish(inbox, body.into()).await {
                tracing::debug!(error = %e, "credit notice not sent");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot encode a credit notice"),
    }
}
