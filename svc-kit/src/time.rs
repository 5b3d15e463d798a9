//! Timestamps at rest are integer microseconds since the Unix epoch: the same
//! `BIGINT` on SQLite and PostgreSQL, totally ordered, and exact to compare.

use chrono::{DateTime, TimeZone, Utc};

pub fn now_micros() -> i64 {
    Utc::now().timestamp_micros()
}

pub fn to_micros(t: DateTime<Utc>) -> i64 {
    t.timestamp_micros()
}

/// Converts stored microseconds back; out-of-range values (never written by us)
/// clamp to the epoch rather than panic.
pub fn from_micros(us: i64) -> DateTime<Utc> {
    Utc.timestamp_micros(us).single().unwrap_or_default()
}
