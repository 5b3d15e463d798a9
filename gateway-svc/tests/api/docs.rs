//! `/openapi.json` and `/docs` against the running gateway: every documented
//! operation is really routed, refuses strangers if it is an admin one, and
//! answers only with statuses its entry documents, errors as `Problem`.

use reqwest::Method;
use serde_json::Value;

use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_matches_what_the_server_answers() {
    let s = Stack::start(&[]).await;
    let r = s
        .http
        .get(format!("{}/openapi.json", s.base))
        .send()
        .await
        .expect("spec");
    assert_eq!(r.status(), 200);
    assert_eq!(r.headers()["content-type"], "application/json");
    let spec: Value = r.json().await.expect("json");
    assert!(
        spec["openapi"]
            .as_str()
            .is_some_and(|v| v.starts_with("3."))
    );

    let mut checked = 0;
    for (path, item) in spec["paths"].as_object().expect("paths") {
        let Some(api_path) = path.strip_prefix("/api/v1") else {
            continue;
        };
        let concrete = api_path
            .replace("{id}", "01936d2e-0000-7000-8000-000000000000")
            .replace("{phone}", "+14155550000")
            .replace("{code}", "NOPE-NOPE-NOPE");
        for (method, op) in item.as_object().expect("item") {
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).expect("method");
            let documented: Vec<&String> = op["responses"]
                .as_object()
                .expect("responses")
                .keys()
                .collect();
            let with_body = method == Method::POST || method == Method::PATCH;
            let send = |auth: bool| {
                let mut req = s.http.request(method.clone(), s.url(&concrete));
                if auth {
                    req = req.bearer_auth(TOKEN).header("idempotency-key", "docs-k");
                }
                if with_body {
                    req = req.header("content-type", "application/json").body("{}");
                }
                req.send()
            };
            if op.get("security").is_some() {
                let r = send(false).await.expect("send");
                assert_eq!(r.status(), 401, "{method} {path} without the token");
            }
            let r = send(true).await.expect("send");
            let status = r.status().as_u16().to_string();
            let ctype = r.headers()["content-type"]
                .to_str()
                .unwrap_or("")
                .to_owned();
            let body: Value = r.json().await.unwrap_or(Value::Null);
            assert!(
                documented.contains(&&status),
                "{method} {path} answered {status}, documented {documented:?}: {body}"
            );
            if status.as_str() >= "400" {
                assert_eq!(ctype, "application/problem+json", "{method} {path}");
                for field in ["type", "title", "status", "detail", "code"] {
                    assert!(body.get(field).is_some(), "{method} {path}: {body}");
                }
                assert_ne!(
                    body["detail"], "no such route",
                    "{method} {path} not routed"
                );
            }
            eprintln!("{method} {path} -> {status} {}", body["code"]);
            checked += 1;
        }
    }
    assert_eq!(
        checked, 19,
        "every API operation of DESIGN.md §8, the reconciliation and the timeline"
    );

    let r = s
        .http
        .get(format!("{}/docs", s.base))
        .send()
        .await
        .expect("docs");
    assert_eq!(r.status(), 200);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap_or("")
            .starts_with("text/html")
    );
    let page = r.text().await.expect("page");
    assert!(
        page.contains("/api/v1/gift-groups/{id}/codes") && page.contains("id=\"schema-Problem\"")
    );
    assert!(
        !page.contains("<script"),
        "the page needs nothing from the network"
    );
}
