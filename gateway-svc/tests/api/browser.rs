//! The console in a real browser: headless Chromium driven over WebDriver
//! (chromedriver + fantoccini). It signs in from the keyboard, creates a group
//! named `<script>alert(1)</script>` through the form, redeems one of its
//! codes through the public API, sees the redemption appear on the live page
//! and the group's stats change, downloads a group's CSV, and sees a
//! reversal of that redemption on the live page. Every page is
//! screenshotted at desktop and phone width into `target/console-screenshots/`,
//! and at phone width no page scrolls sideways and every input has a label.
//!
//! `./scripts/test.sh` installs Debian's `chromium` and `chromium-driver` and
//! sets `CONSOLE_BROWSER_TEST=require`; without them (a bare `cargo test`)
//! this test says loudly that it did not run.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{Value, json};

use crate::helpers::*;

const EVIL: &str = "<script>alert(1)</script>";

struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn screenshots_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/console-screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots dir");
    dir
}

/// chromedriver on a free port, or why not.
async fn start_driver() -> Option<(Driver, u16)> {
    let found = ["/usr/bin/chromedriver", "/usr/bin/chromium"]
        .iter()
        .all(|p| Path::new(p).exists());
    if !found {
        let required = std::env::var("CONSOLE_BROWSER_TEST").is_ok_and(|v| v == "require");
        assert!(
            !required,
            "CONSOLE_BROWSER_TEST=require but /usr/bin/chromium or /usr/bin/chromedriver is missing \
             (apt-get install chromium chromium-driver)"
        );
        eprintln!(
            "\n\n*** SKIPPED: the console's browser test needs Debian's chromium and \
             chromium-driver\n*** (./scripts/test.sh installs them).\n\n"
        );
        return None;
    }
    let port = testkit::free_port();
    let child = Command::new("/usr/bin/chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start chromedriver");
    let driver = Driver(child);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "chromedriver did not listen");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Some((driver, port))
}

async fn browser(port: u16, profile: &Path, downloads: &Path) -> Client {
    let caps = json!({
        "browserName": "chrome",
        "goog:chromeOptions": {
            "binary": "/usr/bin/chromium",
            "args": [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                "--disable-quic", "--no-first-run", "--disable-background-networking",
                "--disable-component-update", "--disable-sync", "--hide-scrollbars",
                format!("--user-data-dir={}", profile.display()),
                "--window-size=1280,900",
            ],
            "prefs": {
                "download.default_directory": downloads.display().to_string(),
                "download.prompt_for_download": false,
            },
        },
    });
    let Value::Object(caps) = caps else {
        unreachable!()
    };
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&format!("http://127.0.0.1:{port}"))
        .await
        .expect("a Chromium session")
}

