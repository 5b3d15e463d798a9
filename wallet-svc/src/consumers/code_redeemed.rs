//! Consumes `giftcode.events.code.redeemed` (DESIGN.md §7 step 3): every event
//! of a batch that arrived is credited at once, each its own write, so they join
//! one group commit of the database (one fsync for the lot, the big saving
//! under load) and one that cannot be applied does not hold back the others
//! (see `crate::redemptions`). Only after the commit are the messages acked
//! (by the consumer loop) and the credit notices sent to the callers'
//! inboxes.
//!
//! An event that cannot be decoded (a bad phone or amount fails at the type)
//! or is in another currency can never be applied: it is terminated and
//! logged, not redelivered forever.

use async_nats::{Client, jetstream};
use futures::future::join_all;
use shared_events::{
    Envelope, events::CodeRedeemed, giftcode::RedeemInbox, subjects::REPLY_INBOX_HEADER,
    wallet::CreditNotice,
};
use svc_kit::{HasKit, consumer::Outcome};

use crate::App;

pub async fn handle(
    app: App,
    client: Client,
    msgs: Vec<jetstream::Message>,
) -> Vec<(jetstream::Message, Outcome)> {
    let mut done = Vec::with_capacity(msgs.len());
    let mut ready = Vec::with_capacity(msgs.len());
    let mut credits = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match decode(&app, &msg.payload) {
            Ok(event) => {
                credits.push(app.apply_redemption(event));
                ready.push(msg);
            }
            Err(why) => done.push((msg, Outcome::Poison(why))),
        }
    }
    let notices = join_all(credits).await;
    #[cfg(feature = "fault-injection")]
    if app.crash_after_commit() && notices.iter().any(Result::is_ok) {
        tracing::error!("fault injection: exiting after commit, before ack");
        std::process::exit(70);
    }
    for (msg, notice) in ready.into_iter().zip(notices) {
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
