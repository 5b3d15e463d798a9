//! The first-N promise over HTTP: a shared code capped at 100, raced by 1,000
//! concurrent callers with distinct phones, credits exactly 100 wallets.

use std::{
    collections::HashMap,
    sync::Arc,
    time::{Duration, Instant},
};

use futures::future::join_all;
use reqwest::Method;
use serde_json::{Value, json};
use tokio::sync::Barrier;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shared_cap_of_100_raced_by_1000() {
    // Room for every caller at once: shedding load past the gateway's bound
    // is right, but this test is about the cap, not about the bound.
    let s = Arc::new(Stack::start(&[("GATEWAY_MAX_IN_FLIGHT", "2000")]).await);
    let group = s
        .create_group(json!({"name": "First 100", "kind": "shared", "amount": 250, "max_redemptions": 100, "code": "FIRST-100"}))
        .await;
    let barrier = Arc::new(Barrier::new(1000));
    let answers = join_all((0..1000).map(|i| {
        let (s, barrier) = (s.clone(), barrier.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            let (status, body, _) = s.redeem("first-100", &phone(i)).await;
            (status, body["code"].as_str().unwrap_or("").to_owned())
        })
    }))
    .await;
    let mut tally: HashMap<(u16, String), usize> = HashMap::new();
    for a in answers {
        *tally.entry(a.expect("task")).or_default() += 1;
    }
    let won = tally.get(&(200, String::new())).copied().unwrap_or(0)
        + tally.get(&(202, String::new())).copied().unwrap_or(0);
    assert_eq!(won, 100, "{tally:?}");
    assert_eq!(
        tally.get(&(409, "redemption_limit_reached".into())),
        Some(&900),
        "{tally:?}"
    );

    // Once quiet: exactly 100 wallets, each credited once.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, wallets) = s.get_json("/wallets?limit=500").await;
        let items = wallets["items"].as_array().cloned().unwrap_or_default();
        if items.len() == 100 && items.iter().all(|w| w["balance"] == 250) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "wallets never settled: {} wallets",
            items.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let gid = group["id"].as_str().expect("id");
    let (_, g) = s.get_json(&format!("/gift-groups/{gid}")).await;
    assert_eq!(g["stats"]["redemptions"], 100);
    assert_eq!(g["stats"]["redeemed_amount"], 25_000);
    let r = s
        .admin(
            Method::GET,
            &format!("/gift-groups/{gid}/redemptions?limit=500"),
        )
        .send()
        .await
        .expect("send");
    let page: Value = r.json().await.expect("json");
    assert_eq!(page["items"].as_array().map(Vec::len), Some(100));
    let (status, report) = s.get_json("/reconciliation").await;
    assert_eq!(status, 200);
    assert_eq!(report["ok"], true, "{report}");
    assert_eq!(report["redemptions"], 100);
    assert_eq!(report["credits"], 100);
    assert_eq!(report["groups"][0]["credited_amount"], 25_000);
    assert_eq!(report["ledger"]["sum_of_balances"], 0);
}

/// Past its bound on requests in flight the gateway sheds load at once: 503
/// `service_unavailable` with `Retry-After`, and nothing recorded for it.
/// Every redeem it took in is answered and credited once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_its_bound_the_gateway_sheds_with_retry_after() {
    let s = Arc::new(Stack::start(&[("GATEWAY_MAX_IN_FLIGHT", "4")]).await);
    let group = s
        .create_group(json!({"name": "Shed", "kind": "unique", "amount": 5, "count": 300}))
        .await;
    let codes: Vec<String> = group["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    let barrier = Arc::new(Barrier::new(codes.len()));
    let answers = join_all(codes.iter().enumerate().map(|(i, code)| {
        let (s, barrier, code) = (s.clone(), barrier.clone(), code.clone());
        tokio::spawn(async move {
            barrier.wait().await;
            s.redeem(&code, &phone(i)).await
        })
    }))
    .await;
    let (mut won, mut shed) = (0, 0);
    for a in answers {
        let (status, body, headers) = a.expect("task");
        match status {
            200 => won += 1,
            503 => {
                shed += 1;
                assert_eq!(body["code"], "service_unavailable", "{body}");
                assert_eq!(headers["retry-after"], "1");
            }
            other => panic!("{other}: {body}"),
        }
    }
    assert!(shed > 0, "300 at once through a bound of 4 shed nothing");
    let (_, g) = s
        .get_json(&format!(
            "/gift-groups/{}",
            group["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(g["stats"]["redemptions"], won, "only what was taken in");
    let (_, report) = s.get_json("/reconciliation").await;
    assert_eq!(report["ok"], true, "{report}");
}
