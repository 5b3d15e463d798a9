//! The NATS users that ship (`nats-users.conf`, included by `nats.conf`, run by
//! `NatsServer::start_with_users`): each may do what its service does, and is
//! refused, with a permissions violation from the server, what it does not.
//! The gateway end-to-end tests run the real services under the same users.

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use async_nats::{
    Client, ConnectErrorKind, jetstream,
    service::{Service, ServiceExt},
};
use futures::StreamExt;
use shared_events::subjects::{
    CONSOLE_SIGNED_OUT_BUCKET, GIFTCODE_EVENTS, GIFTCODE_EVENTS_STREAM, GIFTCODE_EVENTS_SUBJECTS,
    GIFTCODE_SERVICE, WALLET_EVENTS, WALLET_EVENTS_STREAM, WALLET_SERVICE, events, giftcode,
    wallet,
};
use svc_kit::streams::{StreamArgs, ensure_owned, ensure_read};
use testkit::{NATS_USERS, NatsServer, ServerErrors, nats_server_bin};

/// The streams' limits as a service starts with them by default.
fn stream_limits() -> StreamArgs {
    StreamArgs {
        replicas: 1,
        max_age: svc_kit::streams::parse_age("45d").expect("age"),
        max_bytes: svc_kit::streams::parse_bytes("4GiB").expect("bytes"),
    }
}

/// `nats-server -t -c nats.conf` (checks the config and exits) with `env`.
fn check_nats_conf(env: &[(&str, &str)]) -> std::process::Output {
    let conf = Path::new(env!("CARGO_MANIFEST_DIR")).join("../nats.conf");
    // The store dir in nats.conf is relative: keep the check out of the repo.
    let cwd = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(nats_server_bin());
    cmd.arg("-t").arg("-c").arg(conf).current_dir(cwd.path());
    for (_, var) in NATS_USERS {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied())
        .output()
        .expect("run nats-server -t")
}

#[test]
fn nats_conf_loads_the_users_and_needs_every_password() {
    let all: Vec<(&str, &str)> = NATS_USERS.iter().map(|(_, v)| (*v, "pw1")).collect();
    let out = check_nats_conf(&all);
    assert!(
        out.status.success(),
        "nats.conf with every password: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let without_ops: Vec<(&str, &str)> = all
        .iter()
        .copied()
        .filter(|(v, _)| *v != "OPS_NATS_PASSWORD")
        .collect();
    let out = check_nats_conf(&without_ops);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success() && stderr.contains("OPS_NATS_PASSWORD"),
        "a missing password stops the server and is named: {stderr}"
    );
}

#[tokio::test]
async fn strangers_and_wrong_passwords_are_refused() {
    let nats = NatsServer::start_with_users();
    let anonymous = async_nats::ConnectOptions::new()
        .connect(nats.url())
        .await
        .expect_err("anonymous connection");
    assert_eq!(anonymous.kind(), ConnectErrorKind::AuthorizationViolation);
    let wrong = async_nats::ConnectOptions::new()
        .user_and_password("ops".into(), format!("{}x", nats.password("ops")))
        .connect(nats.url())
        .await
        .expect_err("wrong password");
    assert_eq!(wrong.kind(), ConnectErrorKind::AuthorizationViolation);
    let swapped = async_nats::ConnectOptions::new()
        .user_and_password("gateway".into(), nats.password("giftcode").to_owned())
        .connect(nats.url())
        .await
        .expect_err("another user's password");
    assert_eq!(swapped.kind(), ConnectErrorKind::AuthorizationViolation);
}

