//! Reversals and disabled codes (DESIGN.md §12), end to end on both engines:
//! with and without `release_code`, a wallet holding too little, a pending
//! redemption, a double reversal, a reversal racing a debit of the same
//! money, a disabled code. Each ends with the reconciliation: the books add
//! up, and a credit and its reversal net to zero.

use reqwest::Method;
use serde_json::{Value, json};
use testkit::{bus::Backend, on_both_backends};

use crate::helpers::*;

on_both_backends!(
    reversals_undo_credits_once_and_release_codes_on_request,
    a_reversal_needs_the_money_and_a_credited_redemption,
    a_reversal_racing_a_debit_of_the_same_money_lets_one_win,
    a_disabled_code_is_inactive_until_enabled
);

async fn stack(backend: Backend, gateway_env: &[(&str, &str)]) -> Stack {
    let dir = tempfile::tempdir().expect("tempdir");
    let databases = match backend {
        Backend::Sqlite => Databases {
            giftcode: format!("sqlite://{}/giftcode.db", dir.path().display()),
            wallet: format!("sqlite://{}/wallet.db", dir.path().display()),
            code_key: None,
        },
        Backend::Postgres => Databases {
            giftcode: testkit::bus::database_url(backend, dir.path(), "giftcode").await,
            wallet: testkit::bus::database_url(backend, dir.path(), "wallet").await,
            code_key: Some("9".repeat(64)),
        },
    };
    Stack::start_on(dir, databases, gateway_env, &[]).await
}

async fn reverse(s: &Stack, id: &str, key: &str, body: Value) -> (u16, Value) {
    let r = s
        .admin(Method::POST, &format!("/redemptions/{id}/reversal"))
        .header("idempotency-key", key)
        .json(&body)
        .send()
        .await
        .expect("reverse");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn move_money(s: &Stack, phone: &str, way: &str, key: &str, amount: i64) -> (u16, Value) {
    let r = s
        .admin(Method::POST, &format!("/wallets/{phone}/{way}"))
        .header("idempotency-key", key)
        .json(&json!({"amount": amount}))
        .send()
        .await
        .expect("move");
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

async fn balance(s: &Stack, phone: &str) -> i64 {
    s.get_json(&format!("/wallets/{phone}")).await.1["balance"]
        .as_i64()
        .expect("balance")
}

async fn stats(s: &Stack, group: &str) -> Value {
    s.get_json(&format!("/gift-groups/{group}")).await.1["stats"].clone()
}

/// Until the reconciliation finds nothing (reversals settle within
/// moments); its last report.
async fn reconciled(s: &Stack) -> Value {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    loop {
        let (status, report) = s.get_json("/reconciliation").await;
        assert_eq!(status, 200);
        if report["ok"] == true {
            return report;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the books do not add up: {report}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
}

fn id(v: &Value) -> String {
    v["id"].as_str().expect("id").to_owned()
}

async fn reversals_undo_credits_once_and_release_codes_on_request(backend: Backend) {
    let s = stack(backend, &[]).await;
    let g = s
        .create_group(json!({"name": "R", "kind": "unique", "amount": 400, "count": 3}))
        .await;
    let gid = id(&g);
    let code = |i: usize| g["codes"][i].as_str().expect("code").to_owned();
    let (p1, p2) = (phone(101), phone(102));

    // Without release: the money goes back, the code stays burned.
    let (status, first, _) = s.redeem(&code(0), &p1).await;
    assert_eq!(status, 200, "{first}");
    let (status, r) = reverse(&s, &id(&first), "rev-1", json!({"reason": "fraud"})).await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["status"], "reversed");
    assert_eq!(r["reversal"]["status"], "done");
    assert_eq!(r["reversal"]["reason"], "fraud");
    assert_eq!(r["reversal"]["release_code"], false);
    let tx = r["reversal"]["transaction_id"].clone();
    assert!(tx.is_string(), "{r}");
    assert_eq!(balance(&s, &p1).await, 0);
    let st = stats(&s, &gid).await;
    assert_eq!(
        (
            st["redemptions"].as_i64(),
            st["redeemed_amount"].as_i64(),
            st["reversed"].as_i64()
        ),
        (Some(0), Some(0), Some(1)),
        "{st}"
    );
    assert_eq!(
        st["remaining_amount"], 800,
        "the burned code is not remaining"
    );
    let (status, again, _) = s.redeem(&code(0), &p1).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("code_already_redeemed"))
    );
    let (status, again, _) = s.redeem(&code(0), &p2).await;
    assert_eq!(
        (status, again["code"].as_str()),
        (409, Some("code_already_redeemed"))
    );

    // Asked again (same key, or another): the same reversal, no second debit.
    for key in ["rev-1", "rev-1b"] {
        let (status, twice) = reverse(&s, &id(&first), key, json!({"reason": "fraud"})).await;
        assert_eq!(status, 200, "{twice}");
        assert_eq!(twice["reversal"]["transaction_id"], tx);
    }
    let (status, e) = reverse(&s, &id(&first), "rev-1", json!({"reason": "other"})).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (409, Some("idempotency_conflict"))
    );
    let (_, txs) = s.get_json(&format!("/wallets/{p1}/transactions")).await;
    let kinds: Vec<&str> = txs["items"]
        .as_array()
        .expect("items")
        .iter()
        .filter_map(|t| t["kind"].as_str())
        .collect();
    assert_eq!(
        kinds,
        ["gift_code_reversal", "gift_code_redemption"],
        "one reversal, newest first"
    );
    assert_eq!(txs["items"][0]["balance_after"], 0);
    assert_eq!(txs["items"][0]["direction"], "debit");

    // With release: the same phone redeems the code again, as a new redemption.
    let (status, second, _) = s.redeem(&code(1), &p2).await;
    assert_eq!(status, 200);
    let (status, r) = reverse(
        &s,
        &id(&second),
        "rev-2",
        json!({"reason": "mistake", "release_code": true}),
    )
    .await;
    assert_eq!(status, 200, "{r}");
    assert_eq!(r["reversal"]["release_code"], true);
    let st = stats(&s, &gid).await;
    assert_eq!(
        (
            st["redemptions"].as_i64(),
            st["reversed"].as_i64(),
            st["remaining_amount"].as_i64()
        ),
        (Some(0), Some(2), Some(800)),
        "{st}"
    );
    let (status, third, _) = s.redeem(&code(1), &p2).await;
    assert_eq!(status, 200, "released: redeemable again: {third}");
    assert_ne!(id(&third), id(&second), "a new redemption");
    assert_eq!(third["status"], "credited");
    assert_eq!(balance(&s, &p2).await, 400);
    let (_, old) = s.get_json(&format!("/redemptions/{}", id(&second))).await;
    assert_eq!(
        old["status"], "reversed",
        "the reversed one stays as it was"
    );
    let st = stats(&s, &gid).await;
    assert_eq!(
        (
            st["redemptions"].as_i64(),
            st["redeemed_amount"].as_i64(),
            st["remaining_amount"].as_i64()
        ),
        (Some(1), Some(400), Some(400)),
        "{st}"
    );

    let report = reconciled(&s).await;
    let group = report["groups"]
        .as_array()
        .expect("groups")
        .iter()
        .find(|c| c["group_id"] == gid.as_str())
        .cloned()
        .expect("group");
    assert_eq!(
        (group["credits"].as_i64(), group["credited_amount"].as_i64()),
        (Some(1), Some(400)),
        "net of reversals: {group}"
    );
}

