//! Re-driving `code.redeemed` (issue 11). A redemption whose credit has not
//! been seen (still `pending`) for longer than `REDRIVE_AFTER` gets its event
//! published again with the same id: rebuilt from the redemption, which is
//! the book of record, so it does not matter whether the broker lost the
//! event, its stream or its consumer. wallet-svc applies a redemption once
//! whatever it is sent, and credits it if it had not; the redemption is then
//! marked credited here by the next settling round ([`crate::settle`]).
//!
//! Each event goes out again at most once per `REDRIVE_AFTER` (its outbox row
//! must have been sent before the cutoff), so a long outage downstream costs
//! one publish per redemption per period, most of them dropped by the
//! stream's duplicate window.

use std::time::Duration;

use shared_events::{Envelope, events::CodeRedeemed};
use svc_kit::{
    HasKit,
    db::{Conn, Row, query},
    outbox,
    runtime::Redriven,
    time::{from_micros, now_micros},
};
use uuid::Uuid;

use crate::{App, error::Result};

/// Redemptions looked at per round (the oldest first); the next round takes
/// the rest.
const ROUND: i64 = 2_000;
/// Redemptions per transaction.
const CHUNK: usize = 200;

impl App {
    /// Publishes again the `code.redeemed` of every redemption pending for
    /// longer than `after`.
    pub async fn redrive_redemptions(&self, after: Duration) -> Result<Redriven> {
        let cutoff = now_micros() - i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
        let rows = query(
            "SELECT id, group_id, code_id, code_hint, phone, amount, currency, redeemed_at, \
             correlation_id, event_id FROM redemptions \
             WHERE status = 'pending' AND redeemed_at < $1 ORDER BY redeemed_at LIMIT $2",
        )
        .bind(cutoff)
        .bind(ROUND)
        .fetch_all(self.db())
        .await?;
        let overdue = if rows.len() as i64 == ROUND {
            query(
                "SELECT COUNT(*) AS n FROM redemptions WHERE status = 'pending' AND redeemed_at < $1",
            )
            .bind(cutoff)
            .fetch_one(self.db())
            .await?
            .get::<i64>("n")? as usize
        } else {
            rows.len()
        };
        let mut republished = 0;
        for chunk in rows.chunks(CHUNK) {
            let chunk = chunk.to_vec();
            republished += self
                .db()
                .write(move |tx| Box::pin(async move { resend(tx, &chunk, cutoff).await }))
                .await?;
        }
        Ok(Redriven {
            overdue,
            republished,
        })
    }
}

/// Publishes again, in the caller's transaction, the `code.redeemed` of each
/// redemption of `rows` last sent before `cutoff`; how many will go out.
async fn resend(tx: &mut Conn, rows: &[Row], cutoff: i64) -> Result<usize> {
    let mut republished = 0;
    for row in rows {
        let id: String = row.get("id")?;
        // Redemptions made before event ids were kept get one now, kept for
        // the rounds to come.
        let event_id = match row.parsed_opt::<Uuid>("event_id")? {
            Some(e) => e,
            None => {
                let e = Uuid::now_v7();
                query("UPDATE redemptions SET event_id = $1 WHERE id = $2")
                    .bind(e.to_string())
                    .bind(&id)
                    .execute(tx)
                    .await?;
                e
            }
        };
        let redeemed_at = from_micros(row.get("redeemed_at")?);
        let event = Envelope::again(
            event_id,
            redeemed_at,
            crate::SOURCE,
            row.get("correlation_id")?,
            CodeRedeemed {
                redemption_id: row.parsed("id")?,
                group_id: row.parsed("group_id")?,
                code_id: row.parsed("code_id")?,
                code_hint: row.get("code_hint")?,
                phone: row.parsed("phone")?,
                amount: row.amount("amount")?,
                currency: row.parsed("currency")?,
                redeemed_at,
            },
        );
        if outbox::resend(tx, &event, cutoff).await? {
            republished += 1;
        }
    }
    Ok(republished)
}