/// Serves `subjects` as the NATS service `name`, answering `{}`: the
/// subscriptions of `svc_kit::nats::serve` (default queue group, `$SRV`).
async fn stub_service(client: &Client, name: &str, subjects: &[&'static str]) -> Service {
    let service = client
        .service_builder()
        .start(name, "0.0.0")
        .await
        .unwrap_or_else(|e| panic!("{name} registers: {e}"));
    for (i, &subject) in subjects.iter().enumerate() {
        let mut endpoint = service
            .endpoint_builder()
            .name(format!("e{i}"))
            .add(subject)
            .await
            .unwrap_or_else(|e| panic!("{name} serves {subject}: {e}"));
        tokio::spawn(async move {
            while let Some(req) = endpoint.next().await {
                let _ = req.respond(Ok("{}".into())).await;
            }
        });
    }
    service
}

/// `subject` is answered for `client`. "No responders" is retried for a
/// while: a stub's subscriptions on another connection can reach the server
/// a moment after its flush returned (seen once under CI load). A missing
/// grant still fails: a refused publish is never answered, a refused
/// subscription never responds.
async fn answered(client: &Client, subject: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let reply = loop {
        let reply = tokio::time::timeout(
            Duration::from_secs(10),
            client.request(subject.to_owned(), "{}".into()),
        )
        .await
        .unwrap_or_else(|_| panic!("{subject}: no answer (see the grants in nats-users.conf)"));
        match reply {
            Err(e)
                if e.kind() == async_nats::RequestErrorKind::NoResponders
                    && tokio::time::Instant::now() < deadline =>
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            other => break other.unwrap_or_else(|e| panic!("{subject}: {e}")),
        }
    };
    assert_eq!(&reply.payload[..], b"{}", "{subject}");
}

async fn deny_publish(client: &Client, errors: &mut ServerErrors, subject: &str) {
    client
        .publish(subject.to_owned(), "{}".into())
        .await
        .expect("publish is sent");
    client.flush().await.expect("flush");
    errors.expect_violation("Publish", subject).await;
}

async fn deny_subscribe(client: &Client, errors: &mut ServerErrors, subject: &str) {
    client
        .queue_subscribe(subject.to_owned(), "q".into())
        .await
        .expect("subscribe is sent");
    client.flush().await.expect("flush");
    errors.expect_violation("Subscription", subject).await;
}

/// `(user, subject)` of each violation the server logged.
fn logged_violations(nats: &NatsServer) -> BTreeSet<(String, String)> {
    let field = |line: &str, start: &str| {
        let rest = &line[line.find(start).map(|i| i + start.len())?..];
        Some(rest[..rest.find('"')?].to_owned())
    };
    nats.violations()
        .iter()
        .map(|l| {
            (
                field(l, "/user:").unwrap_or_default(),
                field(l, "Subject \"").unwrap_or_default(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_user_may_do_what_its_service_does_and_nothing_more() {
    let nats = NatsServer::start_with_users();
    let mut expected: BTreeSet<(String, String)> = BTreeSet::new();
    let mut deny = |user: &str, subject: &str| {
        expected.insert((user.to_owned(), subject.to_owned()));
    };

    // giftcode: creates (or updates) its stream as svc-kit's runtime does,
    // publishes its events, serves its endpoints.
    let limits = stream_limits();
    let (gc, mut gc_err) = nats.watch_as("giftcode").await;
    let gc_js = jetstream::new(gc.clone());
    ensure_owned(&gc_js, &GIFTCODE_EVENTS, &limits)
        .await
        .expect("giftcode creates its stream");
    ensure_owned(&gc_js, &GIFTCODE_EVENTS, &limits)
        .await
        .expect("giftcode updates its stream in place");
    gc_js
        .publish(events::GROUP_CREATED, "{}".into())
        .await
        .expect("publish")
        .await
        .expect("JetStream acknowledges giftcode's event");
    let _giftcode = stub_service(&gc, GIFTCODE_SERVICE, &giftcode::ALL).await;

    // wallet: the same on its side (its stream is created, the other one
    // looked up only).
    let (wl, mut wl_err) = nats.watch_as("wallet").await;
    let wl_js = jetstream::new(wl.clone());
    ensure_owned(&wl_js, &WALLET_EVENTS, &limits)
        .await
        .expect("wallet creates its stream");
    ensure_read(&wl_js, &GIFTCODE_EVENTS, &limits)
        .await
        .expect("wallet looks up the stream it reads");
    wl_js
        .publish(events::WALLET_CREDITED, "{}".into())
        .await
        .expect("publish")
        .await
        .expect("JetStream acknowledges wallet's event");
    let _wallet = stub_service(&wl, WALLET_SERVICE, &wallet::ALL).await;
    // The server has the wallet's subscriptions once its connection flushed:
    // giftcode asks right away, from another connection.
    wl.flush().await.expect("flush");

    // giftcode asks the ledger which redemptions it credited, and removes
    // the consumer of wallet events an earlier build had.
    answered(&gc, wallet::REDEMPTIONS_CREDITED).await;
    let retired = "giftcode-svc-credits";
    let ops_js = jetstream::new(nats.connect_as("ops").await);
    ops_js
        .get_stream(WALLET_EVENTS_STREAM)
        .await
        .expect("stream")
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some(retired.to_owned()),
            ..Default::default()
        })
        .await
        .expect("an earlier build's consumer");
    let wallet_events = gc_js
        .get_stream(WALLET_EVENTS_STREAM)
        .await
        .expect("giftcode looks up the stream of its retired consumer");
    wallet_events
        .consumer_info(retired)
        .await
        .expect("giftcode looks its retired consumer up");
    wallet_events
        .delete_consumer(retired)
        .await
        .expect("giftcode removes its retired consumer");

    // Reversals (DESIGN.md §12): giftcode asks the ledger about one credit
    // and consumes the two outcomes; wallet consumes the requests.
    answered(&gc, wallet::REDEMPTIONS_GET).await;
    for (durable, filter) in [
        ("giftcode-svc-reversed", events::WALLET_REVERSED),
        (
            "giftcode-svc-reversal-refused",
            events::WALLET_REVERSAL_REFUSED,
        ),
    ] {
        wallet_events
            .create_consumer(jetstream::consumer::pull::Config {
                durable_name: Some(durable.to_owned()),
                filter_subject: filter.to_owned(),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|e| panic!("giftcode creates {durable}: {e}"));
        wallet_events
            .consumer_info(durable)
            .await
            .unwrap_or_else(|e| panic!("giftcode looks {durable} up: {e}"));
    }
    wl_js
        .get_stream(GIFTCODE_EVENTS_STREAM)
        .await
        .expect("wallet looks up the stream of reversal requests")
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("wallet-svc-reversals".to_owned()),
            filter_subject: events::REVERSAL_REQUESTED.to_owned(),
            ..Default::default()
        })
        .await
        .expect("wallet creates its consumer of reversal requests");

    // gateway: every endpoint and the readiness pings answer; the credit
    // notice reaches its inbox.
    let (gw, mut gw_err) = nats.watch_as("gateway").await;
    for subject in giftcode::ALL.iter().chain(&wallet::ALL) {
        answered(&gw, subject).await;
    }
    for service in [GIFTCODE_SERVICE, WALLET_SERVICE] {
        let pong = gw
            .request(format!("$SRV.PING.{service}"), "".into())
            .await
            .unwrap_or_else(|e| panic!("$SRV.PING.{service}: {e}"));
        assert!(!pong.payload.is_empty());
    }
    let inbox = gw.new_inbox();
    let mut notices = gw.subscribe(inbox.clone()).await.expect("subscribe inbox");
    // A round trip on the same connection: the server has the subscription.
    answered(&gw, wallet::WALLETS_GET).await;
    wl.publish(inbox, "notice".into())
        .await
        .expect("wallet publishes the credit notice");
    let notice = tokio::time::timeout(Duration::from_secs(10), notices.next())
        .await
        .expect("the credit notice arrives")
        .expect("message");
    assert_eq!(&notice.payload[..], b"notice");

    // gateway, for the console: the live feed reads two event subjects as
    // they are published, and the signed-out sessions live in one bucket.
    let mut redeemed = gw
        .subscribe(events::CODE_REDEEMED)
        .await
        .expect("subscribe");
    let mut credited = gw
        .subscribe(events::WALLET_CREDITED)
        .await
        .expect("subscribe");
    answered(&gw, wallet::WALLETS_GET).await;
    gc.publish(events::CODE_REDEEMED, "redeemed".into())
        .await
        .expect("giftcode publishes");
    wl.publish(events::WALLET_CREDITED, "credited".into())
        .await
        .expect("wallet publishes");
    for (sub, what) in [(&mut redeemed, "redeemed"), (&mut credited, "credited")] {
        let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
            .await
            .expect("the event reaches the live feed")
            .expect("message");
        assert_eq!(&m.payload[..], what.as_bytes());
    }
    let gw_js = jetstream::new(gw.clone());
    let bucket = gw_js
        .create_key_value(jetstream::kv::Config {
            bucket: CONSOLE_SIGNED_OUT_BUCKET.into(),
            history: 1,
            max_age: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .expect("the gateway creates its bucket");
    bucket.put("s1", "1".into()).await.expect("put");
    assert!(bucket.get("s1").await.expect("get").is_some());
    gw_js
        .get_key_value(CONSOLE_SIGNED_OUT_BUCKET)
        .await
        .expect("and looks it up");

    // ops: every endpoint, service discovery, the streams.
    let (ops, mut ops_err) = nats.watch_as("ops").await;
    for subject in giftcode::ALL.iter().chain(&wallet::ALL) {
        answered(&ops, subject).await;
    }
    let inbox = ops.new_inbox();
    let mut infos = ops.subscribe(inbox.clone()).await.expect("subscribe inbox");
    ops.publish_with_reply("$SRV.INFO", inbox, "".into())
        .await
        .expect("$SRV.INFO");
    for _ in 0..2 {
        tokio::time::timeout(Duration::from_secs(10), infos.next())
            .await
            .expect("both services answer $SRV.INFO")
            .expect("message");
    }
    let held =
        testkit::bus::stream_messages(&ops, GIFTCODE_EVENTS_STREAM, events::GROUP_CREATED).await;
    assert_eq!(held.len(), 1, "ops reads the stream");

    // What each one is refused. The events are the trust boundary: a
    // code.redeemed credits a wallet.
    deny_publish(&gw, &mut gw_err, events::CODE_REDEEMED).await;
    deny("gateway", events::CODE_REDEEMED);
    deny_subscribe(&gw, &mut gw_err, GIFTCODE_EVENTS_SUBJECTS).await;
    deny("gateway", GIFTCODE_EVENTS_SUBJECTS);
    deny_subscribe(&gw, &mut gw_err, giftcode::REDEEM).await;
    deny("gateway", giftcode::REDEEM);
    // Of the events it reads the live feed's two, no other.
    deny_subscribe(&gw, &mut gw_err, events::GROUP_CREATED).await;
    deny("gateway", events::GROUP_CREATED);
    deny_subscribe(&gw, &mut gw_err, events::WALLET_DEBITED).await;
    deny("gateway", events::WALLET_DEBITED);
    // Nor can it write another bucket.
    let other_bucket = "$KV.OTHER.key";
    deny_publish(&gw, &mut gw_err, other_bucket).await;
    deny("gateway", other_bucket);
    // Nor can it answer for a service or forge a credit notice.
    let someones_inbox = ops.new_inbox();
    deny_publish(&gw, &mut gw_err, &someones_inbox).await;
    deny("gateway", &someones_inbox);
    let three_tokens = "giftcode.events.redeemed";
    deny_publish(&gw, &mut gw_err, three_tokens).await;
    deny("gateway", three_tokens);
    // It cannot read a stream through the JetStream API either.
    let read = tokio::time::timeout(
        Duration::from_secs(2),
        jetstream::new(gw.clone()).get_stream(GIFTCODE_EVENTS_STREAM),
    )
    .await;
    assert!(!matches!(read, Ok(Ok(_))), "the gateway read a stream");
    let info = format!("$JS.API.STREAM.INFO.{GIFTCODE_EVENTS_STREAM}");
    gw_err.expect_violation("Publish", &info).await;
    deny("gateway", &info);

    deny_subscribe(&wl, &mut wl_err, giftcode::REDEEM).await;
    deny("wallet", giftcode::REDEEM);
    deny_publish(&wl, &mut wl_err, events::CODE_REDEEMED).await;
    deny("wallet", events::CODE_REDEEMED);
    deny_subscribe(&wl, &mut wl_err, GIFTCODE_EVENTS_SUBJECTS).await;
    deny("wallet", GIFTCODE_EVENTS_SUBJECTS);
    let delete = format!("$JS.API.STREAM.DELETE.{GIFTCODE_EVENTS_STREAM}");
    deny_publish(&wl, &mut wl_err, &delete).await;
    deny("wallet", &delete);
    // Its only consumer is its durable one: no other reader of the stream.
    let other = format!("$JS.API.CONSUMER.CREATE.{GIFTCODE_EVENTS_STREAM}");
    deny_publish(&wl, &mut wl_err, &other).await;
    deny("wallet", &other);

    deny_publish(&gc, &mut gc_err, events::WALLET_CREDITED).await;
    deny("giftcode", events::WALLET_CREDITED);
    // Of the ledger it asks one thing; of wallet events it reads nothing.
    deny_publish(&gc, &mut gc_err, wallet::CREDITS_CREATE).await;
    deny("giftcode", wallet::CREDITS_CREATE);
    let read = format!("$JS.API.CONSUMER.CREATE.{WALLET_EVENTS_STREAM}");
    deny_publish(&gc, &mut gc_err, &read).await;
    deny("giftcode", &read);
    deny_subscribe(&gc, &mut gc_err, wallet::CREDITS_CREATE).await;
    deny("giftcode", wallet::CREDITS_CREATE);
    // Each updates only its own stream.
    let update = format!("$JS.API.STREAM.UPDATE.{WALLET_EVENTS_STREAM}");
    deny_publish(&gc, &mut gc_err, &update).await;
    deny("giftcode", &update);
    let update = format!("$JS.API.STREAM.UPDATE.{GIFTCODE_EVENTS_STREAM}");
    deny_publish(&wl, &mut wl_err, &update).await;
    deny("wallet", &update);

    deny_publish(&ops, &mut ops_err, events::CODE_REDEEMED).await;
    deny("ops", events::CODE_REDEEMED);
    deny_publish(&ops, &mut ops_err, events::WALLET_CREDITED).await;
    deny("ops", events::WALLET_CREDITED);

    // Nothing else was refused: every allowed step above went through.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(logged_violations(&nats), expected);
    for (user, errors) in [
        ("giftcode", &mut gc_err),
        ("wallet", &mut wl_err),
        ("gateway", &mut gw_err),
        ("ops", &mut ops_err),
    ] {
        assert_eq!(errors.drain(), Vec::<String>::new(), "{user}");
    }
}
