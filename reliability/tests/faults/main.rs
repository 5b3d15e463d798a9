//! The fault-injection scenarios of issue 5 (and of issue 14's reversals,
//! in [`reversals`]), against real processes. Each
//! drives redeems through the gateway(s), injects its faults while they are in
//! flight, heals the platform, waits until the reconciliation is `ok`, and
//! checks the invariants of `reliability::verify`. Each prints its figures and
//! writes them to `target/tmp/reliability-<scenario>.txt`.
//!
//! `RELIABILITY_SCALE=full` runs the sizes of the issue (10,000 phones racing
//! for 1,000 places, thousands of redeems under faults); the default, CI size
//! keeps every scenario and fault at a fraction of the load.

mod fuzz;
mod overload;
mod reversals;

use std::time::{Duration, Instant};

use rand::seq::SliceRandom;
use reliability::{
    Scale,
    faults::{Progress, downtime, moments},
    load::{Attempt, Load, Outcome, tally},
    phone,
    platform::{Broker, Options, Platform, Storage, TOKEN},
    verify::{Admin, Expect, Verified, verify},
};
use serde_json::{Value, json};

/// Creates a group through the gateway; returns its id and codes.
pub(crate) async fn create_group(admin: &Admin, body: Value) -> (String, Vec<String>) {
    let (status, group) = admin.post("/gift-groups", body).await;
    assert_eq!(status, 201, "{group}");
    let id = group["id"].as_str().expect("id").to_owned();
    let codes = group["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    (id, codes)
}

/// A unique group of `n` codes with a per-phone limit of 2. Each phone tries
/// three codes (so one of the three must be refused), and one attempt in ten
/// is another phone trying a code someone else has.
async fn unique_load(admin: &Admin, n: usize) -> (Expect, Vec<Attempt>) {
    let (group_id, codes) = create_group(
        admin,
        json!({"name": "under fire", "kind": "unique", "amount": 10, "count": n, "per_phone_limit": 2}),
    )
    .await;
    let mut attempts: Vec<Attempt> = codes
        .iter()
        .enumerate()
        .map(|(i, code)| Attempt {
            code: code.clone(),
            phone: phone(i / 3),
        })
        .collect();
    attempts.extend((0..n / 10).map(|j| Attempt {
        code: codes[(j * 7) % n].clone(),
        phone: phone(1_000_000 + j),
    }));
    attempts.shuffle(&mut rand::rng());
    let expect = Expect {
        group_id,
        limit: n as i64,
        exactly: false,
        per_phone: Some(2),
    };
    (expect, attempts)
}

fn load(p: &Platform, concurrency: usize) -> Load {
    Load {
        bases: p.api_bases(),
        progress: Progress::default(),
        concurrency,
        tries: 4,
        until: None,
    }
}

/// Drives `attempts` through the gateways while `inject` strikes (it returns
/// what it did), then heals the platform, verifies the invariants and writes
/// the figures down.
async fn under_fire(
    name: &str,
    p: &mut Platform,
    admin: &Admin,
    expect: Expect,
    attempts: Vec<Attempt>,
    inject: impl AsyncFnOnce(&mut Platform, &Progress, usize) -> Vec<String>,
) {
    let l = load(p, 32);
    let progress = l.progress.clone();
    let total = attempts.len();
    let started = Instant::now();
    let (outcomes, faults) = tokio::join!(l.run(attempts), inject(p, &progress, total));
    let load_time = started.elapsed();
    p.heal().await;
    let v = verify(admin, &outcomes, &expect).await;
    figures(name, &outcomes, &faults, load_time, &v);
}

/// Prints and writes down a scenario's figures.
pub(crate) fn figures(
    name: &str,
    outcomes: &[Outcome],
    faults: &[String],
    load_time: Duration,
    v: &Verified,
) {
    let (last, all) = tally(outcomes);
    let sent: usize = all.values().sum();
    let text = format!(
        "scenario: {name}\n\
         attempts: {}   requests sent (retries included): {sent}   load time: {:.1} s\n\
         final answers: {last:?}\n\
         all answers: {all:?}\n\
         faults injected ({}): {}\n\
         redemptions recorded: {}   answered 200: {}   answered 202: {}   left undecided: {}\n\
         invariant checks passed: {}   time to quiet after the load: {:.1} s\n",
        outcomes.len(),
        load_time.as_secs_f64(),
        faults.len(),
        faults.join(", "),
        v.redemptions,
        v.credited_answers,
        v.pending_answers,
        v.undecided,
        v.checks,
        v.time_to_quiet.as_secs_f64(),
    );
    figures_text(name, &text);
}

/// Prints a scenario's figures and writes them to
/// `target/tmp/reliability-<name>.txt`.
pub(crate) fn figures_text(name: &str, text: &str) {
    eprintln!("{text}");
    let path =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("reliability-{name}.txt"));
    let _ = std::fs::write(path, text);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn first_n_race() {
    let _one = reliability::one_at_a_time().await;
    let scale = Scale::from_env();
    let (cap, phones, concurrency) = scale.pick((200, 2_000, 64), (1_000, 10_000, 256));
    let p = Platform::start(Options::default()).await;
    let admin = Admin::new(&p.api_bases()[0], TOKEN);
    let (group_id, _) = create_group(
        &admin,
        json!({"name": "first N", "kind": "shared", "amount": 100, "max_redemptions": cap, "code": "FIRST-N-RACE"}),
    )
    .await;
    let attempts = (0..phones)
        .map(|i| Attempt {
            code: "first-n-race".into(),
            phone: phone(i),
        })
        .collect();
    let started = Instant::now();
    let outcomes = load(&p, concurrency).run(attempts).await;
    let load_time = started.elapsed();
    let expect = Expect {
        group_id,
        limit: cap as i64,
        exactly: true,
        per_phone: None,
    };
    let v = verify(&admin, &outcomes, &expect).await;
    let (last, _) = tally(&outcomes);
    assert_eq!(
        last.get("409 redemption_limit_reached").copied(),
        Some(phones - cap),
        "everyone else is told the cap is reached: {last:?}"
    );
    figures("first-n-race", &outcomes, &[], load_time, &v);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_wallet_then_giftcode_under_load() {
    let _one = reliability::one_at_a_time().await;
    let scale = Scale::from_env();
    let (n, kills) = scale.pick((1_500, 1), (6_000, 3));
    let mut p = Platform::start(Options::default()).await;
    let admin = Admin::new(&p.api_bases()[0], TOKEN);
    let (expect, attempts) = unique_load(&admin, n).await;
    let inject = async |p: &mut Platform, progress: &Progress, total: usize| {
        // wallet-svc in the first half of the load, giftcode-svc in the second.
        let mut plan: Vec<(usize, &str)> = moments(total / 2, kills)
            .into_iter()
            .map(|m| (m, "wallet-svc"))
            .collect();
        plan.extend(
            moments(total / 2, kills)
                .into_iter()
                .map(|m| (total / 2 + m, "giftcode-svc")),
        );
        let mut faults = Vec::new();
        for (at, which) in plan {
            progress.reach(at).await;
            let proc = if which == "wallet-svc" {
                &mut p.wallet[0]
            } else {
                &mut p.giftcode[0]
            };
            proc.kill9();
            let down = downtime();
            faults.push(format!(
                "kill -9 {which} after {at} attempts, down {} ms",
                down.as_millis()
            ));
            tokio::time::sleep(down).await;
            proc.start();
        }
        faults
    };
    let name = "kill9-wallet-then-giftcode";
    under_fire(name, &mut p, &admin, expect, attempts, inject).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_restarted_under_load() {
    let _one = reliability::one_at_a_time().await;
    let scale = Scale::from_env();
    let (n, restarts) = scale.pick((1_200, 1), (5_000, 3));
    let mut p = Platform::start(Options::default()).await;
    let admin = Admin::new(&p.api_bases()[0], TOKEN);
    let (expect, attempts) = unique_load(&admin, n).await;
    let inject = async |p: &mut Platform, progress: &Progress, total: usize| {
        let mut faults = Vec::new();
        for at in moments(total, restarts) {
            progress.reach(at).await;
            let Broker::Single(nats) = &mut p.broker else {
                unreachable!("one server")
            };
            nats.stop();
            let down = downtime();
            faults.push(format!(
                "kill -9 nats-server after {at} attempts, down {} ms",
                down.as_millis()
            ));
            tokio::time::sleep(down).await;
            tokio::task::block_in_place(|| nats.restart());
        }
        faults
    };
    under_fire("nats-restart", &mut p, &admin, expect, attempts, inject).await;
}

/// The broker comes back with an empty store (issue 11): `kill -9`, its
/// store deleted, restarted on the same port. Streams and consumers are
/// recreated while the services run, and every redemption whose event was
/// lost is re-driven until it is credited.
async fn nats_server_loses_its_store(storage: Storage, name: &str) {
    let _one = reliability::one_at_a_time().await;
    let scale = Scale::from_env();
    let n = scale.pick(1_200, 5_000);
    let mut p = Platform::start(Options {
        storage,
        ..Options::default()
    })
    .await;
    let admin = Admin::new(&p.api_bases()[0], TOKEN);
    let (expect, attempts) = unique_load(&admin, n).await;
    let inject = async |p: &mut Platform, progress: &Progress, total: usize| {
        let at = moments(total, 1)[0];
        progress.reach(at).await;
        // wallet-svc goes first, so that redemptions pile up unconsumed in
        // the store that is about to be lost: their events exist nowhere
        // but in giftcode-svc's database afterwards.
        p.wallet[0].kill9();
        tokio::time::sleep(downtime()).await;
        let Broker::Single(nats) = &mut p.broker else {
            unreachable!("one server")
        };
        nats.stop_and_lose_store();
        let down = downtime();
        tokio::time::sleep(down).await;
        tokio::task::block_in_place(|| nats.restart());
        p.wallet[0].start();
        vec![format!(
            "kill -9 wallet-svc after {at} attempts, then kill -9 nats-server, its store deleted, \
             back empty after {} ms, then wallet-svc",
            down.as_millis()
        )]
    };
    under_fire(name, &mut p, &admin, expect, attempts, inject).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_loses_its_store_sqlite() {
    nats_server_loses_its_store(Storage::Sqlite, "broker-amnesia-sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn nats_server_loses_its_store_postgres() {
    nats_server_loses_its_store(Storage::Postgres, "broker-amnesia-postgres").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn scale_out_cluster_loses_a_node_and_a_replica_of_each() {
    let _one = reliability::one_at_a_time().await;
    let scale = Scale::from_env();
    let n = scale.pick(1_200, 5_000);
    let mut p = Platform::start(Options {
        storage: Storage::Postgres,
        replicas: 2,
        cluster: true,
        ..Options::default()
    })
    .await;
    let admin = Admin::new(&p.api_bases()[1], TOKEN);
    let (expect, attempts) = unique_load(&admin, n).await;
    let inject = async |p: &mut Platform, progress: &Progress, total: usize| {
        let mut faults = Vec::new();
        let at = moments(total, 2);
        progress.reach(at[0]).await;
        let Broker::Cluster(cluster) = &mut p.broker else {
            unreachable!("a cluster")
        };
        cluster.kill(0);
        faults.push(format!("kill -9 NATS node n0 after {} attempts", at[0]));
        for proc in [&mut p.giftcode[0], &mut p.wallet[0], &mut p.gateway[0]] {
            proc.kill9();
            faults.push(format!("kill -9 {} after {} attempts", proc.name, at[0]));
        }
        progress.reach(at[1]).await;
        let Broker::Cluster(cluster) = &mut p.broker else {
            unreachable!("a cluster")
        };
        tokio::task::block_in_place(|| cluster.restart(0));
        faults.push(format!("NATS node n0 back after {} attempts", at[1]));
        faults
    };
    under_fire("scale-out", &mut p, &admin, expect, attempts, inject).await;
}
