//! The invariants, checked once the platform is quiet (DESIGN.md §7, issue 5):
//!
//! - quiet means `GET /reconciliation` is `ok`: every recorded redemption is
//!   credited exactly once, no credit lacks its redemption, every group's
//!   totals match its funding account, the ledger sums to zero;
//! - every 200 and 202 names a redemption that is recorded and credited, and a
//!   replay names the same one;
//! - every recorded redemption was answered 200/202 to its caller, or its
//!   caller got no definite answer (a cut connection, a timeout); a refusal
//!   (4xx) or a "nothing was recorded" 503 never left a redemption behind;
//! - no code, shared cap or per-phone limit is exceeded.

use std::{
    collections::{BTreeMap, HashMap, HashSet},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::load::{Answer, Outcome};

/// An admin's HTTP client on one gateway.
#[derive(Clone)]
pub struct Admin {
    pub http: reqwest::Client,
    pub base: String,
    pub token: String,
}

impl Admin {
    pub fn new(base: &str, token: &str) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(60))
                .build()
                .unwrap_or_else(|e| panic!("http: {e}")),
            base: base.to_owned(),
            token: token.to_owned(),
        }
    }

    pub async fn get(&self, path: &str) -> (u16, Value) {
        match self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
        {
            Ok(r) => {
                let status = r.status().as_u16();
                (status, r.json().await.unwrap_or(Value::Null))
            }
            Err(e) => (0, Value::String(e.to_string())),
        }
    }

    pub async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        let status = r.status().as_u16();
        (status, r.json().await.unwrap_or(Value::Null))
    }

    /// Every item of a paged admin list.
    pub async fn all(&self, path: &str) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        loop {
            let sep = if path.contains('?') { '&' } else { '?' };
            let url = match &cursor {
                Some(c) => format!("{path}{sep}limit=500&cursor={c}"),
                None => format!("{path}{sep}limit=500"),
            };
            let (status, page) = self.get(&url).await;
            assert_eq!(status, 200, "GET {url}: {page}");
            items.extend(page["items"].as_array().cloned().unwrap_or_default());
            cursor = page["next_cursor"].as_str().map(str::to_owned);
            if cursor.is_none() {
                return items;
            }
        }
    }
}

/// What a scenario promises about its group.
pub struct Expect {
    pub group_id: String,
    /// The group's limit: its code count (unique) or its cap (shared).
    pub limit: i64,
    /// When every attempt could have won (a shared code raced by more phones
    /// than its cap), exactly `limit` redemptions.
    pub exactly: bool,
    /// The group's per-phone limit, if any.
    pub per_phone: Option<usize>,
}

/// What the checks saw, for the scenario's figures.
#[derive(Debug)]
pub struct Verified {
    pub time_to_quiet: Duration,
    pub redemptions: usize,
    pub credited_answers: usize,
    pub pending_answers: usize,
    pub undecided: usize,
    pub checks: usize,
}

