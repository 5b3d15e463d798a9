//! Settling redemptions (DESIGN.md §7 step 4): a redemption recorded
//! `pending` becomes `credited`, with the wallet's transaction id, once the
//! ledger has credited it.
//!
//! giftcode-svc asks the ledger (`wallet.redemptions.credited`) about the
//! redemptions it still calls pending, a thousand at a time, every second,
//! rather than consuming every `wallet.credited`: one request settles a
//! thousand credits, where the consumer cost a delivery and an ack per
//! credit on the broker and a decode and a write here (BENCHMARKS.md). The
//! ledger is the authority either way: the gateway answers a pending
//! redemption from it, so what callers see does not wait for this.
//!
//! Each round walks the pending redemptions older than [`SETTLE_AFTER`] in
//! `redeemed_at` order, up to [`PAGES`] pages, and carries on from there the
//! next second: a long backlog (wallet-svc down for a while) is walked
//! through without asking about all of it every second.

use std::time::Duration;

use shared_events::{
    RedemptionId,
    endpoint::wallet as wl,
    wallet::{Credit, CreditsQuery},
};
use svc_kit::{
    HasKit,
    db::query,
    nats::client::ServiceClient,
    time::{now_micros, to_micros},
};

use crate::{App, Error, Result};

/// How often a round runs.
pub const EVERY: Duration = Duration::from_secs(1);
/// How old a pending redemption must be to be asked about: its credit
/// normally comes within milliseconds, and the caller was told of it.
const SETTLE_AFTER: Duration = Duration::from_secs(1);
/// Pages asked about per round at most.
const PAGES: usize = 8;

impl App {
    /// One round: asks the ledger about pending redemptions and marks the
    /// credited ones. Stops at the first failure (wallet-svc away); the next
    /// round carries on from where this one stopped.
    pub async fn settle(&self, wallet: &ServiceClient) -> Result<()> {
        let cutoff = now_micros() - SETTLE_AFTER.as_micros() as i64;
        for _ in 0..PAGES {
            let after = self.settle_cursor();
            let rows = query(
                "SELECT id, redeemed_at FROM redemptions \
                 WHERE status = 'pending' AND redeemed_at > $1 AND redeemed_at < $2 \
                 ORDER BY redeemed_at LIMIT $3",
            )
            .bind(after)
            .bind(cutoff)
            .bind(CreditsQuery::MAX as i64)
            .fetch_all(self.db())
            .await?;
            let Some(last) = rows.last() else {
                self.set_settle_cursor(0);
                return Ok(());
            };
            let last_at: i64 = last.get("redeemed_at")?;
            let ids = rows
                .iter()
                .map(|r| r.parsed::<RedemptionId>("id"))
                .collect::<std::result::Result<Vec<_>, _>>()?;
            let full = ids.len() == CreditsQuery::MAX;
            let credits = wallet
                .request::<wl::RedemptionsCredited>(
                    &CreditsQuery {
                        redemption_ids: ids,
                    },
                    None,
                )
                .await
                .map_err(|e| Error::Internal(format!("asking the ledger: {e}")))?;
            self.mark_credited(credits.credits).await?;
            // A short page is the end: the next round starts over.
            self.set_settle_cursor(if full { last_at } else { 0 });
            if !full {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Marks these redemptions credited, in one write.
    pub async fn mark_credited(&self, credits: Vec<Credit>) -> Result<()> {
        if credits.is_empty() {
            return Ok(());
        }
        self.db()
            .write(move |tx| {
                Box::pin(async move {
                    for c in credits {
                        query(
                            "UPDATE redemptions SET status = 'credited', credited_at = $1, \
                             transaction_id = $2 WHERE id = $3 AND status = 'pending'",
                        )
                        .bind(to_micros(c.credited_at))
                        .bind(c.transaction_id.to_string())
                        .bind(c.redemption_id.to_string())
                        .execute(tx)
                        .await?;
                    }
                    Ok(())
                })
            })
            .await
    }
}
