//! The flash (issue 12): one shared code capped at 1,000, announced on air,
//! and 20,000 distinct phones at once (256 at a time). What matters is the
//! time until every attempt has its answer, and what a refusal costs once
//! the cap is gone: it should be about what the echo baseline costs (one
//! request, one reply, one read). Exactly 1,000 must be credited.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::ensure;
use reliability::{phone, verify::Admin};
use serde_json::{Value, json};

pub struct Flash {
    pub cap: usize,
    pub phones: usize,
    pub concurrency: usize,
    /// From the first request to the last answer.
    pub all_answered: Duration,
    pub winners: usize,
    pub refused: usize,
    /// Refusals a second once the cap was gone (answers that started after
    /// the last winner was answered).
    pub refusals_per_second: f64,
    /// CPU seconds per 1,000 refusals after the cap, all processes.
    pub cpu_per_1000_refusals: f64,
}

/// One attempt: when it started and ended, and its status and code word.
struct Answer {
    start: Instant,
    end: Instant,
    status: u16,
    code: String,
}

pub async fn run(
    admin: &Admin,
    base: &str,
    cap: usize,
    phones: usize,
    concurrency: usize,
    pids: &[(&'static str, u32)],
) -> anyhow::Result<Flash> {
    let (status, group) = admin
        .post(
            "/gift-groups",
            json!({"name": "flash", "kind": "shared", "amount": 100, "max_redemptions": cap,
                   "code": "ON-AIR-NOW"}),
        )
        .await;
    ensure!(status == 201, "flash group: {status} {group}");
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency)
        .timeout(Duration::from_secs(60))
        .build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let answers = Arc::new(Mutex::new(Vec::with_capacity(phones)));
    let cpu_before: Vec<f64> = pids
        .iter()
        .map(|(_, p)| crate::procstat::cpu_seconds(*p).unwrap_or(f64::NAN))
        .collect();
    let workers: Vec<_> = (0..concurrency)
        .map(|_| {
            let (http, next, answers, base) =
                (http.clone(), next.clone(), answers.clone(), base.to_owned());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= phones {
                        return;
                    }
                    let start = Instant::now();
                    let sent = http
                        .post(format!("{base}/redemptions"))
                        .json(&json!({"code": "on air now", "phone": phone(5_000_000 + i)}))
                        .send()
                        .await;
                    let (status, body) = match sent {
                        Ok(r) => {
                            let s = r.status().as_u16();
                            (s, r.json::<Value>().await.unwrap_or(Value::Null))
                        }
                        Err(e) => (0, json!({"code": e.to_string()})),
                    };
                    let a = Answer {
                        start,
                        end: Instant::now(),
                        status,
                        code: body["code"].as_str().unwrap_or("").to_owned(),
                    };
                    if let Ok(mut v) = answers.lock() {
                        v.push(a);
                    }
                }
            })
        })
        .collect();
    for w in futures::future::join_all(workers).await {
        w?;
    }
    let cpu_after: Vec<f64> = pids
        .iter()
        .map(|(_, p)| crate::procstat::cpu_seconds(*p).unwrap_or(f64::NAN))
        .collect();
    let answers = std::mem::take(&mut *answers.lock().unwrap_or_else(|e| e.into_inner()));
    let first = answers.iter().map(|a| a.start).min();
    let last = answers.iter().map(|a| a.end).max();
    let won: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.status == 200 || a.status == 202)
        .collect();
    let refused = answers
        .iter()
        .filter(|a| a.status == 409 && a.code == "redemption_limit_reached")
        .count();
    let other: Vec<(u16, &str)> = answers
        .iter()
        .filter(|a| !(a.status == 200 || a.status == 202 || a.status == 409))
        .map(|a| (a.status, a.code.as_str()))
        .take(5)
        .collect();
    ensure!(other.is_empty(), "invalid flash: answers {other:?}");
    ensure!(
        won.len() == cap && refused == phones - cap,
        "{} won and {refused} refused, not {cap} and {}",
        won.len(),
        phones - cap
    );
    let (Some(first), Some(last)) = (first, last) else {
        anyhow::bail!("no answers");
    };
    let cap_gone = won.iter().map(|a| a.end).max().unwrap_or(first);
    let after: Vec<&Answer> = answers
        .iter()
        .filter(|a| a.start >= cap_gone && a.status == 409)
        .collect();
    let tail = last.saturating_duration_since(cap_gone).as_secs_f64();
    let refusals_per_second = after.len() as f64 / tail.max(1e-6);
    // CPU over the whole flash, charged to the refusals after the cap in
    // proportion to the time they took.
    let whole = last.duration_since(first).as_secs_f64();
    let cpu: f64 = cpu_after.iter().zip(&cpu_before).map(|(a, b)| a - b).sum();
    let cpu_per_1000_refusals =
        cpu * (tail / whole.max(1e-6)) / (after.len().max(1) as f64) * 1000.0;
    // Exactly `cap` credited, and the books agree.
    let gid = group["id"].as_str().unwrap_or_default();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let (_, g) = admin.get(&format!("/gift-groups/{gid}")).await;
        let (_, report) = admin.get("/reconciliation").await;
        if report["ok"] == true && g["stats"]["redemptions"] == cap {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "the flash never reconciled: {report}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Ok(Flash {
        cap,
        phones,
        concurrency,
        all_answered: last.duration_since(first),
        winners: won.len(),
        refused,
        refusals_per_second,
        cpu_per_1000_refusals,
    })
}
