//! Reversals (DESIGN.md §12): undoing a credited redemption, as a saga over
//! the bus in the style of the redeem.
//!
//! 1. `giftcode.redemptions.reverse` records the attempt on the redemption
//!    (`reversal_status = 'pending'`, a new `reversal_attempt`) and its
//!    `redemption.reversal_requested` event in one transaction. The caller's
//!    inbox travels with the event, as a redeem's does.
//! 2. wallet-svc moves the money back under the permanent key
//!    `reversal:<redemption id>` (so at most one reversal ever moves money),
//!    or refuses, and says which with `wallet.reversed` /
//!    `wallet.reversal_refused`.
//! 3. [`crate::consumers`] applies the outcome here: `reversed` completes the
//!    reversal (the redemption becomes `reversed`, the group counts it out,
//!    and with `release_code` the code, the cap's slot and the phone's count
//!    are freed); `reversal_refused` marks the attempt refused, which leaves
//!    nothing behind, so it may be asked again.
//!
//! Every step is idempotent by a durable key: the Idempotency-Key
//! (`reversal_keys`), the attempt id (the event's id), the ledger's key, and
//! guarded updates here. A pending attempt whose outcome is not seen in
//! `REDRIVE_AFTER` has its event published again ([`App::redrive_reversals`]).

use std::time::Duration;

use shared_events::{
    Envelope, ErrorCode,
    endpoint::wallet as wl,
    events::{ReversalRequested, WalletReversalRefused, WalletReversed},
    giftcode::{RedemptionStatus, ReversalStatus, ReverseReply, ReverseRequest},
    subjects::REPLY_INBOX_HEADER,
    wallet::RedemptionCreditRequest,
};
use svc_kit::{
    HasKit,
    db::{Conn, Row, query},
    endpoints::Ctx,
    nats::{CallError, client::ServiceClient},
    outbox,
    runtime::Redriven,
    time::{from_micros, now_micros, to_micros},
};
use uuid::Uuid;

use crate::{
    App,
    error::{Error, Result},
};

/// How long asking the ledger about a redemption's credit may take.
const ASK_LEDGER: Duration = Duration::from_secs(5);

impl App {
    /// Records a reversal attempt of a credited redemption and asks the
    /// ledger for it (step 1); or answers with the reversal already done or
    /// under way.
    pub async fn reverse(&self, req: ReverseRequest, ctx: Ctx) -> Result<ReverseReply> {
        let reason = req.reason.trim().to_owned();
        if reason.is_empty() || reason.chars().count() > ReverseRequest::MAX_REASON {
            return Err(Error::validation("reason", "1–500 characters"));
        }
        let fingerprint = format!("{}|{}|{reason}", req.redemption_id, req.release_code);
        let key = req.idempotency_key.as_str().to_owned();
        if let Some(row) = query("SELECT fingerprint FROM reversal_keys WHERE key = $1")
            .bind(&key)
            .fetch_optional(self.db())
            .await?
            && row.get::<String>("fingerprint")? != fingerprint
        {
            return Err(Error::IdempotencyConflict);
        }
        let mut redemption = self.get_redemption(req.redemption_id).await?;
        if let Some(r) = &redemption.reversal
            && matches!(r.status, ReversalStatus::Done | ReversalStatus::Pending)
        {
            return Ok(ReverseReply {
                redemption,
                replayed: true,
            });
        }
        if redemption.status == RedemptionStatus::Pending {
            // The ledger may have credited it already and the settling round
            // not have heard yet: ask it now rather than refuse.
            self.settle_one(&ctx, &redemption).await?;
            redemption = self.get_redemption(req.redemption_id).await?;
        }
        let attempt = Uuid::now_v7();
        let now = now_micros();
        let event = Envelope::again(
            attempt,
            from_micros(now),
            crate::SOURCE,
            ctx.request_id.clone(),
            ReversalRequested {
                attempt_id: attempt,
                redemption_id: redemption.id,
                group_id: redemption.group_id,
                phone: redemption.phone.clone(),
                amount: redemption.amount,
                currency: redemption.currency.clone(),
                reason: reason.clone(),
                release_code: req.release_code,
                requested_at: from_micros(now),
            },
        );
        let inbox = ctx.reply_to.clone();
        let started = self
            .db()
            .write(move |tx| {
                Box::pin(async move {
                    let fresh = query(
                        "INSERT INTO reversal_keys (key, redemption_id, fingerprint) \
                         VALUES ($1, $2, $3) ON CONFLICT (key) DO NOTHING",
                    )
                    .bind(&key)
                    .bind(event.data.redemption_id.to_string())
                    .bind(&fingerprint)
                    .execute(&mut *tx)
                    .await?;
                    if fresh == 0 {
                        let used: String =
                            query("SELECT fingerprint FROM reversal_keys WHERE key = $1")
                                .bind(&key)
                                .fetch_one(&mut *tx)
                                .await?
                                .get("fingerprint")?;
                        if used != fingerprint {
                            return Err(Error::IdempotencyConflict);
                        }
                    }
                    // Only a credited redemption with no reversal done or
                    // under way starts one (a refused one may start again).
                    let started = query(
                        "UPDATE redemptions SET reversal_attempt = $1, reversal_status = 'pending', \
                         reversal_reason = $2, reversal_release = $3, reversal_requested_at = $4, \
                         reversal_completed_at = NULL, reversal_transaction_id = NULL \
                         WHERE id = $5 AND status = 'credited' \
                         AND (reversal_status IS NULL OR reversal_status = 'refused')",
                    )
                    .bind(attempt.to_string())
                    .bind(&event.data.reason)
                    .bind(event.data.release_code)
                    .bind(now)
                    .bind(event.data.redemption_id.to_string())
                    .execute(&mut *tx)
                    .await?;
                    if started == 0 {
                        return Ok(false);
                    }
                    let headers: Vec<(&str, &str)> = inbox
                        .as_deref()
                        .map(|i| vec![(REPLY_INBOX_HEADER, i)])
                        .unwrap_or_default();
                    outbox::enqueue_with_headers(tx, &event, &headers).await?;
                    Ok(true)
                })
            })
            .await?;
        let redemption = self.get_redemption(req.redemption_id).await?;
        if !started && redemption.status == RedemptionStatus::Pending {
            return Err(Error::RedemptionNotCredited);
        }
        if started {
            tracing::info!(redemption_id = %redemption.id, %attempt, "reversal requested");
        }
        Ok(ReverseReply {
            redemption,
            replayed: !started,
        })
    }

