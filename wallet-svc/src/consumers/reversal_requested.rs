//! Consumes `giftcode.events.redemption.reversal_requested` (DESIGN.md §12
//! step 2): each request is one write (or two: a refusal is written after
//! the posting's savepoint rolled back), acked after it commits; then the
//! outcome goes to the inbox the event names, the admin's waiting request.
//! An event that cannot be read is terminated and logged.

use async_nats::{Client, jetstream};
use futures::future::join_all;
use shared_events::{
    Envelope, events::ReversalRequested, giftcode::ReverseInbox, subjects::REPLY_INBOX_HEADER,
};
use svc_kit::{HasKit, consumer::Outcome};

use crate::App;

pub async fn handle(
    app: App,
    client: Client,
    msgs: Vec<jetstream::Message>,
) -> Vec<(jetstream::Message, Outcome)> {
    let work = msgs.iter().map(|msg| {
        let (app, client) = (app.clone(), client.clone());
        async move {
            let event = match Envelope::<ReversalRequested>::from_slice(&msg.payload) {
                Ok(e) if &e.data.currency == app.currency() => e,
                Ok(e) => {
                    return Outcome::Poison(format!("reversal {} in {}", e.id, e.data.currency));
                }
                Err(e) => return Outcome::Poison(e.to_string()),
            };
            match app.apply_reversal(event).await {
                Ok(notice) => {
                    let inbox = msg
                        .headers
                        .as_ref()
                        .and_then(|h| h.get(REPLY_INBOX_HEADER))
                        .map(|v| v.as_str().to_owned());
                    if let Some(inbox) = inbox
                        && let Ok(body) = serde_json::to_vec(&ReverseInbox::Outcome(notice))
                        && let Err(e) = client.publish(inbox, body.into()).await
                    {
                        tracing::debug!(error = %e, "reversal notice not sent");
                    }
                    Outcome::Done
                }
                Err(e) => Outcome::Retry(e.to_string()),
            }
        }
    });
    let outcomes = join_all(work).await;
    msgs.into_iter().zip(outcomes).collect()
}
