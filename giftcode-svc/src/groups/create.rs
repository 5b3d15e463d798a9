//! Creating a group (DESIGN.md §4): the group, its codes and its
//! `group.created` event in one transaction. The full codes exist only in
//! the reply ([`frames`]); the database keeps their digests and hints.

use shared_events::{
    Currency, Envelope, GroupId,
    events::GroupCreated,
    giftcode::{CreateGroupFrame, CreateGroupRequest, Group},
};
use svc_kit::{
    HasKit,
    db::{Backend, Conn, query},
    outbox,
    time::{now_micros, to_micros},
};
use uuid::Uuid;

use super::{
    draw::{NewCode, draw_codes},
    fetch_group,
    spec::{self, Spec},
};
use crate::{
    App,
    codes::{self, CodeKey, CodeText, Displays},
    error::{Error, Result},
};

/// Codes per INSERT statement (4 parameters a row).
const INSERT_CHUNK: usize = 1_000;
/// Codes per reply frame: ~300 KB, well under NATS' 1 MB.
const CODES_PER_FRAME: usize = 10_000;

impl App {
    /// Creates a group and its codes in one transaction, with its
    /// `group.created` event. Returns the group and the full codes in order.
    pub async fn create_group(
        &self,
        req: CreateGroupRequest,
        correlation_id: Option<String>,
    ) -> Result<(Group, Displays)> {
        let spec = spec::validate(req)?;
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
                let (n, prefix, key) = (spec.count as usize, spec.prefix.clone(), key.clone());
                tokio::task::spawn_blocking(move || draw_codes(&key, n, prefix.as_deref()))
                    .await
                    .map_err(|e| Error::Internal(format!("code generation failed: {e}")))?
            }
        };
        let (currency, backend) = (self.currency().clone(), self.db().backend());
        let (group, displays) = self
            .db()
            .write_bulk(move |tx| {
                Box::pin(async move {
                    let new = New {
                        spec: &spec,
                        key: &key,
                        currency: &currency,
                        backend,
                    };
                    new.store(tx, &mut new_codes, correlation_id).await
                })
            })
            .await?;
        tracing::info!(group_id = %group.id, codes = displays.len(), kind = group.kind.as_str(), "group created");
        Ok((group, displays))
    }
}

/// What a creation's transaction needs: it runs on the database's writer,
/// away from the service's state.
struct New<'a> {
    spec: &'a Spec,
    key: &'a CodeKey,
    currency: &'a Currency,
    backend: Backend,
}

