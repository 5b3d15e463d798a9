//! The run's figures: a Markdown table for the terminal and BENCHMARKS.md,
//! and the same as JSON in `target/bench/redeem.json`.

use std::fmt::Write;

use serde_json::{Value, json};

use crate::run::{Report, Side};

pub fn markdown(r: &Report) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "storage: {}; nats-server sync_interval: {}\n",
        r.storage, r.nats_sync
    );
    let _ = writeln!(
        s,
        "| concurrency | redeems/s | p50 ms | p95 ms | p99 ms | baseline/s | baseline p50 / p99 ms | ratio | CPU-s per 1000 (redeem / baseline) | peak MiB: nats, giftcode, wallet, gateway |"
    );
    let _ = writeln!(s, "|---|---|---|---|---|---|---|---|---|---|");
    for l in &r.levels {
        let (b, x) = (&l.baseline, &l.redeem);
        let _ = writeln!(
            s,
            "| {} | {:.0} | {:.2} | {:.2} | {:.2} | {:.0} | {:.2} / {:.2} | {:.0}% | {:.2} / {:.2} | {} |",
            l.concurrency,
            x.window.per_second(),
            x.window.quantile_ms(0.5),
            x.window.quantile_ms(0.95),
            x.window.quantile_ms(0.99),
            b.window.per_second(),
            b.window.quantile_ms(0.5),
            b.window.quantile_ms(0.99),
            100.0 * x.window.per_second() / b.window.per_second(),
            x.cpu_per_1000,
            b.cpu_per_1000,
            x.peak_mib
                .iter()
                .map(|(_, m)| format!("{m:.0}"))
                .collect::<Vec<_>>()
                .join(", "),
        );
    }
    let bad: Vec<String> = r
        .levels
        .iter()
        .filter(|l| !l.redeem.window.bad.is_empty())
        .map(|l| format!("c={}: {:?}", l.concurrency, l.redeem.window.bad))
        .collect();
    if !bad.is_empty() {
        let _ = writeln!(s, "\nanswers other than a 200 credit: {}", bad.join("; "));
    }
    let _ = writeln!(
        s,
        "\nCPU-s per 1000 redeems by process ({}):",
        r.levels
            .first()
            .map(|l| l
                .redeem
                .cpu_per_1000_each
                .iter()
                .map(|(n, _)| *n)
                .collect::<Vec<_>>()
                .join(", "))
            .unwrap_or_default()
    );
    for l in &r.levels {
        let each: Vec<String> = l
            .redeem
            .cpu_per_1000_each
            .iter()
            .map(|(_, c)| format!("{c:.2}"))
            .collect();
        let _ = writeln!(s, "- c={}: {}", l.concurrency, each.join(", "));
    }
    let c = &r.create;
    let _ = writeln!(
        s,
        "\n{} codes: group committed in {:.2} s, CSV export complete in {:.2} s; giftcode-svc peak {:.0} MiB",
        c.codes,
        c.committed.as_secs_f64(),
        c.exported.as_secs_f64(),
        c.giftcode_peak_mib
    );
    if let Some(f) = &r.flash {
        let _ = writeln!(
            s,
            "\nflash: {} phones at c={} for a code capped at {}: all answered in {:.2} s; {} credited, {} refused; \
             {:.0} refusals/s after the cap = {:.0}% of the baseline's {:.0}/s at c={}; {:.2} CPU-s per 1000 refusals",
            f.phones,
            f.concurrency,
            f.cap,
            f.all_answered.as_secs_f64(),
            f.winners,
            f.refused,
            f.refusals_per_second,
            100.0 * f.refusals_per_second / r.flash_baseline_per_second,
            r.flash_baseline_per_second,
            f.concurrency,
            f.cpu_per_1000_refusals
        );
    }
    if let Some(f) = &r.first {
        let each: Vec<String> = f.millis.iter().map(|m| format!("{m:.1}")).collect();
        let _ = writeln!(
            s,
            "\nfirst redeem after start-up (from /readyz green): median {:.1} ms ({} ms)",
            f.median(),
            each.join(", ")
        );
    }
    for c in &r.ceilings {
        let _ = writeln!(
            s,
            "\nbroker ceiling, sync_interval {}: {:.0} JetStream messages/s one at a time, {:.0}/s pipelined; {:.2} CPU-s per 1000 messages",
            c.sync, c.sequential_per_second, c.pipelined_per_second, c.cpu_per_1000
        );
    }
    s
}

fn side(x: &Side) -> Value {
    json!({
        "per_second": x.window.per_second(),
        "p50_ms": x.window.quantile_ms(0.5),
        "p95_ms": x.window.quantile_ms(0.95),
        "p99_ms": x.window.quantile_ms(0.99),
        "good": x.window.latencies_us.len(),
        "bad": x.window.bad,
        "seconds": x.window.seconds,
        "cpu_seconds_per_1000": x.cpu_per_1000,
        "cpu_seconds_per_1000_each": x.cpu_per_1000_each.iter().map(|(n, c)| json!({"process": n, "cpu_s": c})).collect::<Vec<_>>(),
        "peak_mib": x.peak_mib.iter().map(|(n, m)| json!({"process": n, "mib": m})).collect::<Vec<_>>(),
    })
}

pub fn json(r: &Report) -> Value {
    json!({
        "levels": r.levels.iter().map(|l| json!({
            "concurrency": l.concurrency,
            "redeem": side(&l.redeem),
            "baseline": side(&l.baseline),
            "ratio": l.redeem.window.per_second() / l.baseline.window.per_second(),
        })).collect::<Vec<_>>(),
        "storage": r.storage,
        "nats_sync": r.nats_sync,
        "create": json!({
            "codes": r.create.codes,
            "committed_s": r.create.committed.as_secs_f64(),
            "exported_s": r.create.exported.as_secs_f64(),
            "giftcode_peak_mib": r.create.giftcode_peak_mib,
        }),
        "flash": r.flash.as_ref().map(|f| json!({
            "phones": f.phones,
            "cap": f.cap,
            "concurrency": f.concurrency,
            "all_answered_s": f.all_answered.as_secs_f64(),
            "winners": f.winners,
            "refused": f.refused,
            "refusals_per_second": f.refusals_per_second,
            "baseline_per_second": r.flash_baseline_per_second,
            "ratio": f.refusals_per_second / r.flash_baseline_per_second,
            "cpu_seconds_per_1000_refusals": f.cpu_per_1000_refusals,
        })),
        "first_redeem_ms": r.first.as_ref().map(|f| json!({"median": f.median(), "rounds": f.millis})),
        "ceilings": r.ceilings.iter().map(|c| json!({
            "sync": c.sync,
            "sequential_per_second": c.sequential_per_second,
            "pipelined_per_second": c.pipelined_per_second,
            "cpu_seconds_per_1000": c.cpu_per_1000,
        })).collect::<Vec<_>>(),
    })
}
