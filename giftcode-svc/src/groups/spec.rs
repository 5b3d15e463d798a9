//! What a group creation asks for, checked (DESIGN.md §4): every field at
//! fault is named at once. The values' own types (the amount) were checked
//! when the request was read.

use chrono::{DateTime, Utc};
use shared_events::{
    Amount, FieldError,
    giftcode::{CreateGroupRequest, GroupKind},
};

use crate::{
    codes,
    error::{Error, Result},
};

pub const MAX_COUNT: i64 = 1_000_000;
pub const MAX_SHARED_REDEMPTIONS: i64 = 100_000_000;

/// A validated creation request.
pub(crate) struct Spec {
    pub name: String,
    pub kind: GroupKind,
    pub amount: Amount,
    pub count: i64,
    pub max_redemptions: Option<i64>,
    pub custom_code: Option<String>,
    pub prefix: Option<String>,
    pub per_phone_limit: Option<i64>,
    pub starts_at: Option<DateTime<Utc>>,
    pub expires_at: Option<DateTime<Utc>>,
}

pub(crate) fn validate(req: CreateGroupRequest) -> Result<Spec> {
    let mut errs = Vec::new();
    let mut bad = |field: &str, msg: &str| errs.push(FieldError::new(field, msg));
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        bad("name", "must be 1 to 100 characters");
    }
    let prefix = req.prefix.as_deref().map(codes::prefix_display);
    if matches!(prefix, Some(None)) {
        bad("prefix", "must be 1 to 10 letters A-Z or digits");
    }
    let prefix = prefix.flatten();
    if let (Some(s), Some(e)) = (req.starts_at, req.expires_at)
        && e <= s
    {
        bad("expires_at", "must be after starts_at");
    }
    if req.expires_at.is_some_and(|e| e <= Utc::now()) {
        bad("expires_at", "must be in the future");
    }
    let mut count = 1;
    let mut custom_code = None;
    match req.kind {
        None => bad("kind", "must be \"unique\" or \"shared\""),
        Some(GroupKind::Unique) => {
            match req.count {
                Some(n) if (1..=MAX_COUNT).contains(&n) => count = n,
                _ => bad("count", "unique groups need a count from 1 to 1,000,000"),
            }
            if req.max_redemptions.is_some() {
                bad(
                    "max_redemptions",
                    "applies to shared groups only; use count",
                );
            }
            if req.code.is_some() {
                bad("code", "custom codes are for shared groups only");
            }
            if req.per_phone_limit.is_some_and(|n| n < 1) {
                bad(
                    "per_phone_limit",
                    "must be at least 1 (omit it for no limit)",
                );
            }
        }
        Some(GroupKind::Shared) => {
            match req.max_redemptions {
                Some(n) if (1..=MAX_SHARED_REDEMPTIONS).contains(&n) => {
                    if req.amount.get().checked_mul(n).is_none() {
                        bad(
                            "max_redemptions",
                            "amount times max_redemptions is too large",
                        );
                    }
                }
                _ => bad(
                    "max_redemptions",
                    "shared groups need max_redemptions from 1 to 100,000,000",
                ),
            }
            if req.count.is_some_and(|n| n != 1) {
                bad(
                    "count",
                    "a shared group has exactly one code; use max_redemptions",
                );
            }
            if req.per_phone_limit.is_some() {
                bad(
                    "per_phone_limit",
                    "a shared code is redeemable once per phone already",
                );
            }
            if let Some(code) = req.code.as_deref() {
                match codes::custom_display(code) {
                    Some(c) if prefix.is_none() => custom_code = Some(c),
                    Some(_) => bad("prefix", "give either a custom code or a prefix"),
                    None => bad("code", "must be 4 to 32 letters A-Z, digits or hyphens"),
                }
            }
        }
    }
    if !errs.is_empty() {
        return Err(Error::Validation(errs));
    }
    Ok(Spec {
        name,
        kind: req.kind.unwrap_or(GroupKind::Unique),
        amount: req.amount,
        count,
        max_redemptions: req
            .max_redemptions
            .filter(|_| req.kind == Some(GroupKind::Shared)),
        custom_code,
        prefix,
        per_phone_limit: req.per_phone_limit,
        starts_at: req.starts_at,
        expires_at: req.expires_at,
    })
}