impl New<'_> {
    /// The creation's transaction: the group, its codes, its event.
    async fn store(
        &self,
        tx: &mut Conn,
        new_codes: &mut Vec<NewCode>,
        correlation_id: Option<String>,
    ) -> Result<(Group, Displays)> {
        let spec = self.spec;
        let width = spec.prefix.as_deref().map_or(0, |p| p.len() + 1) + codes::SYMBOLS + 2;
        let mut displays = Displays::with_capacity(spec.count as usize, width);
        let now = now_micros();
        let group_id = GroupId::generate();
        let gid = group_id.to_string();
        query(
            "INSERT INTO groups (id, name, kind, amount, currency, total_codes, max_redemptions, \
             per_phone_limit, prefix, starts_at, expires_at, active, created_at, updated_at) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $13)",
        )
        .bind(&gid)
        .bind(&spec.name)
        .bind(spec.kind.as_str())
        .bind(spec.amount.get())
        .bind(self.currency.as_str())
        .bind(spec.count)
        .bind(spec.max_redemptions)
        .bind(spec.per_phone_limit)
        .bind(spec.prefix.clone())
        .bind(spec.starts_at.map(to_micros))
        .bind(spec.expires_at.map(to_micros))
        .bind(1_i64)
        .bind(now)
        .execute(tx)
        .await?;
        // A custom code's hint shows no prefix (DESIGN §4).
        let hint_prefix = spec
            .prefix
            .as_deref()
            .filter(|_| spec.custom_code.is_none());
        self.store_codes(tx, &gid, new_codes, hint_prefix).await?;
        for code in new_codes.iter() {
            displays.push(code.display.as_str());
        }
        // The codes now live in `displays` only.
        *new_codes = Vec::new();
        let group = fetch_group(&mut *tx, group_id)
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
        outbox::enqueue(tx, &event).await?;
        Ok((group, displays))
    }

    /// Stores the codes in the creation's transaction. A code that is taken (by
    /// another group, or drawn twice for this one) is replaced by a fresh
    /// draw; a custom code that is taken is the admin's to change.
    async fn store_codes(
        &self,
        tx: &mut Conn,
        gid: &str,
        codes: &mut [NewCode],
        hint_prefix: Option<&str>,
    ) -> Result<()> {
        let mut stored = 0;
        let mut attempts = 0;
        while stored < codes.len() {
            let end = (stored + INSERT_CHUNK).min(codes.len());
            let chunk = &codes[stored..end];
            let collided = insert_codes(tx, self.backend, gid, chunk, hint_prefix).await?;
            if collided.is_empty() {
                stored = end;
                continue;
            }
            attempts += 1;
            if self.spec.custom_code.is_some() {
                return Err(Error::CodeExists);
            }
            if attempts > 100 {
                return Err(Error::Internal("cannot draw unused codes".into()));
            }
            tracing::warn!(
                count = collided.len(),
                "generated codes collided; drawing again"
            );
            let fresh = draw_codes(self.key, collided.len(), self.spec.prefix.as_deref());
            for (slot, code) in collided.into_iter().zip(fresh) {
                codes[stored + slot] = code;
            }
        }
        Ok(())
    }
}

/// The reply to a creation, a frame at a time: the group, the codes in
/// chunks, then `end` with their number. Each frame's codes are copied out of
/// `displays` only when it is sent.
pub fn frames((group, displays): (Group, Displays)) -> impl Iterator<Item = CreateGroupFrame> {
    let count = displays.len() as u64;
    let head = std::iter::once(CreateGroupFrame::Group {
        group: Box::new(group),
    });
    let mut codes = displays.into_codes();
    let chunks = std::iter::from_fn(move || {
        let chunk: Vec<String> = codes.by_ref().take(CODES_PER_FRAME).collect();
        (!chunk.is_empty()).then_some(CreateGroupFrame::Codes { codes: chunk })
    });
    head.chain(chunks)
        .chain(std::iter::once(CreateGroupFrame::End { count }))
}

/// Inserts one chunk of codes; returns the positions (within the chunk) of codes
/// that were not stored because another group already holds them.
async fn insert_codes(
    conn: &mut Conn,
    backend: Backend,
    gid: &str,
    chunk: &[NewCode],
    hint_prefix: Option<&str>,
) -> Result<Vec<usize>> {
    let sql = format!(
        "INSERT INTO codes (group_id, id, digest, hint) VALUES {} ON CONFLICT (digest) DO NOTHING",
        backend.values_placeholders(chunk.len(), 4, 1)
    );
    let mut q = query(sql);
    for c in chunk {
        q = q
            .bind(gid.to_owned())
            .bind(c.id.to_string())
            .bind(c.digest.to_vec())
            .bind(codes::hint(c.display.as_str(), hint_prefix));
    }
    let inserted = q.execute(conn).await? as usize;
    if inserted == chunk.len() {
        return Ok(Vec::new());
    }
    // A code not stored as itself (same group, same id) collided: with
    // another group's, or with one drawn earlier for this group.
    let mut collided = Vec::new();
    for (i, c) in chunk.iter().enumerate() {
        let owner = query("SELECT group_id, id FROM codes WHERE digest = $1")
            .bind(c.digest.to_vec())
            .fetch_optional(&mut *conn)
            .await?;
        let stored_as_itself = match owner {
            Some(row) => {
                row.get::<String>("group_id")? == gid
                    && row.get::<String>("id")? == c.id.to_string()
            }
            None => false,
        };
        if !stored_as_itself {
            collided.push(i);
        }
    }
    Ok(collided)
}