/// Waits until the reconciliation is `ok`, then checks the rest.
pub async fn verify(admin: &Admin, outcomes: &[Outcome], expect: &Expect) -> Verified {
    let started = Instant::now();
    let mut checks = 0;
    let deadline = started + Duration::from_secs(240);
    let report = loop {
        let (status, report) = admin.get("/reconciliation").await;
        if status == 200 && report["ok"] == true {
            break report;
        }
        assert!(
            Instant::now() < deadline,
            "never quiet: the reconciliation still says {status} {report}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let time_to_quiet = started.elapsed();
    checks += 1;

    let gid = &expect.group_id;
    let recorded = admin.all(&format!("/gift-groups/{gid}/redemptions")).await;
    let by_id: HashMap<&str, &Value> = recorded
        .iter()
        .filter_map(|r| r["id"].as_str().map(|id| (id, r)))
        .collect();
    assert_eq!(by_id.len(), recorded.len(), "redemption ids are unique");
    assert!(
        report["redemptions"].as_u64() >= Some(recorded.len() as u64),
        "the reconciliation counted them all"
    );

    // Answers against what was recorded.
    let mut answered: HashSet<&str> = HashSet::new();
    let (mut credited_answers, mut pending_answers, mut undecided) = (0, 0, 0);
    let mut by_attempt: HashMap<(&str, String), &Outcome> = HashMap::new();
    for o in outcomes {
        by_attempt.insert((o.attempt.phone.as_str(), tail(&o.attempt.code)), o);
        let mut ids = HashSet::new();
        for a in &o.answers {
            let Answer::Http(status @ (200 | 202), body) = a else {
                continue;
            };
            let id = body["id"]
                .as_str()
                .unwrap_or_else(|| panic!("{status} without an id: {body}"));
            ids.insert(id);
            let r = by_id
                .get(id)
                .unwrap_or_else(|| panic!("answered {status} for {id}, which is not recorded"));
            assert_eq!(r["phone"], body["phone"], "{id}");
            if *status == 200 {
                credited_answers += 1;
                assert_eq!(body["status"], "credited", "a 200 is a credit: {body}");
                assert!(body["wallet"]["balance"].is_i64(), "{body}");
            } else {
                pending_answers += 1;
                assert_eq!(body["status"], "pending", "{body}");
            }
        }
        assert!(ids.len() <= 1, "a replay names the original: {ids:?}");
        answered.extend(ids);
        if !o.last().is_some_and(Answer::is_definite) {
            undecided += 1;
        }
    }
    checks += 3;
    for r in &recorded {
        let id = r["id"].as_str().unwrap_or("");
        if answered.contains(id) {
            continue;
        }
        // Recorded, yet its caller never heard 200/202: only a caller left
        // without a definite answer may be in that state, and not one told
        // every time that nothing was recorded.
        let phone = r["phone"].as_str().unwrap_or("");
        let o = by_attempt
            .get(&(phone, tail(r["code_hint"].as_str().unwrap_or(""))))
            .unwrap_or_else(|| panic!("{id} was recorded but nobody asked for it: {r}"));
        assert!(
            !o.last().is_some_and(Answer::is_definite),
            "{id} was recorded but its caller was told otherwise: {:?}",
            o.answers
        );
        assert!(
            !o.answers.iter().all(said_nothing_recorded),
            "503 said nothing was recorded, yet {id} was: {:?}",
            o.answers
        );
    }
    checks += 2;

    // Limits.
    let n = recorded.len() as i64;
    if expect.exactly {
        assert_eq!(n, expect.limit, "exactly the cap");
    } else {
        assert!(
            n <= expect.limit,
            "{n} redemptions over a limit of {}",
            expect.limit
        );
    }
    let codes = admin.all(&format!("/gift-groups/{gid}/codes")).await;
    for c in &codes {
        let used = c["redemptions"].as_i64().unwrap_or(0);
        assert!(used <= expect.limit, "code {c} over its limit");
        if codes.len() > 1 {
            assert!(used <= 1, "a unique code redeemed twice: {c}");
        }
    }
    if let Some(limit) = expect.per_phone {
        let mut per_phone: BTreeMap<&str, usize> = BTreeMap::new();
        for r in &recorded {
            *per_phone
                .entry(r["phone"].as_str().unwrap_or(""))
                .or_default() += 1;
        }
        let over: Vec<_> = per_phone.iter().filter(|(_, n)| **n > limit).collect();
        assert!(over.is_empty(), "phones over the per-phone limit: {over:?}");
    }
    let (_, group) = admin.get(&format!("/gift-groups/{gid}")).await;
    assert_eq!(group["stats"]["redemptions"], n, "the group's stats agree");
    checks += 4;

    Verified {
        time_to_quiet,
        redemptions: recorded.len(),
        credited_answers,
        pending_answers,
        undecided,
        checks,
    }
}

/// The last four letters of a code or of its hint (`****-****-QXX4`): with
/// the phone, what ties a recorded redemption to the attempt that made it.
fn tail(code: &str) -> String {
    let chars: Vec<char> = code
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_uppercase())
        .collect();
    chars[chars.len().saturating_sub(4)..].iter().collect()
}

fn said_nothing_recorded(a: &Answer) -> bool {
    matches!(a, Answer::Http(503, body)
        if body["detail"].as_str().is_some_and(|d| d.contains("nothing was recorded")))
}