async fn a_reversal_needs_the_money_and_a_credited_redemption(backend: Backend) {
    let mut s = stack(backend, &[("GATEWAY_REDEEM_TIMEOUT_MS", "500")]).await;
    let g = s
        .create_group(json!({"name": "F", "kind": "shared", "amount": 300, "max_redemptions": 10}))
        .await;
    let code = g["codes"][0].as_str().expect("code").to_owned();
    let p = phone(201);
    let (status, r, _) = s.redeem(&code, &p).await;
    assert_eq!(status, 200);

    // Spent: the wallet holds less than the amount. 422, nothing changes.
    assert_eq!(move_money(&s, &p, "debits", "spend-1", 200).await.0, 201);
    let (status, e) = reverse(&s, &id(&r), "rev-f", json!({"reason": "fraud"})).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("insufficient_funds")),
        "{e}"
    );
    assert_eq!(balance(&s, &p).await, 100);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let (_, now) = s.get_json(&format!("/redemptions/{}", id(&r))).await;
        if now["reversal"]["status"] == "refused" {
            assert_eq!(now["status"], "credited", "{now}");
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "not marked refused: {now}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(stats(&s, &id(&g)).await["redemptions"], 1);
    // Topped up, asked again with the same key: done.
    assert_eq!(move_money(&s, &p, "credits", "top-1", 500).await.0, 201);
    let (status, done) = reverse(&s, &id(&r), "rev-f", json!({"reason": "fraud"})).await;
    assert_eq!(status, 200, "{done}");
    assert_eq!(done["reversal"]["status"], "done");
    assert_eq!(balance(&s, &p).await, 300);

    // A redemption whose credit is not confirmed: 409, nothing recorded.
    s.kill_wallet();
    let (status, pending, _) = s.redeem(&code, &phone(202)).await;
    assert_eq!(status, 202, "{pending}");
    let (status, e) = reverse(&s, &id(&pending), "rev-p", json!({"reason": "x"})).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (409, Some("redemption_not_credited")),
        "{e}"
    );
    let (_, still) = s.get_json(&format!("/redemptions/{}", id(&pending))).await;
    assert!(still.get("reversal").is_none(), "{still}");
    s.start_wallet();
    s.wait_ready().await;
    let (status, e) = reverse(
        &s,
        "01a22bb9-0000-7000-8000-000000000000",
        "rev-n",
        json!({"reason": "x"}),
    )
    .await;
    assert_eq!((status, e["code"].as_str()), (404, Some("not_found")));
    let (status, e) = reverse(&s, &id(&r), "rev-v", json!({"reason": ""})).await;
    assert_eq!(
        (status, e["code"].as_str()),
        (422, Some("validation_failed"))
    );
    reconciled(&s).await;
}

