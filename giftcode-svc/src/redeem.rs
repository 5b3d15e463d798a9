//! Redeeming a code (DESIGN.md §7 step 2) and reading redemptions back.
//!
//! The checks that decide *whether* a redemption may happen (group active, in
//! its window) read first; the facts that must never be exceeded are enforced by
//! guarded writes inside one transaction, so no interleaving of concurrent
//! requests can break them:
//! - `UNIQUE (code_id, phone)`: a phone redeems a code at most once;
//! - `UPDATE codes … WHERE redemption_count < cap`: a unique code is redeemed
//!   once, a shared code by at most `max_redemptions` phones;
//! - a guarded upsert of `phone_counts`: the per-phone limit of a unique group.
//!
//! The redemption and its `code.redeemed` event commit together (the outbox).

use shared_events::{
    Envelope, Page, Phone,
    events::CodeRedeemed,
    giftcode::{
        GroupKind, ListRedemptionsRequest, RedeemReply, RedeemRequest, Redemption, RedemptionStatus,
    },
    subjects::REPLY_INBOX_HEADER,
};
use sqlx::{AnyConnection, Row, any::AnyRow};
use svc_kit::{
    outbox,
    time::{from_micros, now_micros},
};
use uuid::Uuid;

use crate::{
    App, codes,
    error::{Error, Result},
    groups::{page_limit, parse_cursor, uuid_at},
};

macro_rules! redemption_select {
    () => {
        "SELECT r.id, r.group_id, g.name AS group_name, r.code_id, r.code_hint, r.phone, \
         r.amount, r.currency, r.status, r.redeemed_at, r.credited_at, r.transaction_id \
         FROM redemptions r JOIN groups g ON g.id = r.group_id"
    };
}

/// What the redeem path needs to know about a code and its group.
#[derive(Clone)]
pub(crate) struct Target {
    group_id: String,
    group_name: String,
    code_id: String,
    hint: String,
    kind: GroupKind,
    amount: i64,
    currency: String,
    active: bool,
    starts_at: Option<i64>,
    expires_at: Option<i64>,
    max_redemptions: Option<i64>,
    per_phone_limit: Option<i64>,
}

/// Why a guarded transaction gave up; decided after rolling back.
pub(crate) enum Refusal {
    Replay,
    Error(Error),
}

impl App {
    /// Redeems a code for a phone. `reply_inbox` is the caller's inbox: it
    /// travels with the `code.redeemed` event so that wallet-svc can send the
    /// credit notice straight to the caller (DESIGN.md §7 step 4).
    pub async fn redeem(
        &self,
        req: RedeemRequest,
        correlation_id: Option<String>,
        reply_inbox: Option<&str>,
    ) -> Result<RedeemReply> {
        let canonical = codes::canonicalize(&req.code).ok_or(Error::InvalidCode)?;
        let phone = Phone::parse(&req.phone, self.region()).map_err(|_| Error::InvalidPhone)?;
        let digest = self.key().digest(&canonical);
        let (target, earlier) = self
            .find_target(&digest, phone.as_str())
            .await?
            .ok_or(Error::CodeNotFound)?;

        // The same phone redeeming the same code again gets the original back,
        // whatever has happened to the group since.
        if let Some(original) = earlier {
            return Ok(RedeemReply {
                redemption: original,
                replayed: true,
            });
        }
        let now = now_micros();
        if !target.active {
            return Err(Error::CodeInactive);
        }
        if target.starts_at.is_some_and(|s| now < s) {
            return Err(Error::CodeNotYetActive);
        }
        if target.expires_at.is_some_and(|e| now >= e) {
            return Err(Error::CodeExpired);
        }

        let redemption = Redemption {
            id: Uuid::now_v7(),
            group_id: Uuid::parse_str(&target.group_id)
                .map_err(|e| Error::Db(sqlx::Error::Decode(Box::new(e))))?,
            group_name: target.group_name.clone(),
            code_id: Uuid::parse_str(&target.code_id)
                .map_err(|e| Error::Db(sqlx::Error::Decode(Box::new(e))))?,
            code_hint: target.hint.clone(),
            phone: phone.into_string(),
            amount: target.amount,
            currency: target.currency.clone(),
            status: RedemptionStatus::Pending,
            redeemed_at: from_micros(now),
            credited_at: None,
            transaction_id: None,
        };
        // The writes join the next group commit (see `commit`).
        let work: crate::commit::Work = {
            let (target, redemption) = (target.clone(), redemption.clone());
            let inbox = reply_inbox.map(str::to_owned);
            Box::new(move |conn| {
                Box::pin(async move {
                    record(
                        conn,
                        &target,
                        &redemption,
                        now,
                        correlation_id,
                        inbox.as_deref(),
                    )
                    .await
                })
            })
        };
        match self.committer().submit(work).await {
            Ok(()) => {
                self.wake_outbox();
                tracing::info!(redemption_id = %redemption.id, code_hint = %redemption.code_hint, "code redeemed");
                Ok(RedeemReply {
                    redemption,
                    replayed: false,
                })
            }
            Err(refusal) => {
                match refusal {
                    // A concurrent request of the same phone won the race: its
                    // redemption is the answer.
                    Refusal::Replay => {
                        let original = self
                            .find_redemption(&target.code_id, &redemption.phone)
                            .await?
                            .ok_or(Error::CodeAlreadyRedeemed)?;
                        Ok(RedeemReply {
                            redemption: original,
                            replayed: true,
                        })
                    }
                    Refusal::Error(e) => {
                        if matches!(e, Error::CodeAlreadyRedeemed)
                            && let Some(original) = self
                                .find_redemption(&target.code_id, &redemption.phone)
                                .await?
                        {
                            return Ok(RedeemReply {
                                redemption: original,
                                replayed: true,
                            });
                        }
                        Err(e)
                    }
                }
            }
        }
    }

