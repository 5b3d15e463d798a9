//! The first redeem after start-up (issue 12): somebody is the first caller
//! after every deploy. Each round restarts the three services (nats-server
//! and the data stay), waits until every `/readyz` is green, and times one
//! redeem from that moment. The median of the rounds is the figure.

use std::time::{Duration, Instant};

use anyhow::ensure;
use reliability::{phone, platform::Platform};
use serde_json::{Value, json};

pub struct First {
    /// Each round's redeem, from `/readyz` green to its answer.
    pub millis: Vec<f64>,
}

impl First {
    pub fn median(&self) -> f64 {
        let mut v = self.millis.clone();
        v.sort_by(f64::total_cmp);
        v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
    }
}

pub async fn run(p: &mut Platform, codes: &[String], rounds: usize) -> anyhow::Result<First> {
    let http = reqwest::Client::new();
    let mut millis = Vec::with_capacity(rounds);
    for round in 0..rounds {
        for proc in p
            .giftcode
            .iter_mut()
            .chain(p.wallet.iter_mut())
            .chain(p.gateway.iter_mut())
        {
            proc.kill9();
            proc.start();
        }
        // Every process green: the gateway's /readyz also pings both
        // services, but each service says for itself when it is warm.
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let mut all = true;
            for proc in p.all() {
                let ok = http
                    .get(format!("{}/readyz", proc.http))
                    .timeout(Duration::from_secs(1))
                    .send()
                    .await
                    .is_ok_and(|r| r.status() == 200);
                all &= ok;
            }
            if all {
                break;
            }
            ensure!(Instant::now() < deadline, "not ready after a restart");
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let base = &p.api_bases()[0];
        let code = codes
            .get(round)
            .ok_or_else(|| anyhow::anyhow!("no code for round {round}"))?;
        let started = Instant::now();
        let r = http
            .post(format!("{base}/redemptions"))
            .json(&json!({"code": code, "phone": phone(7_000_000 + round)}))
            .send()
            .await?;
        let status = r.status().as_u16();
        let body: Value = r.json().await.unwrap_or(Value::Null);
        let took = started.elapsed().as_secs_f64() * 1000.0;
        ensure!(
            status == 200,
            "first redeem of round {round}: {status} {body}"
        );
        eprintln!("  round {round}: first redeem {took:.1} ms after /readyz");
        millis.push(took);
    }
    Ok(First { millis })
}
