//! Gift-code groups and their codes (DESIGN.md §4): creation (with the codes,
//! shown this once), listing with stats, activation, and looking codes up.

use chrono::{DateTime, Utc};
use shared_events::{
    Envelope, FieldError, Page,
    events::{GroupCreated, GroupUpdated},
    giftcode::{
        CodeDetails, CodeStatus, CodeSummary, CreateGroupRequest, Group, GroupKind, GroupStats,
        GroupStatus, ListCodesRequest, ListGroupsRequest, UpdateGroupRequest,
    },
};
use sqlx::{AnyConnection, Row, any::AnyRow};
use svc_kit::{
    db::Backend,
    outbox,
    time::{from_micros, now_micros, to_micros},
};
use uuid::Uuid;

use crate::{
    App,
    codes::{self, CodeKey, CodeText, Displays},
    error::{Error, Result},
};

pub const MAX_COUNT: i64 = 1_000_000;
pub const MAX_SHARED_REDEMPTIONS: i64 = 100_000_000;
/// Codes per INSERT statement (4 parameters a row).
const INSERT_CHUNK: usize = 1_000;

macro_rules! group_select {
    () => {
        "SELECT g.id, g.name, g.kind, g.amount, g.currency, g.total_codes, g.max_redemptions, \
         g.per_phone_limit, g.prefix, g.starts_at, g.expires_at, g.active, g.created_at, \
         g.updated_at, (SELECT COUNT(*) FROM redemptions r WHERE r.group_id = g.id) AS redemptions \
         FROM groups g"
    };
}

/// A validated creation request.
struct Spec {
    name: String,
    kind: GroupKind,
    amount: i64,
    count: i64,
    max_redemptions: Option<i64>,
    custom_code: Option<String>,
    prefix: Option<String>,
    per_phone_limit: Option<i64>,
    starts_at: Option<DateTime<Utc>>,
    expires_at: Option<DateTime<Utc>>,
}

/// A code about to be stored; `display` goes back to the admin once.
pub struct NewCode {
    id: Uuid,
    digest: [u8; 32],
    /// The full code. Its hint is derived when the code is stored: a million
    /// codes held in memory at once are the peak of a big group's creation.
    display: CodeText,
}

