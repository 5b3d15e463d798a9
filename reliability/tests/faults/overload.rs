//! Far past capacity (issue 10): 1,024 clients redeem as fast as they can for
//! 30 s, with the rate limits off. The platform must shed what it cannot take
//! (503 `service_unavailable` with `Retry-After`, at once) instead of queueing
//! it in memory: every answer is 200, 202, 429 or 503, no connection is cut,
//! each service's peak memory stays within 100 MiB, and afterwards every
//! 200/202 was credited exactly once and the reconciliation is `ok`.

use std::time::{Duration, Instant};

use reliability::{
    faults::Progress,
    load::{Answer, Attempt, Load, tally},
    phone,
    platform::{Options, Platform, TOKEN},
    procstat::peak_rss_mib,
    verify::{Admin, Expect, verify},
};
use serde_json::json;

const CLIENTS: usize = 1_024;
const SECONDS: u64 = 30;
/// More codes than the platform can redeem in the time, so that every
/// attempt could succeed: any refusal is the platform shedding load.
const CODES: usize = 200_000;
const MAX_RSS_MIB: f64 = 100.0;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn overload_far_past_capacity_sheds_and_loses_nothing() {
    let _one = reliability::one_at_a_time().await;
    let p = Platform::start(Options::default()).await;
    let admin = Admin::new(&p.api_bases()[0], TOKEN);
    let (group_id, codes) = crate::create_group(
        &admin,
        json!({"name": "overload", "kind": "unique", "amount": 7, "count": CODES}),
    )
    .await;
    let attempts: Vec<Attempt> = codes
        .into_iter()
        .enumerate()
        .map(|(i, code)| Attempt {
            code,
            phone: phone(i),
        })
        .collect();
    let load = Load {
        bases: p.api_bases(),
        progress: Progress::default(),
        concurrency: CLIENTS,
        // One try each: a 503 is the answer under test, not a step to retry.
        tries: 1,
        until: Some(Instant::now() + Duration::from_secs(SECONDS)),
    };
    let started = Instant::now();
    let outcomes = load.run(attempts).await;
    let load_time = started.elapsed();

    let peaks: Vec<(String, f64)> = p
        .all()
        .map(|proc| {
            let pid = proc.pid().expect("running");
            (proc.name.clone(), peak_rss_mib(pid).unwrap_or(f64::NAN))
        })
        .collect();
    let (last, _) = tally(&outcomes);
    let cut: Vec<&String> = outcomes
        .iter()
        .flat_map(|o| &o.answers)
        .filter_map(|a| match a {
            Answer::Transport(e) => Some(e),
            Answer::Http(..) => None,
        })
        .take(5)
        .collect();
    assert!(cut.is_empty(), "connections cut: {cut:?}");
    for label in last.keys() {
        let status = label.split(' ').next().unwrap_or_default();
        assert!(
            ["200", "202", "429", "503"].contains(&status),
            "an answer outside 200/202/429/503: {label} ({last:?})"
        );
    }
    let shed = outcomes
        .iter()
        .flat_map(|o| &o.answers)
        .filter(|a| a.status() == Some(503))
        .count();
    for (name, mib) in &peaks {
        assert!(
            *mib <= MAX_RSS_MIB,
            "{name} peaked at {mib:.0} MiB under overload: {peaks:?}"
        );
    }
    let expect = Expect {
        group_id,
        limit: CODES as i64,
        exactly: false,
        per_phone: None,
    };
    let v = verify(&admin, &outcomes, &expect).await;
    let rate = outcomes.len() as f64 / load_time.as_secs_f64();
    let peaks_text: Vec<String> = peaks
        .iter()
        .map(|(n, m)| format!("{n} {m:.0} MiB"))
        .collect();
    crate::figures(
        "overload",
        &outcomes,
        &[format!(
            "{CLIENTS} clients for {SECONDS} s, {rate:.0} answers/s, {shed} answered 503; peak RSS: {}",
            peaks_text.join(", ")
        )],
        load_time,
        &v,
    );
}
