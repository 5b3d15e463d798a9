//! The guarded writes of one redemption (DESIGN.md §7 step 2), run inside the
//! group commit's transaction. The facts that must never be exceeded are
//! enforced here by the database, so no interleaving of concurrent requests
//! can break them:
//! - the unique index `redemptions_held (code_id, phone) WHERE released_at IS
//!   NULL`: a phone holds a code at most once (a reversal that releases the
//!   code lets it redeem again, as a new redemption);
//! - `UPDATE codes … WHERE redemption_count < cap`: a unique code is redeemed
//!   once, a shared code by at most `max_redemptions` phones;
//! - a guarded upsert of `phone_counts`: the per-phone limit of a unique group.
//!
//! The redemption and its `code.redeemed` event commit together (the outbox).

use shared_events::{
    Envelope, events::CodeRedeemed, giftcode::GroupKind, giftcode::Redemption,
    subjects::REPLY_INBOX_HEADER,
};
use svc_kit::{
    db::{Conn, SqlError, query},
    outbox,
};

use super::Target;
use crate::error::Error;

/// Why a redemption's writes were rolled back.
#[derive(Debug)]
pub enum Refusal {
    /// The phone already redeemed this code (a concurrent request won).
    Replay,
    Error(Error),
}

impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        Refusal::Error(e)
    }
}

impl From<SqlError> for Refusal {
    fn from(e: SqlError) -> Self {
        Refusal::Error(Error::Db(e))
    }
}

const INSERT_REDEMPTION: &str = "INSERT INTO redemptions (id, group_id, code_id, code_hint, \
     phone, amount, currency, redeemed_at, correlation_id, event_id) \
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) \
     ON CONFLICT (code_id, phone) WHERE released_at IS NULL DO NOTHING";
/// A unique code remembers who redeemed it; a shared code only how often.
const CLAIM_UNIQUE: &str = "UPDATE codes SET redemption_count = 1, redeemed_by = $1, \
     redeemed_at = $2 WHERE group_id = $3 AND id = $4 AND redemption_count = 0";
const CLAIM_SHARED: &str = "UPDATE codes SET redemption_count = redemption_count + 1, \
     redeemed_at = $1 WHERE group_id = $2 AND id = $3 AND redemption_count < $4";
const COUNT_PHONE: &str = "INSERT INTO phone_counts (group_id, phone, n) VALUES ($1, $2, 1) \
     ON CONFLICT (group_id, phone) DO UPDATE SET n = phone_counts.n + 1 \
     WHERE phone_counts.n < $3";

/// Prepares the statements of [`record`] on `conn` (a start-up warm-up).
pub(super) async fn prepare(conn: &mut Conn) -> Result<(), SqlError> {
    for sql in [INSERT_REDEMPTION, CLAIM_UNIQUE, CLAIM_SHARED, COUNT_PHONE] {
        conn.prepare(sql).await?;
    }
    outbox::prepare(conn).await
}

/// Any refusal rolls back the redemption's writes (its savepoint).
pub(super) async fn record(
    conn: &mut Conn,
    t: &Target,
    r: &Redemption,
    now: i64,
    correlation_id: Option<String>,
    reply_inbox: Option<String>,
) -> Result<(), Refusal> {
    let (group_id, code_id) = (t.group_id.to_string(), t.code_id.to_string());
    let event = Envelope::new(
        crate::SOURCE,
        correlation_id.clone(),
        CodeRedeemed {
            redemption_id: r.id,
            group_id: r.group_id,
            code_id: r.code_id,
            code_hint: r.code_hint.clone(),
            phone: r.phone.clone(),
            amount: r.amount,
            currency: r.currency.clone(),
            redeemed_at: r.redeemed_at,
        },
    );
    // The event's id is kept with the redemption: while its credit is
    // overdue, the same event is published again (crate::redrive).
    let inserted = query(INSERT_REDEMPTION)
        .bind(r.id.to_string())
        .bind(&group_id)
        .bind(&code_id)
        .bind(&t.hint)
        .bind(r.phone.as_str())
        .bind(r.amount.get())
        .bind(r.currency.as_str())
        .bind(now)
        .bind(correlation_id)
        .bind(event.id.to_string())
        .execute(conn)
        .await?;
    if inserted == 0 {
        return Err(Refusal::Replay);
    }
    let claimed = match t.kind {
        GroupKind::Unique => query(CLAIM_UNIQUE)
            .bind(r.phone.as_str())
            .bind(now)
            .bind(&group_id)
            .bind(&code_id),
        GroupKind::Shared => query(CLAIM_SHARED)
            .bind(now)
            .bind(&group_id)
            .bind(&code_id)
            .bind(t.max_redemptions.unwrap_or(0)),
    }
    .execute(conn)
    .await?;
    if claimed == 0 {
        return Err(Refusal::Error(match t.kind {
            GroupKind::Unique => Error::CodeAlreadyRedeemed,
            GroupKind::Shared => Error::RedemptionLimitReached,
        }));
    }
    if let Some(limit) = t.per_phone_limit {
        let counted = query(COUNT_PHONE)
            .bind(&group_id)
            .bind(r.phone.as_str())
            .bind(limit)
            .execute(conn)
            .await?;
        if counted == 0 {
            return Err(Refusal::Error(Error::PerPhoneLimitReached));
        }
    }
    let headers: Vec<(&str, &str)> = reply_inbox
        .as_deref()
        .map(|inbox| vec![(REPLY_INBOX_HEADER, inbox)])
        .unwrap_or_default();
    outbox::enqueue_with_headers(conn, &event, &headers)
        .await
        .map_err(|e| Refusal::Error(e.into()))
}
