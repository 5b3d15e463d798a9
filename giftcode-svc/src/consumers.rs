//! The events giftcode-svc consumes: the outcomes of reversals (DESIGN.md §12
//! step 4), `wallet.events.wallet.reversed` and
//! `wallet.events.wallet.reversal_refused`, one durable consumer each (a
//! consumer filters one subject) sharing this handler. Each outcome is one
//! write; the message is acked after it commits. An outcome that cannot be
//! read is terminated and logged, not redelivered forever.

use std::time::Duration;

use async_nats::{Client, jetstream};
use futures::future::join_all;
use shared_events::{
    Envelope,
    events::{WalletReversalRefused, WalletReversed},
    subjects::{WALLET_EVENTS_STREAM, events},
};
use svc_kit::consumer::{Outcome, Spec};

use crate::App;

/// The durable consumers, by the subject each reads.
pub const REVERSED_CONSUMER: &str = "giftcode-svc-reversed";
pub const REFUSED_CONSUMER: &str = "giftcode-svc-reversal-refused";

/// The consumer of one outcome subject.
pub fn spec(durable: &str, filter: &'static str) -> Spec {
    Spec {
        stream: WALLET_EVENTS_STREAM,
        durable: durable.to_owned(),
        filter,
        ack_wait: Duration::from_secs(30),
        batch: 64,
    }
}

pub async fn handle(
    app: App,
    _: Client,
    msgs: Vec<jetstream::Message>,
) -> Vec<(jetstream::Message, Outcome)> {
    let work = msgs.iter().map(|msg| {
        let app = app.clone();
        async move {
            let applied = match msg.subject.as_str() {
                events::WALLET_REVERSED => {
                    match Envelope::<WalletReversed>::from_slice(&msg.payload) {
                        Ok(e) => app.reversal_done(e).await,
                        Err(e) => return Outcome::Poison(e.to_string()),
                    }
                }
                events::WALLET_REVERSAL_REFUSED => {
                    match Envelope::<WalletReversalRefused>::from_slice(&msg.payload) {
                        Ok(e) => app.reversal_refused(e).await,
                        Err(e) => return Outcome::Poison(e.to_string()),
                    }
                }
                other => return Outcome::Poison(format!("unexpected subject {other}")),
            };
            match applied {
                Ok(()) => Outcome::Done,
                Err(e) => Outcome::Retry(e.to_string()),
            }
        }
    });
    let outcomes = join_all(work).await;
    msgs.into_iter().zip(outcomes).collect()
}
