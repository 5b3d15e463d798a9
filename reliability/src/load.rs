//! Redeem load over HTTP, as real clients make it: a fixed number of workers
//! take attempts (code, phone) from a queue and `POST /redemptions`, spreading
//! over the gateways. An attempt whose answer is not definite (503, a broken
//! connection, a timeout) is retried a few times, as the contract invites:
//! a redeem is idempotent per code and phone. Every answer is kept.

use std::{
    collections::BTreeMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::Duration,
};

use serde_json::{Value, json};

use crate::faults::Progress;

#[derive(Debug, Clone)]
pub struct Attempt {
    pub code: String,
    pub phone: String,
}

/// One HTTP answer, or the lack of one.
#[derive(Debug, Clone)]
pub enum Answer {
    /// A status and the JSON body.
    Http(u16, Value),
    /// No answer: refused connection, reset, timeout.
    Transport(String),
}

impl Answer {
    pub fn status(&self) -> Option<u16> {
        match self {
            Answer::Http(s, _) => Some(*s),
            Answer::Transport(_) => None,
        }
    }

    /// 200, 202 or a 4xx: the platform has said what happened.
    pub fn is_definite(&self) -> bool {
        matches!(self, Answer::Http(s, _) if *s < 500)
    }

    /// The label the tallies use: `200`, `409 code_already_redeemed`, `transport`.
    pub fn label(&self) -> String {
        match self {
            Answer::Http(s, body) => match body["code"].as_str() {
                Some(code) => format!("{s} {code}"),
                None => s.to_string(),
            },
            Answer::Transport(_) => "transport".into(),
        }
    }
}

/// What happened to one attempt: every answer, in order.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub attempt: Attempt,
    pub answers: Vec<Answer>,
}

impl Outcome {
    pub fn last(&self) -> Option<&Answer> {
        self.answers.last()
    }
}

pub struct Load {
    pub bases: Vec<String>,
    /// Counts finished attempts, for the fault injector.
    pub progress: Progress,
    pub concurrency: usize,
    /// Tries per attempt while the answers are not definite.
    pub tries: usize,
    /// No attempt is started after this moment (the rest are left undone).
    pub until: Option<std::time::Instant>,
}

impl Load {
    pub async fn run(&self, attempts: Vec<Attempt>) -> Vec<Outcome> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(self.concurrency)
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap_or_else(|e| panic!("http client: {e}"));
        let queue = Arc::new(Mutex::new(
            attempts.into_iter().enumerate().rev().collect::<Vec<_>>(),
        ));
        let results = Arc::new(Mutex::new(BTreeMap::new()));
        let turn = Arc::new(AtomicUsize::new(0));
        let workers = (0..self.concurrency).map(|_| {
            let (queue, results, turn, http) =
                (queue.clone(), results.clone(), turn.clone(), http.clone());
            let (bases, tries, progress) = (self.bases.clone(), self.tries, self.progress.clone());
            let until = self.until;
            tokio::spawn(async move {
                loop {
                    if until.is_some_and(|u| std::time::Instant::now() >= u) {
                        break;
                    }
                    let next = queue.lock().map(|mut q| q.pop()).unwrap_or(None);
                    let Some((i, attempt)) = next else { break };
                    let mut answers = Vec::new();
                    // Spread attempts over the gateways, and send each retry
                    // to the next one, as a client behind a balancer would.
                    let first = turn.fetch_add(1, Ordering::Relaxed);
                    for t in 0..tries {
                        let base = &bases[(first + t) % bases.len()];
                        let answer = redeem(&http, base, &attempt).await;
                        let done = answer.is_definite();
                        answers.push(answer);
                        if done {
                            break;
                        }
                        tokio::time::sleep(Duration::from_millis(200 * (t as u64 + 1))).await;
                    }
                    if let Ok(mut r) = results.lock() {
                        r.insert(i, Outcome { attempt, answers });
                    }
                    progress.tick();
                }
            })
        });
        for w in futures::future::join_all(workers).await {
            w.unwrap_or_else(|e| panic!("load worker: {e}"));
        }
        let results = std::mem::take(&mut *results.lock().unwrap_or_else(|e| e.into_inner()));
        results.into_values().collect()
    }
}

async fn redeem(http: &reqwest::Client, base: &str, a: &Attempt) -> Answer {
    let sent = http
        .post(format!("{base}/redemptions"))
        .json(&json!({"code": a.code, "phone": a.phone}))
        .send()
        .await;
    match sent {
        Ok(r) => {
            let status = r.status().as_u16();
            match r.bytes().await {
                Ok(b) => Answer::Http(status, serde_json::from_slice(&b).unwrap_or(Value::Null)),
                Err(e) => Answer::Transport(e.to_string()),
            }
        }
        Err(e) => Answer::Transport(e.to_string()),
    }
}

/// Final answers by label, and every answer by label (retries included).
pub fn tally(outcomes: &[Outcome]) -> (BTreeMap<String, usize>, BTreeMap<String, usize>) {
    let mut last = BTreeMap::new();
    let mut all = BTreeMap::new();
    for o in outcomes {
        if let Some(a) = o.last() {
            *last.entry(a.label()).or_default() += 1;
        }
        for a in &o.answers {
            *all.entry(a.label()).or_default() += 1;
        }
    }
    (last, all)
}
