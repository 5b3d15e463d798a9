//! One benchmark run: the platform as shipped and the baseline side by side,
//! level after level, each redeem level verified before the next starts.

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use anyhow::{Context, bail, ensure};
use reliability::{
    phone,
    platform::{Broker, Options, Platform, Storage, TOKEN},
    verify::Admin,
};
use serde_json::{Value, json};

use crate::{
    Args,
    baseline::Baseline,
    ceiling::Ceiling,
    drive::{Window, drive},
    first::First,
    flash::Flash,
    procstat,
};

/// Every redeem credits this much to a new wallet.
const AMOUNT: i64 = 500;

/// One level's figures, for both sides.
pub struct Level {
    pub concurrency: usize,
    pub baseline: Side,
    pub redeem: Side,
}

pub struct Side {
    pub window: Window,
    /// CPU seconds per 1,000 good answers, all of the side's processes.
    pub cpu_per_1000: f64,
    /// The same, for each process.
    pub cpu_per_1000_each: Vec<(&'static str, f64)>,
    /// Peak resident MiB of each process during the level.
    pub peak_mib: Vec<(&'static str, f64)>,
}

/// What the run found, printed and written as JSON.
pub struct Report {
    pub storage: String,
    pub nats_sync: String,
    pub create: Creation,
    pub levels: Vec<Level>,
    pub flash: Option<Flash>,
    /// The echo baseline at the flash's concurrency, for its ratio.
    pub flash_baseline_per_second: f64,
    pub first: Option<First>,
    pub ceilings: Vec<Ceiling>,
}

pub struct Creation {
    pub codes: usize,
    pub committed: Duration,
    pub exported: Duration,
    pub giftcode_peak_mib: f64,
}

/// Answers to redeems over the whole run, warm-up included: what the
/// recorded redemptions must add up to.
#[derive(Default)]
struct Tally {
    credited: AtomicUsize,
    pending: AtomicUsize,
    undecided: AtomicUsize,
}

pub async fn run(args: &Args) -> anyhow::Result<Report> {
    let (storage, engine) = match args.storage.as_str() {
        "sqlite" => (Storage::Sqlite, "SQLite, synchronous=FULL"),
        "postgres" => (Storage::Postgres, "PostgreSQL, fsync on"),
        other => bail!("--storage is sqlite or postgres, not {other:?}"),
    };
    let sync = (args.nats_sync != "shipped").then(|| args.nats_sync.clone());
    let broker = match &sync {
        Some(s) => format!("nats-server with sync_interval {s}"),
        None => "nats-server as nats.conf ships it".to_owned(),
    };
    eprintln!("starting the platform ({engine}; {broker})");
    let mut platform = Platform::start(Options {
        as_shipped: true,
        storage,
        sync: sync.clone(),
        durable_postgres: true,
        ..Options::default()
    })
    .await;
    let Broker::Single(nats) = &platform.broker else {
        bail!("the benchmark runs one nats-server");
    };
    let mut pids = vec![("nats-server", nats.pid().context("nats-server pid")?)];
    for (name, procs) in [
        ("giftcode-svc", &platform.giftcode),
        ("wallet-svc", &platform.wallet),
        ("gateway-svc", &platform.gateway),
    ] {
        pids.push((name, procs[0].pid().context("service pid")?));
    }
    eprintln!("starting the baseline (axum echo -> NATS request-reply -> echo responder)");
    let baseline = Baseline::start().await?;
    let base = platform.api_bases()[0].clone();
    let admin = Admin::new(&base, TOKEN);

    let giftcode_pid = pids[1].1;
    eprintln!("creating a unique group of {} codes as CSV", args.codes);
    procstat::reset_peak(giftcode_pid);
    let (codes, committed, exported) = create_csv(&admin, args.codes).await?;
    let create = Creation {
        codes: codes.len(),
        committed,
        exported,
        giftcode_peak_mib: procstat::peak_rss_mib(giftcode_pid).unwrap_or(f64::NAN),
    };
    eprintln!(
        "  committed in {:.2} s, CSV of {} codes received in {:.2} s",
        committed.as_secs_f64(),
        codes.len(),
        exported.as_secs_f64()
    );
    let (status, shared) = admin
        .post(
            "/gift-groups",
            json!({"name": "bench shared", "kind": "shared", "amount": AMOUNT,
                   "max_redemptions": args.codes, "code": "BENCH-SHARED"}),
        )
        .await;
    ensure!(status == 201, "shared group: {status} {shared}");

    let codes = Arc::new(codes);
    let tally = Arc::new(Tally::default());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(512)
        .timeout(Duration::from_secs(60))
        .build()?;
    let (warmup, measure) = (
        Duration::from_secs(args.warmup),
        Duration::from_secs(args.seconds),
    );
    let mut next = 0;
    let mut levels = Vec::new();
    for &c in &args.levels {
        eprintln!("concurrency {c}: baseline");
        let url = baseline.url.clone();
        let client = http.clone();
        let b = side(&baseline.pids(), |on_window| {
            drive(
                c,
                0,
                warmup,
                measure,
                move |i| echo(client.clone(), url.clone(), i),
                on_window,
            )
        })
        .await;
        eprintln!("concurrency {c}: redeem");
        let (client, codes2, tally2) = (http.clone(), codes.clone(), tally.clone());
        let (base2, every) = (base.clone(), args.shared_every);
        let r = side(&pids, |on_window| {
            drive(
                c,
                next,
                warmup,
                measure,
                move |i| {
                    let code = if every > 0 && i % every == 0 {
                        "BENCH-SHARED".to_owned()
                    } else {
                        codes2.get(i).cloned().unwrap_or_default()
                    };
                    redeem(
                        client.clone(),
                        base2.clone(),
                        code,
                        phone(i),
                        tally2.clone(),
                    )
                },
                on_window,
            )
        })
        .await;
        next += r.window.sent;
        ensure!(
            next <= codes.len(),
            "ran out of codes: raise --codes or lower --seconds"
        );
        let quiet = verify(&admin, &tally).await?;
        eprintln!(
            "  {:.0} redeems/s ({:.0}% of the baseline's {:.0}/s), p99 {:.1} ms; verified exactly once after {:.1} s",
            r.window.per_second(),
            100.0 * r.window.per_second() / b.window.per_second(),
            b.window.per_second(),
            r.window.quantile_ms(0.99),
            quiet.as_secs_f64()
        );
        levels.push(Level {
            concurrency: c,
            baseline: b,
            redeem: r,
        });
    }
    let at = args.flash_concurrency;
    let flash_baseline_per_second = match levels.iter().find(|l| l.concurrency == at) {
        Some(l) => l.baseline.window.per_second(),
        None if args.flash_phones > 0 => {
            let url = baseline.url.clone();
            let client = http.clone();
            side(&baseline.pids(), |on_window| {
                drive(
                    at,
                    0,
                    warmup,
                    measure,
                    move |i| echo(client.clone(), url.clone(), i),
                    on_window,
                )
            })
            .await
            .window
            .per_second()
        }
        None => f64::NAN,
    };
    let flash = if args.flash_phones > 0 {
        eprintln!(
            "the flash: one shared code capped at {}, {} phones, {} at a time",
            args.flash_cap, args.flash_phones, at
        );
        let f =
            crate::flash::run(&admin, &base, args.flash_cap, args.flash_phones, at, &pids).await?;
        eprintln!(
            "  all answered in {:.2} s; {:.0} refusals/s after the cap ({:.0}% of the baseline's {:.0}/s); {} credited",
            f.all_answered.as_secs_f64(),
            f.refusals_per_second,
            100.0 * f.refusals_per_second / flash_baseline_per_second,
            flash_baseline_per_second,
            f.winners
        );
        Some(f)
    } else {
        None
    };
    let first = if args.first_rounds > 0 {
        eprintln!(
            "the first redeem after start-up, {} restarts",
            args.first_rounds
        );
        let spare = codes.get(next..).unwrap_or_default();
        let f = crate::first::run(&mut platform, spare, args.first_rounds).await?;
        eprintln!("  median {:.1} ms", f.median());
        Some(f)
    } else {
        None
    };
    let mut ceilings = Vec::new();
    if args.ceiling {
        for s in [Some("always"), None] {
            eprintln!(
                "the broker's ceiling, sync_interval {}",
                s.unwrap_or("default")
            );
            let c = crate::ceiling::run(s).await?;
            eprintln!(
                "  {:.0} messages/s one at a time, {:.0}/s pipelined",
                c.sequential_per_second, c.pipelined_per_second
            );
            ceilings.push(c);
        }
    }
    Ok(Report {
        storage: args.storage.clone(),
        nats_sync: sync.unwrap_or_else(|| {
            testkit::nats::shipped_sync_interval().unwrap_or_else(|| "default".into())
        }),
        create,
        levels,
        flash,
        flash_baseline_per_second,
        first,
        ceilings,
    })
}

/// Runs one side's load, charging CPU and peak memory to its processes.
async fn side<F, Fut>(pids: &[(&'static str, u32)], load: F) -> Side
where
    F: FnOnce(Box<dyn FnMut() + Send>) -> Fut,
    Fut: Future<Output = Window>,
{
    for (_, pid) in pids {
        procstat::reset_peak(*pid);
    }
    // CPU seconds of each process as the window opens and as it closes.
    let cpu = Arc::new(std::sync::Mutex::new(Vec::<Vec<f64>>::new()));
    let (cpu2, pids2) = (cpu.clone(), pids.to_vec());
    let window = load(Box::new(move || {
        let each = pids2
            .iter()
            .map(|(_, p)| procstat::cpu_seconds(*p).unwrap_or(f64::NAN))
            .collect();
        if let Ok(mut c) = cpu2.lock() {
            c.push(each);
        }
    }))
    .await;
    let snaps = cpu.lock().map(|c| c.clone()).unwrap_or_default();
    let good = window.latencies_us.len().max(1) as f64;
    let each: Vec<(&'static str, f64)> = pids
        .iter()
        .enumerate()
        .map(|(i, (n, _))| {
            let used = match (snaps.first(), snaps.get(1)) {
                (Some(a), Some(b)) => b[i] - a[i],
                _ => f64::NAN,
            };
            (*n, used / good * 1000.0)
        })
        .collect();
    Side {
        cpu_per_1000: each.iter().map(|(_, c)| c).sum(),
        cpu_per_1000_each: each,
        peak_mib: pids
            .iter()
            .map(|(n, p)| (*n, procstat::peak_rss_mib(*p).unwrap_or(f64::NAN)))
            .collect(),
        window,
    }
}

async fn echo(http: reqwest::Client, url: String, i: usize) -> Result<(), String> {
    let body = json!({"code": format!("ECHO-{i:08}"), "phone": phone(i)});
    let r = http
        .post(&url)
        .json(&body)
        .send()
        .await
        .map_err(|e| format!("transport: {e}"))?;
    let status = r.status().as_u16();
    let got: Value = r.json().await.map_err(|e| format!("body: {e}"))?;
    if status == 200 && got == body {
        Ok(())
    } else {
        Err(format!("echo {status}"))
    }
}

/// One redeem: good when it is a 200 that credited `AMOUNT` to a new wallet.
async fn redeem(
    http: reqwest::Client,
    base: String,
    code: String,
    phone: String,
    tally: Arc<Tally>,
) -> Result<(), String> {
    let sent = http
        .post(format!("{base}/redemptions"))
        .json(&json!({"code": code, "phone": phone}))
        .send()
        .await;
    let r = match sent {
        Ok(r) => r,
        Err(e) => {
            tally.undecided.fetch_add(1, Ordering::Relaxed);
            return Err(format!("transport: {e}"));
        }
    };
    let status = r.status().as_u16();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    match status {
        200 => {
            tally.credited.fetch_add(1, Ordering::Relaxed);
            if body["status"] == "credited" && body["wallet"]["balance"] == AMOUNT {
                Ok(())
            } else {
                Err(format!("200 but not one credit of {AMOUNT}: {body}"))
            }
        }
        202 => {
            tally.pending.fetch_add(1, Ordering::Relaxed);
            Err("202 (credit not confirmed in time)".into())
        }
        _ => {
            tally.undecided.fetch_add(1, Ordering::Relaxed);
            Err(format!("{status} {}", body["code"].as_str().unwrap_or("")))
        }
    }
}

/// Waits until the reconciliation is `ok` (every recorded redemption credited
/// exactly once, the ledger balanced), then checks that the redemptions are
/// exactly the ones answered 200 or 202. Answers how long it took.
async fn verify(admin: &Admin, tally: &Tally) -> anyhow::Result<Duration> {
    let started = Instant::now();
    let answered = tally.credited.load(Ordering::Relaxed) + tally.pending.load(Ordering::Relaxed);
    let undecided = tally.undecided.load(Ordering::Relaxed);
    ensure!(
        undecided == 0,
        "invalid run: {undecided} redeems got no 200/202, so the count cannot be checked"
    );
    loop {
        let (status, report) = admin.get("/reconciliation").await;
        if status == 200 && report["ok"] == true {
            let recorded = report["redemptions"].as_u64().unwrap_or(0) as usize;
            let credits = report["credits"].as_u64().unwrap_or(0) as usize;
            ensure!(
                recorded == answered && credits == answered,
                "invalid run: {answered} redeems answered 200/202, but {recorded} redemptions \
                 recorded and {credits} credits in the ledger"
            );
            return Ok(started.elapsed());
        }
        if started.elapsed() > Duration::from_secs(180) {
            bail!("invalid run: the reconciliation is not ok after 180 s: {status} {report}");
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Creates a unique group with `Accept: text/csv`; answers its codes, the
/// time until the group was committed (the response's headers) and until the
/// last code arrived.
async fn create_csv(admin: &Admin, n: usize) -> anyhow::Result<(Vec<String>, Duration, Duration)> {
    let started = Instant::now();
    let r = admin
        .http
        .post(format!("{}/gift-groups", admin.base))
        .bearer_auth(&admin.token)
        .header("accept", "text/csv")
        .timeout(Duration::from_secs(600))
        .json(&json!({"name": "bench unique", "kind": "unique", "amount": AMOUNT, "count": n}))
        .send()
        .await?;
    let committed = started.elapsed();
    let status = r.status();
    let text = r.text().await?;
    let exported = started.elapsed();
    ensure!(status == 201, "create group: {status} {text}");
    let codes: Vec<String> = text.lines().skip(1).map(str::to_owned).collect();
    ensure!(
        codes.len() == n,
        "{} codes in the CSV, not {n}",
        codes.len()
    );
    Ok((codes, committed, exported))
}

/// `target/bench/`, next to the binaries.
pub fn out_dir() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|e| Some(e.parent()?.parent()?.join("bench")))
        .unwrap_or_else(|| PathBuf::from("target/bench"))
}