    /// Marks a pending redemption credited if the ledger says it is.
    async fn settle_one(&self, ctx: &Ctx, r: &shared_events::giftcode::Redemption) -> Result<()> {
        let wallet = ServiceClient::new(ctx.client.clone(), ASK_LEDGER);
        let req = RedemptionCreditRequest {
            redemption_id: r.id,
        };
        let credit = match wallet.request::<wl::RedemptionsGet>(&req, None).await {
            Ok(c) => c,
            // The ledger has no credit of it (yet).
            Err(CallError::Service(e)) if e.code == ErrorCode::NotFound => {
                return Err(Error::RedemptionNotCredited);
            }
            // It cannot say: the credit is not confirmed, which is what
            // `redemption_not_credited` means (DESIGN §12); nothing is
            // recorded and the caller may retry.
            Err(e) => {
                tracing::warn!(redemption_id = %r.id, error = %e, "cannot ask the ledger about a credit");
                return Err(Error::RedemptionNotCredited);
            }
        };
        let id = r.id.to_string();
        self.db()
            .write(move |tx| {
                Box::pin(async move {
                    query(
                        "UPDATE redemptions SET status = 'credited', credited_at = $1, \
                         transaction_id = $2 WHERE id = $3 AND status = 'pending'",
                    )
                    .bind(to_micros(credit.credited_at))
                    .bind(credit.transaction_id.to_string())
                    .bind(id)
                    .execute(tx)
                    .await?;
                    Ok::<_, Error>(())
                })
            })
            .await
    }

    /// Step 3, money moved: the reversal is done. Applied once, whichever
    /// attempt moved the money (its `release_code` is the one that counts).
    pub async fn reversal_done(&self, event: Envelope<WalletReversed>) -> Result<()> {
        self.db()
            .write(move |tx| Box::pin(async move { complete(tx, &event.data).await }))
            .await
    }

    /// Step 3, refused: the attempt ends, leaving nothing behind.
    pub async fn reversal_refused(&self, event: Envelope<WalletReversalRefused>) -> Result<()> {
        let d = event.data;
        self.db()
            .write(move |tx| {
                Box::pin(async move {
                    query(
                        "UPDATE redemptions SET reversal_status = 'refused', \
                         reversal_completed_at = $1 WHERE id = $2 AND reversal_attempt = $3 \
                         AND reversal_status = 'pending'",
                    )
                    .bind(to_micros(d.refused_at))
                    .bind(d.redemption_id.to_string())
                    .bind(d.attempt_id.to_string())
                    .execute(tx)
                    .await?;
                    Ok::<_, Error>(())
                })
            })
            .await
    }

