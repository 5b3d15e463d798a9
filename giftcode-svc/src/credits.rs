//! Marking redemptions credited (DESIGN.md §7 step 4): a durable pull consumer
//! reads `wallet.events.wallet.credited` and, for credits caused by a gift-code
//! redemption, sets the redemption `credited` with the wallet's transaction id.
//! The update is guarded on `status = 'pending'`, so a redelivery changes
//! nothing.

use async_nats::jetstream;
use shared_events::{Envelope, events::WalletCredited};
use svc_kit::{consumer::Outcome, time::now_micros};

use crate::App;

pub async fn handle(app: App, msg: jetstream::Message) -> (jetstream::Message, Outcome) {
    let event = match Envelope::<WalletCredited>::from_slice(&msg.payload) {
        Ok(e) => e,
        Err(e) => return (msg, Outcome::Poison(e.to_string())),
    };
    if event.data.cause.kind != "gift_code_redemption" {
        return (msg, Outcome::Done);
    }
    match app.mark_credited(&event.data).await {
        Ok(()) => (msg, Outcome::Done),
        Err(e) => (msg, Outcome::Retry(e.to_string())),
    }
}

impl App {
    pub async fn mark_credited(&self, credit: &WalletCredited) -> Result<(), sqlx::Error> {
        let mut tx = self.db().begin().await?;
        sqlx::query(
            "UPDATE redemptions SET status = 'credited', credited_at = $1, transaction_id = $2 \
             WHERE id = $3 AND status = 'pending'",
        )
        .bind(now_micros())
        .bind(credit.transaction_id.to_string())
        .bind(&credit.cause.id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }
}
