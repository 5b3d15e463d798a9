//! Redeeming a code (DESIGN.md §7 step 2). The checks that decide *whether* a
//! redemption may happen (the group open now, see `groups::Window`) read
//! first; the guarded writes that make sure no limit is ever exceeded are in
//! [`record`], and join the next group commit of the database's writer.

mod record;

use shared_events::{
    Amount, CodeId, Currency, GroupId, Phone, RedemptionId,
    giftcode::{GroupKind, RedeemReply, RedeemRequest, Redemption, RedemptionStatus},
};
use svc_kit::{
    HasKit,
    db::query,
    time::{from_micros, now_micros},
};

use crate::{
    App, codes,
    error::{Error, Result},
    groups::Window,
    redemptions,
};
use record::Refusal;

/// What the redeem path needs to know about a code and its group.
#[derive(Clone)]
pub(crate) struct Target {
    group_id: GroupId,
    group_name: String,
    code_id: CodeId,
    hint: String,
    kind: GroupKind,
    amount: Amount,
    currency: Currency,
    window: Window,
    max_redemptions: Option<i64>,
    per_phone_limit: Option<i64>,
    /// False when this one code is disabled.
    code_active: bool,
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
        let phone = req.phone;
        let digest = self.key().digest(&canonical);
        let (target, earlier) = self
            .find_target(&digest, &phone)
            .await?
            .ok_or(Error::CodeNotFound)?;

        // The same phone redeeming the same code again gets the original back,
        // whatever has happened to the group since; unless that redemption
        // was reversed: then the code stays burned for it (a reversal that
        // released the code leaves no redemption held, and this is new).
        if let Some(original) = earlier {
            return match original.status {
                RedemptionStatus::Reversed => Err(Error::CodeAlreadyRedeemed),
                _ => Ok(replayed(original)),
            };
        }
        if !target.code_active {
            return Err(Error::CodeDisabled);
        }
        let now = now_micros();
        if let Some(refusal) = target.window.refusal(now) {
            return Err(refusal);
        }

        let redemption = Redemption {
            id: RedemptionId::generate(),
            group_id: target.group_id,
            group_name: target.group_name.clone(),
            code_id: target.code_id,
            code_hint: target.hint.clone(),
            phone,
            amount: target.amount,
            currency: target.currency.clone(),
            status: RedemptionStatus::Pending,
            redeemed_at: from_micros(now),
            credited_at: None,
            transaction_id: None,
            reversal: None,
        };
        // The writes join the next group commit: durable when this returns.
        let recorded = {
            let (target, redemption) = (target.clone(), redemption.clone());
            let inbox = reply_inbox.map(str::to_owned);
            self.db()
                .write(move |tx| {
                    Box::pin(async move {
                        record::record(tx, &target, &redemption, now, correlation_id, inbox).await
                    })
                })
                .await
        };
        match recorded {
            Ok(()) => {
                tracing::info!(redemption_id = %redemption.id, code_hint = %redemption.code_hint, "code redeemed");
                Ok(RedeemReply {
                    redemption,
                    replayed: false,
                })
            }
            // A concurrent request of the same phone won the race: its
            // redemption is the answer.
            Err(Refusal::Replay | Refusal::Error(Error::CodeAlreadyRedeemed)) => self
                .find_redemption(target.code_id, &redemption.phone)
                .await?
                .filter(|r| r.status != RedemptionStatus::Reversed)
                .map(replayed)
                .ok_or(Error::CodeAlreadyRedeemed),
            Err(Refusal::Error(e)) => Err(e),
        }
    }

    /// Start-up warm-up (svc-kit's `warms`): the redeem's read prepared on
    /// the reading connections, and its writes prepared on the writer's in
    /// a transaction that is rolled back, so the first redeem waits for
    /// neither. Writes nothing.
    pub async fn warm(&self) -> Result<()> {
        let phone: Phone = "+14155552671"
            .parse()
            .map_err(|_| Error::Internal("the warm-up phone".into()))?;
        let mut readers = Vec::new();
        for _ in 0..svc_kit::db::READERS {
            let mut conn = self.db().reader().await?;
            find_target(&mut conn, &[0; 32], &phone).await?;
            readers.push(conn);
        }
        drop(readers);
        self.db()
            .write(|tx| Box::pin(async move { record::prepare(tx).await }))
            .await?;
        Ok(())
    }

    /// The code's target and, if this phone redeemed it before, that
    /// redemption.
    async fn find_target(
        &self,
        digest: &[u8; 32],
        phone: &Phone,
    ) -> Result<Option<(Target, Option<Redemption>)>> {
        find_target(&mut self.db().reader().await?, digest, phone).await
    }
}

/// One query, since every redeem needs both.
async fn find_target(
    conn: &mut svc_kit::db::Conn,
    digest: &[u8; 32],
    phone: &Phone,
) -> Result<Option<(Target, Option<Redemption>)>> {
    let row = query(
        "SELECT c.group_id AS t_group_id, c.id AS t_code_id, c.hint, c.active AS code_active, g.kind, \
         g.amount AS t_amount, g.currency AS t_currency, g.active, g.starts_at, \
         g.expires_at, g.max_redemptions, g.per_phone_limit, g.name AS group_name, \
         r.id, r.group_id, r.code_id, r.code_hint, r.phone, r.amount, r.currency, \
         r.status, r.redeemed_at, r.credited_at, r.transaction_id, \
         r.reversal_status, r.reversal_reason, r.reversal_release, r.reversal_requested_at, \
         r.reversal_completed_at, r.reversal_transaction_id \
         FROM codes c JOIN groups g ON g.id = c.group_id \
         LEFT JOIN redemptions r ON r.code_id = c.id AND r.phone = $2 AND r.released_at IS NULL \
         WHERE c.digest = $1",
    )
    .bind(digest.to_vec())
    .bind(phone.as_str())
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let target = Target {
        group_id: row.parsed("t_group_id")?,
        group_name: row.get("group_name")?,
        code_id: row.parsed("t_code_id")?,
        hint: row.get("hint")?,
        kind: row.word("kind", GroupKind::parse)?,
        amount: row.amount("t_amount")?,
        currency: row.parsed("t_currency")?,
        window: Window {
            active: row.get::<i64>("active")? != 0,
            starts_at: row.get("starts_at")?,
            expires_at: row.get("expires_at")?,
        },
        max_redemptions: row.get("max_redemptions")?,
        per_phone_limit: row.get("per_phone_limit")?,
        code_active: row.get::<i64>("code_active")? != 0,
    };
    let earlier = match row.get::<Option<String>>("id")? {
        Some(_) => Some(redemptions::from_row(&row)?),
        None => None,
    };
    Ok(Some((target, earlier)))
}

fn replayed(redemption: Redemption) -> RedeemReply {
    RedeemReply {
        redemption,
        replayed: true,
    }
}