    /// The code's target and, if this phone redeemed it before, that
    /// redemption: one query, since every redeem needs both.
    async fn find_target(
        &self,
        digest: &[u8; 32],
        phone: &str,
    ) -> Result<Option<(Target, Option<Redemption>)>> {
        let row = sqlx::query(
            "SELECT c.group_id AS t_group_id, c.id AS t_code_id, c.hint, g.kind, \
             g.amount AS t_amount, g.currency AS t_currency, g.active, g.starts_at, \
             g.expires_at, g.max_redemptions, g.per_phone_limit, g.name AS group_name, \
             r.id, r.group_id, r.code_id, r.code_hint, r.phone, r.amount, r.currency, \
             r.status, r.redeemed_at, r.credited_at, r.transaction_id \
             FROM codes c JOIN groups g ON g.id = c.group_id \
             LEFT JOIN redemptions r ON r.code_id = c.id AND r.phone = $2 \
             WHERE c.digest = $1",
        )
        .bind(digest.to_vec())
        .bind(phone)
        .fetch_optional(self.db().read())
        .await?;
        let Some(row) = row else { return Ok(None) };
        let target = Target {
            group_id: row.try_get("t_group_id")?,
            group_name: row.try_get("group_name")?,
            code_id: row.try_get("t_code_id")?,
            hint: row.try_get("hint")?,
            kind: if row.try_get::<String, _>("kind")? == "shared" {
                GroupKind::Shared
            } else {
                GroupKind::Unique
            },
            amount: row.try_get("t_amount")?,
            currency: row.try_get("t_currency")?,
            active: row.try_get::<i64, _>("active")? != 0,
            starts_at: row.try_get("starts_at")?,
            expires_at: row.try_get("expires_at")?,
            max_redemptions: row.try_get("max_redemptions")?,
            per_phone_limit: row.try_get("per_phone_limit")?,
        };
        let earlier = match row.try_get::<Option<String>, _>("id")? {
            Some(_) => Some(redemption_from_row(&row)?),
            None => None,
        };
        Ok(Some((target, earlier)))
    }

    async fn find_redemption(&self, code_id: &str, phone: &str) -> Result<Option<Redemption>> {
        sqlx::query(concat!(
            redemption_select!(),
            " WHERE r.code_id = $1 AND r.phone = $2"
        ))
        .bind(code_id)
        .bind(phone)
        .fetch_optional(self.db().read())
        .await?
        .as_ref()
        .map(redemption_from_row)
        .transpose()
    }

    pub async fn get_redemption(&self, id: &str) -> Result<Redemption> {
        if Uuid::parse_str(id).is_err() {
            return Err(Error::RedemptionNotFound);
        }
        sqlx::query(concat!(redemption_select!(), " WHERE r.id = $1"))
            .bind(id)
            .fetch_optional(self.db().read())
            .await?
            .as_ref()
            .map(redemption_from_row)
            .transpose()?
            .ok_or(Error::RedemptionNotFound)
    }

    /// A group's redemptions, newest first.
    pub async fn list_redemptions(&self, req: ListRedemptionsRequest) -> Result<Page<Redemption>> {
        let limit = page_limit(req.limit)?;
        let cursor = parse_cursor(req.cursor.as_deref())?;
        self.get_group(&req.group_id).await?;
        let rows = match cursor {
            Some(c) => {
                sqlx::query(concat!(
                    redemption_select!(),
                    " WHERE r.group_id = $1 AND r.id < $2 ORDER BY r.id DESC LIMIT $3"
                ))
                .bind(&req.group_id)
                .bind(c)
                .bind(limit + 1)
                .fetch_all(self.db().read())
                .await?
            }
            None => {
                sqlx::query(concat!(
                    redemption_select!(),
                    " WHERE r.group_id = $1 ORDER BY r.id DESC LIMIT $2"
                ))
                .bind(&req.group_id)
                .bind(limit + 1)
                .fetch_all(self.db().read())
                .await?
            }
        };
        let items = rows
            .iter()
            .map(redemption_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |r| r.id.to_string()))
    }
}