fn validate(req: CreateGroupRequest) -> Result<Spec> {
    let mut errs = Vec::new();
    let mut bad = |field: &str, msg: &str| errs.push(FieldError::new(field, msg));
    let name = req.name.trim().to_owned();
    if name.is_empty() || name.chars().count() > 100 {
        bad("name", "must be 1 to 100 characters");
    }
    if !(1..=shared_events::Amount::MAX).contains(&req.amount) {
        bad(
            "amount",
            "must be an integer number of minor units from 1 to 10^12",
        );
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
                    if req.amount.checked_mul(n).is_none() {
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

/// Draws `n` distinct codes. A million HMACs take about a second, so the work
/// is split across the cores; it runs on a blocking thread.
pub fn draw_codes(key: &CodeKey, n: usize, prefix: Option<&str>) -> Vec<NewCode> {
    let threads = std::thread::available_parallelism()
        .map_or(1, |p| p.get())
        .min(8);
    let per = n.div_ceil(threads.max(1)).max(1);
    let draw = |n: usize| -> Vec<NewCode> {
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..n)
                .step_by(per)
                .map(|start| {
                    let len = per.min(n - start);
                    s.spawn(move || {
                        let mut rng = rand::rng();
                        (0..len)
                            .filter_map(|_| new_code(key, &codes::generate(&mut rng, prefix)))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            let mut out = Vec::with_capacity(n);
            for h in handles {
                out.append(&mut h.join().unwrap_or_default());
            }
            out
        })
    };
    // Digests are random, so inserting them in drawing order would touch a
    // random page of the digest index per code. Sorted by digest, and with
    // ids (UUID v7, increasing) given in that order, both indexes of `codes`
    // are written front to back: a 1M-code group stays seconds, not minutes.
    // Sorted, a repeat inside the batch (odds ~10^-7 for a million) sits next
    // to its twin and is dropped, then drawn again, without a set of a
    // million digests in memory.
    let mut out = draw(n);
    loop {
        out.sort_unstable_by_key(|c| c.digest);
        out.dedup_by_key(|c| c.digest);
        if out.len() >= n {
            break;
        }
        let mut more = draw(n - out.len());
        out.append(&mut more);
    }
    for c in &mut out {
        c.id = Uuid::now_v7();
    }
    out
}

/// A drawn code, or `None` if it cannot be held (then it is drawn again).
fn new_code(key: &CodeKey, display: &str) -> Option<NewCode> {
    let canonical = codes::canonicalize(display)?;
    Some(NewCode {
        id: Uuid::nil(),
        digest: key.digest(&canonical),
        display: CodeText::new(display)?,
    })
}

impl App {
    /// Creates a group and its codes in one transaction, with its
    /// `group.created` event. Returns the group and the full codes in order.
    pub async fn create_group(
        &self,
        req: CreateGroupRequest,
        correlation_id: Option<String>,
    ) -> Result<(Group, Displays)> {
        let spec = validate(req)?;
        let key = self.key().clone();
        let mut new_codes = match &spec.custom_code {
            Some(custom) => {
                let canonical = codes::canonicalize(custom).ok_or(Error::InvalidCode)?;
                vec![NewCode {
                    id: Uuid::now_v7(),
                    digest: key.digest(&canonical),
                    display: CodeText::new(custom).ok_or(Error::InvalidCode)?,
                }]
            }
            None => {
                let (n, prefix) = (spec.count as usize, spec.prefix.clone());
                tokio::task::spawn_blocking(move || draw_codes(&key, n, prefix.as_deref()))
                    .await
                    .map_err(|e| Error::Config(format!("code generation failed: {e}")))?
            }
        };
        let stored = self
            .store_group(&spec, &mut new_codes, correlation_id)
            .await;
        self.db().end_bulk().await;
        let (group, displays) = stored?;
        self.wake_outbox();
        tracing::info!(group_id = %group.id, codes = displays.len(), kind = group.kind.as_str(), "group created");
        Ok((group, displays))
    }

    /// The creation's transaction: the group, its codes, its event.
    async fn store_group(
        &self,
        spec: &Spec,
        new_codes: &mut Vec<NewCode>,
        correlation_id: Option<String>,
    ) -> Result<(Group, Displays)> {
        let width = spec.prefix.as_deref().map_or(0, |p| p.len() + 1) + codes::SYMBOLS + 2;
        let mut displays = Displays::with_capacity(spec.count as usize, width);
        let now = now_micros();
        let group_id = Uuid::now_v7();
        let gid = group_id.to_string();
        let mut tx = self.db().begin_bulk().await?;
        sqlx::query(
            "INSERT INTO groups (id, name, kind, amount, currency, total_codes, max_redemptions, \
             per_phone_limit, prefix, starts_at, expires_at, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(&gid)
        .bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(spec.amount)
        .bind(self.currency())
        .bind(spec.count)
        .bind(spec.max_redemptions)
        .bind(spec.per_phone_limit)
        .bind(spec.prefix.clone())
        .bind(spec.starts_at.map(to_micros))
        .bind(spec.expires_at.map(to_micros))
        .bind(1_i64)
        .bind(now)
        .execute(&mut *tx)
        .await?;
        // A custom code's hint shows no prefix (DESIGN §4).
        let hint_prefix = spec
            .prefix
            .as_deref()
            .filter(|_| spec.custom_code.is_none());
        self.store_codes(&mut tx, spec, &gid, new_codes, hint_prefix)
            .await?;
        for code in new_codes.iter() {
            displays.push(code.display.as_str());
        }
        // The codes now live in `displays` only.
        *new_codes = Vec::new();
        let group = fetch_group(&mut tx, &gid)
            .await?
            .ok_or(Error::GroupNotFound)?;
        let event = Envelope::new(
            crate::SOURCE,
            correlation_id,
            GroupCreated {
                group_id,
                name: group.name.clone(),
                kind: group.kind,
                amount: group.amount,
                currency: group.currency.clone(),
                total_codes: group.stats.total_codes,
                max_redemptions: group.max_redemptions,
                per_phone_limit: group.per_phone_limit,
                starts_at: group.starts_at,
                expires_at: group.expires_at,
                created_at: group.created_at,
            },
        );
        outbox::enqueue(&mut tx, &event).await?;
        tx.commit().await?;
        Ok((group, displays))
    }

    /// Stores the codes in the creation's transaction. A code that is taken (by
    /// another group, or drawn twice for this one) is replaced by a fresh
    /// draw; a custom code that is taken is the admin's to change.
    async fn store_codes(
        &self,
        tx: &mut AnyConnection,
        spec: &Spec,
        gid: &str,
        codes: &mut [NewCode],
        hint_prefix: Option<&str>,
    ) -> Result<()> {
        let mut stored = 0;
        let mut attempts = 0;
        while stored < codes.len() {
            let end = (stored + INSERT_CHUNK).min(codes.len());
            let chunk = &codes[stored..end];
            let collided = insert_codes(tx, self.db().backend(), gid, chunk, hint_prefix).await?;
            if collided.is_empty() {
                stored = end;
                continue;
            }
            attempts += 1;
            if spec.custom_code.is_some() {
                return Err(Error::CodeExists);
            }
            if attempts > 100 {
                return Err(Error::Config("cannot draw unused codes".into()));
            }
            tracing::warn!(
                count = collided.len(),
                "generated codes collided; drawing again"
            );
            let fresh = draw_codes(self.key(), collided.len(), spec.prefix.as_deref());
            for (slot, code) in collided.into_iter().zip(fresh) {
                codes[stored + slot] = code;
            }
        }
        Ok(())
    }

    pub async fn list_groups(&self, req: ListGroupsRequest) -> Result<Page<Group>> {
        let limit = page_limit(req.limit)?;
        let cursor = parse_cursor(req.cursor.as_deref())?;
        let mut conn = self.db().read().acquire().await?;
        let rows = match cursor {
            Some(c) => {
                sqlx::query(concat!(
                    group_select!(),
                    " WHERE g.id < $1 ORDER BY g.id DESC LIMIT $2"
                ))
                .bind(c)
                .bind(limit + 1)
                .fetch_all(&mut *conn)
                .await?
            }
            None => {
                sqlx::query(concat!(group_select!(), " ORDER BY g.id DESC LIMIT $1"))
                    .bind(limit + 1)
                    .fetch_all(&mut *conn)
                    .await?
            }
        };
        let items = rows
            .iter()
            .map(group_from_row)
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |g| g.id.to_string()))
    }

    pub async fn get_group(&self, id: &str) -> Result<Group> {
        let mut conn = self.db().read().acquire().await?;
        fetch_group(&mut conn, id)
            .await?
            .ok_or(Error::GroupNotFound)
    }

    /// Activates or deactivates a group; a change emits `group.updated`.
    pub async fn update_group(
        &self,
        req: UpdateGroupRequest,
        correlation_id: Option<String>,
    ) -> Result<Group> {
        let group_id = Uuid::parse_str(&req.id).map_err(|_| Error::GroupNotFound)?;
        let mut tx = self.db().begin().await?;
        let current = fetch_group(&mut tx, &req.id)
            .await?
            .ok_or(Error::GroupNotFound)?;
        if current.active == req.active {
            return Ok(current);
        }
        let now = now_micros();
        sqlx::query("UPDATE groups SET active = $1, updated_at = $2 WHERE id = $3")
            .bind(i64::from(req.active))
            .bind(now)
            .bind(&req.id)
            .execute(&mut *tx)
            .await?;
        let event = Envelope::new(
            crate::SOURCE,
            correlation_id,
            GroupUpdated {
                group_id,
                active: req.active,
                updated_at: from_micros(now),
            },
        );
        outbox::enqueue(&mut tx, &event).await?;
        let group = fetch_group(&mut tx, &req.id)
            .await?
            .ok_or(Error::GroupNotFound)?;
        tx.commit().await?;
        self.wake_outbox();
        Ok(group)
    }

    pub async fn list_codes(&self, req: ListCodesRequest) -> Result<Page<CodeSummary>> {
        let limit = page_limit(req.limit)?;
        let cursor = parse_cursor(req.cursor.as_deref())?.unwrap_or_default();
        let group = self.get_group(&req.group_id).await?;
        let cap = cap_of(&group);
        let base = sqlx::query(match req.status {
            None => {
                "SELECT id, hint, redemption_count, redeemed_by, redeemed_at FROM codes \
                 WHERE group_id = $1 AND id > $2 ORDER BY id LIMIT $3"
            }
            Some(CodeStatus::Unredeemed) => {
                "SELECT id, hint, redemption_count, redeemed_by, redeemed_at FROM codes \
                 WHERE group_id = $1 AND id > $2 AND redemption_count < $4 ORDER BY id LIMIT $3"
            }
            Some(CodeStatus::Redeemed) => {
                "SELECT id, hint, redemption_count, redeemed_by, redeemed_at FROM codes \
                 WHERE group_id = $1 AND id > $2 AND redemption_count >= $4 ORDER BY id LIMIT $3"
            }
        })
        .bind(&req.group_id)
        .bind(cursor)
        .bind(limit + 1);
        let query = match req.status {
            None => base,
            Some(_) => base.bind(cap),
        };
        let rows = query.fetch_all(self.db().read()).await?;
        let items = rows
            .iter()
            .map(|r| code_from_row(r, cap))
            .collect::<Result<Vec<_>>>()?;
        Ok(Page::from_overfetch(items, limit, |c| c.id.to_string()))
    }

    /// One code's details, found by the full code as typed.
    pub async fn lookup_code(&self, code: &str) -> Result<CodeDetails> {
        let canonical = codes::canonicalize(code).ok_or(Error::InvalidCode)?;
        let digest = self.key().digest(&canonical);
        let row = sqlx::query(
            "SELECT group_id, id, hint, redemption_count, redeemed_by, redeemed_at FROM codes \
             WHERE digest = $1",
        )
        .bind(digest.to_vec())
        .fetch_optional(self.db().read())
        .await?
        .ok_or(Error::CodeNotFound)?;
        let group_id: String = row.try_get("group_id")?;
        let group = self.get_group(&group_id).await?;
        let code = code_from_row(&row, cap_of(&group))?;
        Ok(CodeDetails { code, group })
    }
}

/// Inserts one chunk of codes; returns the positions (within the chunk) of codes
/// that were not stored because another group already holds them.
async fn insert_codes(
    conn: &mut AnyConnection,
    backend: Backend,
    gid: &str,
    chunk: &[NewCode],
    hint_prefix: Option<&str>,
) -> Result<Vec<usize>> {
    let sql = format!(
        "INSERT INTO codes (group_id, id, digest, hint) VALUES {} ON CONFLICT (digest) DO NOTHING",
        backend.values_placeholders(chunk.len(), 4, 1)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for c in chunk {
        q = q
            .bind(gid.to_owned())
            .bind(c.id.to_string())
            .bind(c.digest.to_vec())
            .bind(codes::hint(c.display.as_str(), hint_prefix));
    }
    let inserted = q.execute(&mut *conn).await?.rows_affected() as usize;
    if inserted == chunk.len() {
        return Ok(Vec::new());
    }
    // A code not stored as itself (same group, same id) collided: with
    // another group's, or with one drawn earlier for this group.
    let mut collided = Vec::new();
    for (i, c) in chunk.iter().enumerate() {
        let owner = sqlx::query("SELECT group_id, id FROM codes WHERE digest = $1")
            .bind(c.digest.to_vec())
            .fetch_optional(&mut *conn)
            .await?;
        let stored_as_itself = match owner {
            Some(row) => {
                row.try_get::<String, _>("group_id")? == gid
                    && row.try_get::<String, _>("id")? == c.id.to_string()
            }
            None => false,
        };
        if !stored_as_itself {
            collided.push(i);
        }
    }
    Ok(collided)
}

pub(crate) async fn fetch_group(conn: &mut AnyConnection, id: &str) -> Result<Option<Group>> {
    if Uuid::parse_str(id).is_err() {
        return Ok(None);
    }
    sqlx::query(concat!(group_select!(), " WHERE g.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?
        .as_ref()
        .map(group_from_row)
        .transpose()
}

/// How many redemptions a code of this group allows.
fn cap_of(group: &Group) -> i64 {
    match group.kind {
        GroupKind::Unique => 1,
        GroupKind::Shared => group.max_redemptions.unwrap_or(0),
    }
}

pub(crate) fn uuid_at(row: &AnyRow, col: &str) -> Result<Uuid> {
    let s: String = row.try_get(col)?;
    Uuid::parse_str(&s).map_err(|e| Error::Db(sqlx::Error::Decode(Box::new(e))))
}

fn code_from_row(row: &AnyRow, cap: i64) -> Result<CodeSummary> {
    let count: i64 = row.try_get("redemption_count")?;
    Ok(CodeSummary {
        id: uuid_at(row, "id")?,
        hint: row.try_get("hint")?,
        status: if count >= cap {
            CodeStatus::Redeemed
        } else {
            CodeStatus::Unredeemed
        },
        redeemed_by: row.try_get("redeemed_by")?,
        redeemed_at: row
            .try_get::<Option<i64>, _>("redeemed_at")?
            .map(from_micros),
        redemptions: count,
    })
}

fn group_from_row(row: &AnyRow) -> Result<Group> {
    let kind = match row.try_get::<String, _>("kind")?.as_str() {
        "shared" => GroupKind::Shared,
        _ => GroupKind::Unique,
    };
    let amount: i64 = row.try_get("amount")?;
    let total_codes: i64 = row.try_get("total_codes")?;
    let max_redemptions: Option<i64> = row.try_get("max_redemptions")?;
    let redemptions: i64 = row.try_get("redemptions")?;
    let active = row.try_get::<i64, _>("active")? != 0;
    let starts_at = row.try_get::<Option<i64>, _>("starts_at")?;
    let expires_at = row.try_get::<Option<i64>, _>("expires_at")?;
    let capacity = match kind {
        GroupKind::Unique => total_codes,
        GroupKind::Shared => max_redemptions.unwrap_or(0),
    };
    let remaining = (capacity - redemptions).max(0);
    let redeemed_codes = match kind {
        GroupKind::Unique => redemptions,
        GroupKind::Shared => i64::from(remaining == 0),
    };
    let now = now_micros();
    let status = if !active {
        GroupStatus::Inactive
    } else if starts_at.is_some_and(|s| now < s) {
        GroupStatus::Scheduled
    } else if expires_at.is_some_and(|e| now >= e) {
        GroupStatus::Expired
    } else if remaining == 0 {
        GroupStatus::Exhausted
    } else {
        GroupStatus::Active
    };
    // amount <= 10^12 and capacity <= 10^8 were checked at creation; saturate
    // rather than panic should a stored row ever say otherwise.
    let stats = GroupStats {
        total_codes,
        redeemed_codes,
        unredeemed_codes: total_codes - redeemed_codes,
        redemptions,
        redeemed_amount: amount.saturating_mul(redemptions),
        remaining_amount: amount.saturating_mul(remaining),
        status,
    };
    Ok(Group {
        id: uuid_at(row, "id")?,
        name: row.try_get("name")?,
        kind,
        amount,
        currency: row.try_get("currency")?,
        starts_at: starts_at.map(from_micros),
        expires_at: expires_at.map(from_micros),
        active,
        created_at: from_micros(row.try_get("created_at")?),
        updated_at: from_micros(row.try_get("updated_at")?),
        per_phone_limit: row.try_get("per_phone_limit")?,
        max_redemptions,
        prefix: row.try_get("prefix")?,
        stats,
    })
}

pub(crate) fn page_limit(limit: Option<u32>) -> Result<i64> {
    shared_events::values::page_limit(limit).map_err(|e| Error::Validation(vec![e]))
}

/// Cursors are the id of the last item of the previous page.
pub(crate) fn parse_cursor(cursor: Option<&str>) -> Result<Option<String>> {
    match cursor {
        None => Ok(None),
        Some(c) => Uuid::parse_str(c)
            .map(|u| Some(u.to_string()))
            .map_err(|_| Error::validation("cursor", "is not a cursor this service gave out")),
    }
}
