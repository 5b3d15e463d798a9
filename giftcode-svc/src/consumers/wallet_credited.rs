//! Consumes `wallet.events.wallet.credited` (DESIGN.md §7 step 4): for a credit
//! caused by a gift-code redemption, the redemption becomes `credited` with the
//! wallet's transaction id. The update is guarded on `status = 'pending'`, so
//! a redelivery changes nothing. A fetched batch is marked in one transaction
//! (one commit for the lot); if that fails, each is tried on its own. Credits
//! of other causes (admin credits, causes newer than this build) are acked
//! and passed over.

use async_nats::jetstream;
use shared_events::{
    Envelope, RedemptionId, TransactionId,
    events::{Cause, WalletCredited},
};
use svc_kit::{HasKit, consumer::Outcome, db::query, time::now_micros};

use crate::{App, Result};

pub async fn handle(app: App, msgs: Vec<jetstream::Message>) -> Vec<(jetstream::Message, Outcome)> {
    let mut done = Vec::with_capacity(msgs.len());
    let mut marks = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match Envelope::<WalletCredited>::from_slice(&msg.payload) {
            Err(e) => done.push((msg, Outcome::Poison(e.to_string()))),
            Ok(e) => match e.data.cause {
                Cause::GiftCodeRedemption(redemption) => {
                    marks.push((msg, (redemption, e.data.transaction_id)));
                }
                _ => done.push((msg, Outcome::Done)),
            },
        }
    }
    let credits: Vec<_> = marks.iter().map(|(_, c)| *c).collect();
    if credits.is_empty() || app.mark_credited(&credits).await.is_ok() {
        done.extend(marks.into_iter().map(|(msg, _)| (msg, Outcome::Done)));
        return done;
    }
    for (msg, credit) in marks {
        let outcome = match app.mark_credited(&[credit]).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Retry(e.to_string()),
        };
        done.push((msg, outcome));
    }
    done
}

impl App {
    /// Marks the redemptions credited by these transactions, in one
    /// transaction.
    pub async fn mark_credited(&self, credits: &[(RedemptionId, TransactionId)]) -> Result<()> {
        let credits = credits.to_vec();
        let now = now_micros();
        self.db()
            .write(move |tx| {
                Box::pin(async move {
                    for (redemption, transaction) in credits {
                        query(
                            "UPDATE redemptions SET status = 'credited', credited_at = $1, \
                             transaction_id = $2 WHERE id = $3 AND status = 'pending'",
                        )
                        .bind(now)
                        .bind(transaction.to_string())
                        .bind(redemption.to_string())
                        .execute(tx)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }
}
