//! Marking redemptions credited (DESIGN.md §7 step 4): a durable pull consumer
//! reads `wallet.events.wallet.credited` and, for credits caused by a gift-code
//! redemption, sets the redemption `credited` with the wallet's transaction id.
//! The update is guarded on `status = 'pending'`, so a redelivery changes
//! nothing. A fetched batch is marked in one transaction (one commit for the
//! lot); if that fails, each is tried on its own.

use async_nats::jetstream;
use shared_events::{Envelope, events::WalletCredited};
use svc_kit::{consumer::Outcome, time::now_micros};

use crate::App;

pub async fn handle(app: App, msgs: Vec<jetstream::Message>) -> Vec<(jetstream::Message, Outcome)> {
    let mut done = Vec::with_capacity(msgs.len());
    let mut marks = Vec::with_capacity(msgs.len());
    for msg in msgs {
        match Envelope::<WalletCredited>::from_slice(&msg.payload) {
            Err(e) => done.push((msg, Outcome::Poison(e.to_string()))),
            Ok(e) if e.data.cause.kind != "gift_code_redemption" => {
                done.push((msg, Outcome::Done));
            }
            Ok(e) => marks.push((msg, e.data)),
        }
    }
    let credits: Vec<&WalletCredited> = marks.iter().map(|(_, c)| c).collect();
    if credits.is_empty() || app.mark_credited(&credits).await.is_ok() {
        done.extend(marks.into_iter().map(|(msg, _)| (msg, Outcome::Done)));
        return done;
    }
    for (msg, credit) in marks {
        let outcome = match app.mark_credited(&[&credit]).await {
            Ok(()) => Outcome::Done,
            Err(e) => Outcome::Retry(e.to_string()),
        };
        done.push((msg, outcome));
    }
    done
}

impl App {
    /// Marks the redemptions of `credits` credited, in one transaction.
    pub async fn mark_credited(&self, credits: &[&WalletCredited]) -> Result<(), sqlx::Error> {
        let mut tx = self.db().begin().await?;
        let now = now_micros();
        for credit in credits {
            sqlx::query(
                "UPDATE redemptions SET status = 'credited', credited_at = $1, \
                 transaction_id = $2 WHERE id = $3 AND status = 'pending'",
            )
            .bind(now)
            .bind(credit.transaction_id.to_string())
            .bind(&credit.cause.id)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }
}