/// The guarded writes of one redemption. Any refusal leaves the transaction to be
/// rolled back by the caller.
async fn record(
    conn: &mut AnyConnection,
    t: &Target,
    r: &Redemption,
    now: i64,
    correlation_id: Option<String>,
    reply_inbox: Option<&str>,
) -> Result<(), Refusal> {
    let db = |e: sqlx::Error| Refusal::Error(Error::Db(e));
    let inserted = sqlx::query(
        "INSERT INTO redemptions (id, group_id, code_id, code_hint, phone, amount, currency, \
         redeemed_at, correlation_id) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
         ON CONFLICT (code_id, phone) DO NOTHING",
    )
    .bind(r.id.to_string())
    .bind(&t.group_id)
    .bind(&t.code_id)
    .bind(&t.hint)
    .bind(&r.phone)
    .bind(r.amount)
    .bind(&r.currency)
    .bind(now)
    .bind(correlation_id.clone())
    .execute(&mut *conn)
    .await
    .map_err(db)?
    .rows_affected();
    if inserted == 0 {
        return Err(Refusal::Replay);
    }
    // A unique code remembers who redeemed it; a shared code only how often.
    let (claim, refusal) = match t.kind {
        GroupKind::Unique => (
            sqlx::query(
                "UPDATE codes SET redemption_count = 1, redeemed_by = $1, redeemed_at = $2 \
                 WHERE group_id = $3 AND id = $4 AND redemption_count = 0",
            )
            .bind(&r.phone),
            Error::CodeAlreadyRedeemed,
        ),
        GroupKind::Shared => (
            sqlx::query(
                "UPDATE codes SET redemption_count = redemption_count + 1, redeemed_at = $1 \
                 WHERE group_id = $2 AND id = $3 AND redemption_count < $4",
            ),
            Error::RedemptionLimitReached,
        ),
    };
    let claim = claim.bind(now).bind(&t.group_id).bind(&t.code_id);
    let claim = match t.kind {
        GroupKind::Unique => claim,
        GroupKind::Shared => claim.bind(t.max_redemptions.unwrap_or(0)),
    };
    let claimed = claim.execute(&mut *conn).await.map_err(db)?.rows_affected();
    if claimed == 0 {
        return Err(Refusal::Error(refusal));
    }
    if let Some(limit) = t.per_phone_limit {
        let counted = sqlx::query(
            "INSERT INTO phone_counts (group_id, phone, n) VALUES ($1, $2, 1) \
             ON CONFLICT (group_id, phone) DO UPDATE SET n = phone_counts.n + 1 \
             WHERE phone_counts.n < $3",
        )
        .bind(&t.group_id)
        .bind(&r.phone)
        .bind(limit)
        .execute(&mut *conn)
        .await
        .map_err(db)?
        .rows_affected();
        if counted == 0 {
            return Err(Refusal::Error(Error::PerPhoneLimitReached));
        }
    }
    let event = Envelope::new(
        crate::SOURCE,
        correlation_id,
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
    let headers: Vec<(&str, &str)> = reply_inbox
        .map(|inbox| vec![(REPLY_INBOX_HEADER, inbox)])
        .unwrap_or_default();
    outbox::enqueue_with_headers(conn, &event, &headers)
        .await
        .map_err(db)?;
    Ok(())
}

fn redemption_from_row(row: &AnyRow) -> Result<Redemption> {
    let transaction_id: Option<String> = row.try_get("transaction_id")?;
    Ok(Redemption {
        id: uuid_at(row, "id")?,
        group_id: uuid_at(row, "group_id")?,
        group_name: row.try_get("group_name")?,
        code_id: uuid_at(row, "code_id")?,
        code_hint: row.try_get("code_hint")?,
        phone: row.try_get("phone")?,
        amount: row.try_get("amount")?,
        currency: row.try_get("currency")?,
        status: if row.try_get::<String, _>("status")? == "credited" {
            RedemptionStatus::Credited
        } else {
            RedemptionStatus::Pending
        },
        redeemed_at: from_micros(row.try_get("redeemed_at")?),
        credited_at: row
            .try_get::<Option<i64>, _>("credited_at")?
            .map(from_micros),
        transaction_id: transaction_id.and_then(|t| Uuid::parse_str(&t).ok()),
    })
}
