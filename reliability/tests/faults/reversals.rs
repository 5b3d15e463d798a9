//! Reversals under fire (issue 14, DESIGN.md §12): redemptions are reversed
//! under load while each service (wallet-svc, giftcode-svc, the gateway) is
//! killed with -9 in turn, on SQLite and on PostgreSQL. A third of the
//! wallets were spent first, so their reversals must be refused. Afterwards
//! the money adds up: the reconciliation is `ok` (per group, net of
//! reversals; per redemption, no reversal half done; the ledger sums to
//! zero), every reversal is done exactly once or refused, every wallet holds
//! what it must, and the group's stats and codes agree.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

use futures::StreamExt;
use reliability::{
    Scale,
    faults::{Progress, downtime, moments},
    phone,
    platform::{Options, Platform, Storage, TOKEN},
    verify::Admin,
};
use serde_json::{Value, json};

use crate::{create_group, figures_text};

const AMOUNT: i64 = 10;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_each_service_during_reversals_sqlite() {
    reversals_under_fire(Storage::Sqlite, "reversals-kill9-sqlite").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_each_service_during_reversals_postgres() {
    reversals_under_fire(Storage::Postgres, "reversals-kill9-postgres").await;
}

/// POST with retries on a transport error, a 503 (a process down) or a 409
/// `redemption_not_credited` (the credit not confirmed yet: wallet-svc was
/// down or giftcode-svc had not heard of it), as a client would: the same
/// body and Idempotency-Key each time, so a retry is the same request.
/// The final status and body, and how many sends it took.
async fn post(
    http: &reqwest::Client,
    base: &str,
    path: &str,
    key: &str,
    body: &Value,
) -> (u16, Value, usize) {
    let mut sends = 0;
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        sends += 1;
        let r = http
            .post(format!("{base}{path}"))
            .bearer_auth(TOKEN)
            .header("idempotency-key", key)
            .json(body)
            .send()
            .await;
        match r {
            Ok(r) if r.status().as_u16() != 503 => {
                let status = r.status().as_u16();
                let body = r.json().await.unwrap_or(Value::Null);
                if body["code"] != "redemption_not_credited" {
                    return (status, body, sends);
                }
                assert!(Instant::now() < deadline, "POST {path}: never credited");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            _ => {
                assert!(Instant::now() < deadline, "POST {path}: no answer in 180 s");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

async fn reversals_under_fire(storage: Storage, name: &str) {
    let _one = reliability::one_at_a_time().await;
    let n = Scale::from_env().pick(240, 1_200);
    let mut p = Platform::start(Options {
        storage,
        ..Options::default()
    })
    .await;
    let base = p.api_bases()[0].clone();
    let admin = Admin::new(&base, TOKEN);
    let http = admin.http.clone();
    let (gid, codes) = create_group(
        &admin,
        json!({"name": "reversals", "kind": "unique", "amount": AMOUNT, "count": n}),
    )
    .await;

    // Every code redeemed by its own phone; every third wallet then spent.
    let redeemed: Vec<(usize, String)> = futures::stream::iter(codes.iter().enumerate())
        .map(|(i, code)| {
            let http = http.clone();
            let base = base.clone();
            async move {
                let body = json!({"code": code, "phone": phone(i)});
                let (status, r, _) =
                    post(&http, &base, "/redemptions", &format!("r{i}"), &body).await;
                assert_eq!(status, 200, "{r}");
                if i % 3 == 0 {
                    let spend = json!({"amount": AMOUNT});
                    let path = format!("/wallets/{}/debits", phone(i));
                    let (status, d, _) =
                        post(&http, &base, &path, &format!("spend-{i}"), &spend).await;
                    assert_eq!(status, 201, "{d}");
                }
                (i, r["id"].as_str().expect("id").to_owned())
            }
        })
        .buffer_unordered(16)
        .collect()
        .await;

    // The reversals, with one kill -9 of each service while they run.
    let progress = Progress::default();
    let started = Instant::now();
    let load = futures::stream::iter(redeemed.iter().cloned())
        .map(|(i, id)| {
            let (http, base, progress) = (http.clone(), base.clone(), progress.clone());
            async move {
                let body = json!({"reason": "under fire", "release_code": i % 2 == 0});
                let path = format!("/redemptions/{id}/reversal");
                let answer = post(&http, &base, &path, &format!("rev-{id}"), &body).await;
                progress.tick();
                (i, id, answer)
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>();
    let inject = async {
        let mut faults = Vec::new();
        let at = moments(n, 3);
        for (k, which) in ["wallet-svc", "giftcode-svc", "gateway-svc"]
            .into_iter()
            .enumerate()
        {
            progress.reach(at[k]).await;
            let proc = match which {
                "wallet-svc" => &mut p.wallet[0],
                "giftcode-svc" => &mut p.giftcode[0],
                _ => &mut p.gateway[0],
            };
            proc.kill9();
            let down = downtime();
            faults.push(format!(
                "kill -9 {which} after {} reversals, down {} ms",
                at[k],
                down.as_millis()
            ));
            tokio::time::sleep(down).await;
            proc.start();
        }
        faults
    };
    let (answers, faults) = tokio::join!(load, inject);
    let load_time = started.elapsed();
    p.heal().await;

    // Quiet: the books reconcile and no reversal is left pending.
    let quiet_from = Instant::now();
    let deadline = quiet_from + Duration::from_secs(240);
    let (report, final_states) = loop {
        let (status, report) = admin.get("/reconciliation").await;
        let recorded = admin.all(&format!("/gift-groups/{gid}/redemptions")).await;
        let pending = recorded
            .iter()
            .filter(|r| r["reversal"]["status"] == "pending" || r["reversal"].is_null())
            .count();
        if status == 200 && report["ok"] == true && pending == 0 {
            break (report, recorded);
        }
        assert!(
            Instant::now() < deadline,
            "never quiet: {pending} reversals pending; {status} {report}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let time_to_quiet = quiet_from.elapsed();
    let mut checks = 1;

    // Each reversal done once, or refused where the wallet was spent; each
    // wallet holds what it must; answers agree with the outcome.
    let states: HashMap<&str, &Value> = final_states
        .iter()
        .filter_map(|r| r["id"].as_str().map(|id| (id, r)))
        .collect();
    assert_eq!(states.len(), n, "every redemption is listed once");
    let mut tally: HashMap<String, usize> = HashMap::new();
    let mut sends = 0;
    let (mut done, mut refused, mut released) = (0, 0, 0);
    for (i, id, (status, body, tries)) in &answers {
        *tally
            .entry(
                format!("{status} {}", body["code"].as_str().unwrap_or(""))
                    .trim()
                    .to_owned(),
            )
            .or_default() += 1;
        sends += tries;
        let r = states[id.as_str()];
        let spent = i % 3 == 0;
        if spent {
            refused += 1;
            assert_eq!(r["status"], "credited", "{r}");
            assert_eq!(r["reversal"]["status"], "refused", "{r}");
            assert!(
                matches!(status, 422 | 202),
                "a spent wallet's reversal: {status} {body}"
            );
        } else {
            done += 1;
            assert_eq!(r["status"], "reversed", "{r}");
            assert_eq!(r["reversal"]["status"], "done", "{r}");
            assert!(matches!(status, 200 | 202), "{status} {body}");
            if r["reversal"]["release_code"] == true {
                released += 1;
            }
        }
        let (_, wallet) = admin.get(&format!("/wallets/{}", phone(*i))).await;
        assert_eq!(
            wallet["balance"],
            0,
            "{} after its reversal: {wallet}",
            phone(*i)
        );
        let txs = admin
            .all(&format!("/wallets/{}/transactions", phone(*i)))
            .await;
        let reversals = txs
            .iter()
            .filter(|t| t["kind"] == "gift_code_reversal" && t["reference"] == id.as_str())
            .count();
        assert_eq!(
            reversals,
            usize::from(!spent),
            "{id}: reversal transactions {txs:?}"
        );
    }
    checks += 3;
    let (_, group) = admin.get(&format!("/gift-groups/{gid}")).await;
    let stats = &group["stats"];
    assert_eq!(stats["reversed"], done, "{stats}");
    assert_eq!(stats["redemptions"], refused, "{stats}");
    assert_eq!(stats["redeemed_amount"], refused as i64 * AMOUNT, "{stats}");
    assert_eq!(
        stats["remaining_amount"],
        released as i64 * AMOUNT,
        "{stats}"
    );
    let unredeemed = admin
        .all(&format!("/gift-groups/{gid}/codes?status=unredeemed"))
        .await
        .len();
    assert_eq!(unredeemed, released, "released codes are redeemable again");
    checks += 2;
    let checked = report["groups"]
        .as_array()
        .and_then(|g| g.iter().find(|c| c["group_id"] == gid.as_str()).cloned())
        .expect("the group is reconciled");
    assert_eq!(checked["credits"], refused, "net of reversals: {checked}");
    checks += 1;

    let mut tally: Vec<_> = tally.into_iter().collect();
    tally.sort_unstable();
    let text = format!(
        "scenario: {name}\n\
         redemptions: {n}   reversals asked: {}   requests sent (retries included): {sends}   load time: {:.1} s\n\
         final answers: {tally:?}\n\
         faults injected ({}): {}\n\
         reversed: {done} (codes released: {released})   refused (wallet spent): {refused}\n\
         invariant checks passed: {checks}   time to quiet after the load: {:.1} s\n",
        answers.len(),
        load_time.as_secs_f64(),
        faults.len(),
        faults.join(", "),
        time_to_quiet.as_secs_f64(),
    );
    figures_text(name, &text);
}