/// Polls `check` until it is true, up to `secs`.
async fn until<F, Fut>(secs: u64, what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(secs);
    while !check().await {
        assert!(Instant::now() < deadline, "{what}: not within {secs} s");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn text(c: &Client, css: &str) -> String {
    c.find(Locator::Css(css))
        .await
        .expect(css)
        .text()
        .await
        .expect("text")
}

/// Screenshots at desktop and phone width; at phone width, checks that the
/// page does not scroll sideways and that every input has a label.
async fn shoot(c: &Client, name: &str) {
    let dir = screenshots_dir();
    for (label, w, h) in [("desktop", 1280, 900), ("phone", 390, 844)] {
        c.set_window_size(w, h).await.expect("resize");
        tokio::time::sleep(Duration::from_millis(150)).await;
        let png = c.screenshot().await.expect("screenshot");
        std::fs::write(dir.join(format!("{name}-{label}.png")), png).expect("write png");
        if label == "phone" {
            let r = c
                .execute(
                    "return [document.documentElement.scrollWidth, window.innerWidth,
                      [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
                        .filter(e => e.labels.length === 0 && !e.getAttribute('aria-label'))
                        .map(e => e.name)];",
                    vec![],
                )
                .await
                .expect("measure");
            let (scroll, inner) = (r[0].as_i64().expect("w"), r[1].as_i64().expect("w"));
            assert!(
                scroll <= inner + 1,
                "{name} scrolls sideways on a phone: {scroll} > {inner}"
            );
            assert_eq!(r[2], json!([]), "{name}: inputs without a label");
        }
    }
    c.set_window_size(1280, 900).await.expect("resize");
}

/// No `alert()` ran: the evil name stayed text.
async fn no_alert(c: &Client) {
    assert!(
        c.get_alert_text().await.is_err(),
        "a script ran: an alert is open"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_in_chromium_from_sign_in_to_a_live_redemption_and_a_csv() {
    let Some((_driver, port)) = start_driver().await else {
        return;
    };
    let s = Stack::start(&[]).await;
    let profile = tempfile::tempdir().expect("profile");
    let downloads = tempfile::tempdir().expect("downloads");
    let c = browser(port, profile.path(), downloads.path()).await;
    let result = drive(&s, &c, downloads.path()).await;
    let _ = c.close().await;
    result
}

async fn drive(s: &Stack, c: &Client, downloads: &Path) {
    let base = &s.base;

    // 1. Sign in, from the keyboard: the token field has the focus.
    c.goto(&format!("{base}/console/")).await.expect("goto");
    assert!(
        c.current_url()
            .await
            .expect("url")
            .path()
            .ends_with("/console/sign-in")
    );
    shoot(c, "sign-in").await;
    let active = c.active_element().await.expect("focus");
    assert_eq!(
        active.attr("name").await.expect("name").as_deref(),
        Some("token")
    );
    active
        .send_keys(&format!("{TOKEN}\u{E007}"))
        .await
        .expect("type and Enter");
    until(10, "signed in", || async {
        c.current_url().await.is_ok_and(|u| u.path() == "/console/")
    })
    .await;
    assert_eq!(text(c, "h1").await, "Groups");

    // 2. A group through the form, named like an attack.
    c.goto(&format!("{base}/console/groups/new"))
        .await
        .expect("goto");
    shoot(c, "new-group").await;
    c.find(Locator::Id("name"))
        .await
        .expect("name")
        .send_keys(EVIL)
        .await
        .expect("type");
    c.find(Locator::Id("amount"))
        .await
        .expect("amount")
        .send_keys("500")
        .await
        .expect("type");
    c.find(Locator::Id("count"))
        .await
        .expect("count")
        .send_keys("3")
        .await
        .expect("type");
    c.find(Locator::Css("button[value=page]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    until(10, "created", || async {
        c.find(Locator::Css("table.codes")).await.is_ok()
    })
    .await;
    no_alert(c).await;
    assert_eq!(
        text(c, "h1").await,
        format!("Created: {EVIL}"),
        "the name shows as text"
    );
    let mut codes = Vec::new();
    for e in c
        .find_all(Locator::Css("table.codes code"))
        .await
        .expect("codes")
    {
        codes.push(e.text().await.expect("code"));
    }
    assert_eq!(codes.len(), 3);
    shoot(c, "group-created").await;
    let group_href = c
        .find(Locator::LinkText("Go to the group"))
        .await
        .expect("link")
        .attr("href")
        .await
        .expect("href")
        .expect("href");

    // 3–4. The live page, then a redeem through the public API: it appears.
    c.goto(&format!("{base}/console/live")).await.expect("goto");
    until(10, "the live stream connects", || async {
        text(c, "#live-status").await == "live"
    })
    .await;
    let counter = format!(
        "#live-counters tr[data-group=\"{}\"] [data-field=redemptions]",
        group_href.rsplit('/').next().expect("id")
    );
    assert_eq!(text(c, &counter).await, "0 / 3");
    let p = phone(4242);
    let (status, body, _) = s.redeem(&codes[0], &p).await;
    assert_eq!(status, 200, "{body}");
    until(10, "the redemption on the live page", || async {
        c.find(Locator::Css("#live-feed tbody tr")).await.is_ok()
    })
    .await;
    let row = text(c, "#live-feed tbody tr").await;
    assert!(
        row.contains(EVIL) && row.contains("500 USD") && row.contains("•••• 4242"),
        "{row}"
    );
    assert!(!row.contains(&p), "the phone is masked: {row}");
    until(10, "credited", || async {
        text(c, "#live-feed tbody tr").await.contains("credited")
    })
    .await;
    assert_eq!(text(c, &counter).await, "1 / 3", "the running counter");
    no_alert(c).await;

    // 5. The group's stats changed.
    c.goto(&format!("{base}{group_href}")).await.expect("goto");
    assert!(text(c, "#redeemed").await.contains("1 / 3"));
    assert_eq!(text(c, "#redeemed-amount").await, "500 USD");
    assert!(
        text(c, "figure.chart figcaption")
            .await
            .starts_with("1 redemption in")
    );
    assert_eq!(text(c, "h1").await, EVIL);
    no_alert(c).await;
    // The redeemer's row offers a reversal (opened for the screenshot).
    c.find(Locator::Css("details summary"))
        .await
        .expect("reverse")
        .click()
        .await
        .expect("open");
    assert!(
        c.find(Locator::Css("form.reverse input[name=reason]"))
            .await
            .is_ok()
    );
    shoot(c, "group").await;
    c.goto(&format!("{base}/console/")).await.expect("goto");
    assert!(text(c, "table").await.contains(EVIL));
    no_alert(c).await;
    shoot(c, "groups").await;

    // The other pages, for their screenshots and their phone-width checks.
    c.goto(&format!("{base}/console/wallets/{p}"))
        .await
        .expect("goto");
    assert_eq!(text(c, "#balance").await, "500 USD");
    shoot(c, "wallet").await;
    c.goto(&format!("{base}/console/codes"))
        .await
        .expect("goto");
    c.find(Locator::Id("code"))
        .await
        .expect("code")
        .send_keys(&format!("{}\u{E007}", codes[0]))
        .await
        .expect("type");
    until(10, "the code's details", || async {
        c.find(Locator::Id("found")).await.is_ok()
    })
    .await;
    no_alert(c).await;
    shoot(c, "code").await;
    c.goto(&format!("{base}/console/reconciliation"))
        .await
        .expect("goto");
    assert!(text(c, ".verdict").await.contains("reconcile"));
    shoot(c, "reconciliation").await;

    // 6. A group's codes as the CSV the create call streams.
    c.goto(&format!("{base}/console/groups/new"))
        .await
        .expect("goto");
    c.find(Locator::Id("name"))
        .await
        .expect("name")
        .send_keys("Bulk")
        .await
        .expect("type");
    c.find(Locator::Id("amount"))
        .await
        .expect("amount")
        .send_keys("100")
        .await
        .expect("type");
    c.find(Locator::Id("count"))
        .await
        .expect("count")
        .send_keys("150")
        .await
        .expect("type");
    c.find(Locator::Css("button[value=csv]"))
        .await
        .expect("button")
        .click()
        .await
        .expect("submit");
    let mut csv = String::new();
    until(20, "the CSV download", || {
        let found = std::fs::read_dir(downloads)
            .into_iter()
            .flatten()
            .flatten()
            .map(|e| e.path())
            .find(|p| p.extension().is_some_and(|x| x == "csv"));
        if let Some(path) = found {
            csv = std::fs::read_to_string(path).unwrap_or_default();
        }
        let done = csv.lines().count() == 151;
        async move { done }
    })
    .await;
    assert_eq!(csv.lines().next(), Some("code"));
    assert_eq!(
        s.redeem(csv.lines().nth(150).expect("last code"), &phone(4243))
            .await
            .0,
        200,
        "a real code"
    );

    // 7. A reversal shows on the live page, and the counter goes back.
    c.goto(&format!("{base}/console/live")).await.expect("goto");
    until(10, "the live stream connects", || async {
        text(c, "#live-status").await == "live"
    })
    .await;
    assert_eq!(text(c, &counter).await, "1 / 3");
    let rid = body["id"].as_str().expect("id");
    let r = s
        .admin(
            reqwest::Method::POST,
            &format!("/redemptions/{rid}/reversal"),
        )
        .header("idempotency-key", "browser-reversal")
        .json(&json!({"reason": "browser test", "release_code": true}))
        .send()
        .await
        .expect("reverse");
    assert_eq!(r.status(), 200);
    until(10, "the reversal on the live page", || async {
        text(c, "#live-feed tbody tr")
            .await
            .contains("reversed, code released")
    })
    .await;
    assert_eq!(text(c, &counter).await, "0 / 3", "counted out");
    no_alert(c).await;
    shoot(c, "live").await;
}
