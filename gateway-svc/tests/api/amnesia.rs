//! A broker that comes back with an empty store (issue 11): while the
//! streams and consumers are missing the services say they are not ready;
//! they recreate them without a restart (and count it in /metrics); every
//! redemption whose events were lost with the store is re-driven until it is
//! credited exactly once. `REDRIVE_AFTER` is short here; the reliability
//! suite runs the same under load with the default.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_lost_its_store_heals_and_credits_everything() {
    let mut s = Stack::start_with(
        &[("GATEWAY_REDEEM_TIMEOUT_MS", "1500")],
        &[
            ("REDRIVE_AFTER", "2s"),
            ("WALLET_CONSUMER_ACK_WAIT_MS", "2000"),
        ],
    )
    .await;
    let group = s
        .create_group(json!({"name": "Amnesia", "kind": "unique", "amount": 100, "count": 20}))
        .await;
    let codes: Vec<String> = group["codes"]
        .as_array()
        .expect("codes")
        .iter()
        .map(|c| c.as_str().expect("code").to_owned())
        .collect();
    // Redeemed and credited before: their events are in the store that is
    // about to be lost, as are the events of giftcode-svc's marks.
    for (i, code) in codes[..5].iter().enumerate() {
        let (status, body, _) = s.redeem(code, &phone(i)).await;
        assert_eq!(status, 200, "{body}");
    }
    // Recorded, not yet credited: wallet-svc is down when they are made.
    s.kill_wallet();
    let mut pending = Vec::new();
    for (i, code) in codes[5..10].iter().enumerate() {
        let (status, body, _) = s.redeem(code, &phone(100 + i)).await;
        assert_eq!(status, 202, "{body}");
        pending.push(body["id"].as_str().expect("id").to_owned());
    }
    // The giftcode-svc outbox has sent their code.redeemed into the store...
    tokio::time::sleep(Duration::from_millis(500)).await;
    // ...which is lost.
    s.nats.stop_and_lose_store();
    tokio::task::block_in_place(|| s.nats.restart());

    // The services find their streams and consumers gone and make them
    // again without a restart (/readyz says what is missing meanwhile, for
    // the second or two that takes), and count it.
    let http = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    let metrics = loop {
        let ready = http.get(format!("{}/readyz", s.giftcode_http)).send().await;
        let metrics = match ready {
            Ok(r) if r.status() == 200 => http
                .get(format!("{}/metrics", s.giftcode_http))
                .send()
                .await
                .expect("metrics")
                .text()
                .await
                .unwrap_or_default(),
            Ok(r) => {
                let why = r.text().await.unwrap_or_default();
                assert!(
                    why.contains("missing") || why.contains("NATS"),
                    "not ready for another reason: {why}"
                );
                String::new()
            }
            Err(_) => String::new(),
        };
        let healed =
            metrics.contains("giftcode_svc_recreated_total{what=\"stream GIFTCODE_EVENTS\"} 1");
        if healed {
            break metrics;
        }
        assert!(
            Instant::now() < deadline,
            "giftcode-svc did not recreate its stream: {metrics}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(metrics.contains("giftcode_svc_redriven_total"), "{metrics}");
    s.start_wallet();

    // New redeems work at once, and every redemption ends credited once.
    for (i, code) in codes[10..15].iter().enumerate() {
        let (status, body, _) = s.redeem(code, &phone(200 + i)).await;
        assert!(status == 200 || status == 202, "{status} {body}");
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, report) = s.get_json("/reconciliation").await;
        if report["ok"] == true {
            assert_eq!(report["redemptions"], 15, "{report}");
            assert_eq!(report["credits"], 15, "{report}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "never reconciled after the broker lost its store: {report}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for id in pending {
        let (status, r) = s.get_json(&format!("/redemptions/{id}")).await;
        assert_eq!(
            (status, r["status"].as_str()),
            (200, Some("credited")),
            "{r}"
        );
    }
    let (_, g) = s
        .get_json(&format!(
            "/gift-groups/{}",
            group["id"].as_str().expect("id")
        ))
        .await;
    assert_eq!(g["stats"]["redemptions"], 15);
    let m = http
        .get(format!("{}/metrics", s.giftcode_http))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .unwrap_or_default();
    assert!(
        !m.contains("giftcode_svc_redriven_total 0\n"),
        "the lost events were re-driven: {m}"
    );
}