async fn a_reversal_racing_a_debit_of_the_same_money_lets_one_win(backend: Backend) {
    let s = stack(backend, &[]).await;
    let g = s
        .create_group(json!({"name": "Race", "kind": "unique", "amount": 500, "count": 8}))
        .await;
    for i in 0..8 {
        let p = phone(300 + i);
        let code = g["codes"][i].as_str().expect("code").to_owned();
        let (status, r, _) = s.redeem(&code, &p).await;
        assert_eq!(status, 200);
        let key = format!("race-{i}");
        let rid = id(&r);
        let (rev, debit) = tokio::join!(
            reverse(&s, &rid, &key, json!({"reason": "race"})),
            move_money(&s, &p, "debits", &key, 500),
        );
        let won = [rev.0 == 200, debit.0 == 201];
        assert_eq!(
            won.iter().filter(|w| **w).count(),
            1,
            "exactly one wins: {rev:?} {debit:?}"
        );
        if rev.0 != 200 {
            assert_eq!(rev.1["code"], "insufficient_funds", "{rev:?}");
        } else {
            assert_eq!(debit.1["code"], "insufficient_funds", "{debit:?}");
        }
        assert_eq!(
            balance(&s, &p).await,
            0,
            "never below zero, never paid twice"
        );
    }
    reconciled(&s).await;
}

async fn a_disabled_code_is_inactive_until_enabled(backend: Backend) {
    let s = stack(backend, &[]).await;
    let g = s
        .create_group(json!({"name": "D", "kind": "unique", "amount": 100, "count": 2}))
        .await;
    let gid = id(&g);
    let code = g["codes"][0].as_str().expect("code").to_owned();
    let (_, details) = s.get_json(&format!("/gift-codes/{code}")).await;
    let cid = details["id"].as_str().expect("code id").to_owned();
    assert_eq!(details["active"], true);
    let patch = |active: bool| {
        s.admin(Method::PATCH, &format!("/gift-groups/{gid}/codes/{cid}"))
            .json(&json!({"active": active}))
            .send()
    };
    let r = patch(false).await.expect("patch");
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.expect("json")["active"], false);
    let (status, e, _) = s.redeem(&code, &phone(401)).await;
    assert_eq!((status, e["code"].as_str()), (410, Some("code_inactive")));
    let (_, listed) = s.get_json(&format!("/gift-groups/{gid}/codes")).await;
    let mine = listed["items"]
        .as_array()
        .expect("items")
        .iter()
        .find(|c| c["id"] == cid.as_str())
        .cloned()
        .expect("listed");
    assert_eq!(mine["active"], false);
    let other = g["codes"][1].as_str().expect("code");
    assert_eq!(
        s.redeem(other, &phone(402)).await.0,
        200,
        "the group's other codes still redeem"
    );
    assert_eq!(patch(true).await.expect("patch").status(), 200);
    assert_eq!(s.redeem(&code, &phone(401)).await.0, 200, "enabled again");
    let r = s
        .admin(
            Method::PATCH,
            &format!("/gift-groups/{gid}/codes/01a22bb9-0000-7000-8000-000000000000"),
        )
        .json(&json!({"active": false}))
        .send()
        .await
        .expect("patch");
    assert_eq!(r.status(), 404);
    reconciled(&s).await;
}