    /// Publishes again the `reversal_requested` of every attempt pending for
    /// longer than `after` (same id: the attempt's).
    pub async fn redrive_reversals(&self, after: Duration) -> Result<Redriven> {
        let cutoff = now_micros() - i64::try_from(after.as_micros()).unwrap_or(i64::MAX);
        let rows = query(
            "SELECT id, group_id, phone, amount, currency, correlation_id, reversal_attempt, \
             reversal_reason, reversal_release, reversal_requested_at FROM redemptions \
             WHERE reversal_status = 'pending' AND reversal_requested_at < $1 \
             ORDER BY reversal_requested_at LIMIT 2000",
        )
        .bind(cutoff)
        .fetch_all(self.db())
        .await?;
        let overdue = rows.len();
        let republished = self
            .db()
            .write(move |tx| {
                Box::pin(async move {
                    let mut n = 0;
                    for row in &rows {
                        if outbox::resend(tx, &requested_again(row)?, cutoff).await? {
                            n += 1;
                        }
                    }
                    Ok::<_, Error>(n)
                })
            })
            .await?;
        Ok(Redriven {
            overdue,
            republished,
        })
    }
}

/// The `reversal_requested` of a pending attempt, rebuilt from its row.
fn requested_again(row: &Row) -> Result<Envelope<ReversalRequested>> {
    let attempt: Uuid = row.parsed("reversal_attempt")?;
    let at = from_micros(row.get("reversal_requested_at")?);
    Ok(Envelope::again(
        attempt,
        at,
        crate::SOURCE,
        row.get("correlation_id")?,
        ReversalRequested {
            attempt_id: attempt,
            redemption_id: row.parsed("id")?,
            group_id: row.parsed("group_id")?,
            phone: row.parsed("phone")?,
            amount: row.amount("amount")?,
            currency: row.parsed("currency")?,
            reason: row
                .get::<Option<String>>("reversal_reason")?
                .unwrap_or_default(),
            release_code: row.get::<Option<i64>>("reversal_release")?.unwrap_or(0) != 0,
            requested_at: at,
        },
    ))
}

/// Completes a reversal in the caller's transaction: the redemption, the
/// group's counts and, with `release_code`, the code, its cap's slot and the
/// phone's count. Nothing happens for a reversal already completed.
async fn complete(tx: &mut Conn, d: &WalletReversed) -> Result<()> {
    let now = now_micros();
    let id = d.redemption_id.to_string();
    let Some(row) = query("SELECT group_id, code_id, phone FROM redemptions WHERE id = $1")
        .bind(&id)
        .fetch_optional(&mut *tx)
        .await?
    else {
        return Err(Error::Internal(format!(
            "a reversal of redemption {id}, which is not recorded"
        )));
    };
    let done = query(
        "UPDATE redemptions SET status = 'reversed', reversal_status = 'done', \
         reversal_attempt = $1, reversal_release = $2, reversal_completed_at = $3, \
         reversal_transaction_id = $4, \
         reversal_requested_at = COALESCE(reversal_requested_at, $3), \
         reversal_reason = COALESCE(reversal_reason, ''), \
         released_at = CASE WHEN $2 = 1 THEN $5 ELSE NULL END \
         WHERE id = $6 AND status <> 'reversed'",
    )
    .bind(d.attempt_id.to_string())
    .bind(i64::from(d.release_code))
    .bind(to_micros(d.reversed_at))
    .bind(d.transaction_id.to_string())
    .bind(now)
    .bind(&id)
    .execute(&mut *tx)
    .await?;
    if done == 0 {
        return Ok(());
    }
    let (group_id, code_id, phone): (String, String, String) =
        (row.get("group_id")?, row.get("code_id")?, row.get("phone")?);
    query(
        "UPDATE groups SET reversed = reversed + 1, released = released + $1, updated_at = $2 \
         WHERE id = $3",
    )
    .bind(i64::from(d.release_code))
    .bind(now)
    .bind(&group_id)
    .execute(&mut *tx)
    .await?;
    if d.release_code {
        // A unique code forgets who redeemed it; a shared one gives back a
        // slot of its cap. The phone's count in the group goes down by one.
        query(
            "UPDATE codes SET redemption_count = redemption_count - 1, redeemed_by = NULL, \
             redeemed_at = CASE WHEN redemption_count = 1 THEN NULL ELSE redeemed_at END \
             WHERE group_id = $1 AND id = $2 AND redemption_count > 0",
        )
        .bind(&group_id)
        .bind(&code_id)
        .execute(&mut *tx)
        .await?;
        query("UPDATE phone_counts SET n = n - 1 WHERE group_id = $1 AND phone = $2 AND n > 0")
            .bind(&group_id)
            .bind(&phone)
            .execute(&mut *tx)
            .await?;
    }
    tracing::info!(redemption_id = %id, release = d.release_code, "reversal done");
    Ok(())
}
