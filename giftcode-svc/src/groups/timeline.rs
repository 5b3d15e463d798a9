//! A group's redemptions per minute (`giftcode.groups.timeline`), for the
//! console's chart: counted by the database over the window asked for, then
//! laid out one entry per minute with the empty minutes filled in.

use chrono::Utc;
use shared_events::{
    GroupId,
    giftcode::{MinuteCount, Timeline, TimelineRequest},
};
use svc_kit::{HasKit, db::query, time::from_micros};
use uuid::Uuid;

use crate::{
    App,
    error::{Error, Result},
};

const MINUTE_MICROS: i64 = 60_000_000;

impl App {
    pub async fn timeline(&self, req: TimelineRequest) -> Result<Timeline> {
        let minutes = req.minutes.unwrap_or(TimelineRequest::DEFAULT_MINUTES);
        if !(1..=TimelineRequest::MAX_MINUTES).contains(&minutes) {
            return Err(Error::validation("minutes", "must be 1–1440"));
        }
        self.get_group(req.group_id).await?;
        let now = Utc::now().timestamp_micros();
        let to = (now / MINUTE_MICROS + 1) * MINUTE_MICROS;
        let from = to - i64::from(minutes) * MINUTE_MICROS;
        let rows = query(
            "SELECT r.redeemed_at / 60000000 AS minute, COUNT(*) AS n, \
             CAST(SUM(r.amount) AS BIGINT) AS amount \
             FROM redemptions r WHERE r.group_id = $1 AND r.id >= $2 AND r.redeemed_at >= $3 \
             GROUP BY r.redeemed_at / 60000000",
        )
        .bind(req.group_id.to_string())
        .bind(first_id_at(from).to_string())
        .bind(from)
        .fetch_all(self.db())
        .await?;
        let mut counts = vec![(0i64, 0i64); minutes as usize];
        for row in &rows {
            let minute: i64 = row.get("minute")?;
            let slot = usize::try_from(minute * MINUTE_MICROS - from).ok();
            if let Some(c) = slot.and_then(|s| counts.get_mut(s / MINUTE_MICROS as usize)) {
                *c = (row.get("n")?, row.get("amount")?);
            }
        }
        Ok(layout(req.group_id, from, to, counts))
    }
}

/// The smallest UUID v7 of the millisecond `micros` falls in. Redemption ids
/// are v7, so `id >= first_id_at(from)` lets the `(group_id, id)` index skip
/// the group's older redemptions.
fn first_id_at(micros: i64) -> Uuid {
    let ms = u64::try_from(micros / 1000).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70;
    bytes[8] = 0x80;
    Uuid::from_bytes(bytes)
}

fn layout(group_id: GroupId, from: i64, to: i64, counts: Vec<(i64, i64)>) -> Timeline {
    let at = from_micros;
    Timeline {
        group_id,
        from: at(from),
        to: at(to),
        minutes: counts
            .into_iter()
            .enumerate()
            .map(|(i, (redemptions, amount))| MinuteCount {
                minute: at(from + i as i64 * MINUTE_MICROS),
                redemptions,
                amount,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_first_id_of_a_millisecond_sorts_before_every_id_made_in_it() {
        let now = Utc::now().timestamp_micros();
        let id = Uuid::now_v7();
        assert!(first_id_at(now - 1000).to_string() <= id.to_string());
        assert!(first_id_at(now + 2000).to_string() > id.to_string());
        assert_eq!(first_id_at(now).get_version_num(), 7);
    }
}
