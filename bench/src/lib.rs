//! The redeem benchmark (issue 6, BENCHMARKS.md). It starts the platform as
//! shipped (the release binaries, SQLite with `synchronous=FULL`, nats-server
//! fsyncing every JetStream write, rate limits off) and a baseline of the
//! architecture's cheapest hops ([`baseline`]), drives both over HTTP at each
//! concurrency ([`drive`]), charges CPU and memory to every process
//! ([`procstat`]), verifies after each level that every redeem was credited
//! exactly once, and reports ([`report`]).

use clap::{Parser, Subcommand};

pub mod baseline;
pub mod ceiling;
pub mod drive;
pub mod first;
pub mod flash;
pub use reliability::procstat;
pub mod report;
pub mod run;
pub mod statements;

#[derive(Parser, Debug)]
#[command(
    about = "Redeem throughput and latency of the platform as shipped, against a same-run baseline",
    long_about = "Starts nats-server, giftcode-svc, wallet-svc and gateway-svc (the binaries next to \
                  this one, on SQLite files in a temporary directory) and the baseline (an axum echo \
                  route doing one NATS request-reply to an echo responder). Creates a unique group \
                  of --codes codes as CSV (timed) and a shared code, then at each concurrency runs \
                  the baseline and the redeems (distinct codes and phones, 1 in --shared-every on \
                  the shared code) and checks that every redeem was credited exactly once. Prints \
                  a table and writes target/bench/redeem.json and redeem.md."
)]
pub struct Args {
    #[command(subcommand)]
    pub role: Option<Role>,
    /// Concurrency levels (closed-loop clients), comma-separated.
    #[arg(
        long,
        env = "BENCH_LEVELS",
        value_delimiter = ',',
        default_value = "1,16,64,256"
    )]
    pub levels: Vec<usize>,
    /// Measured seconds per level and side.
    #[arg(long, env = "BENCH_SECONDS", default_value_t = 10)]
    pub seconds: u64,
    /// Warm-up seconds before each measured window (not counted).
    #[arg(long, env = "BENCH_WARMUP", default_value_t = 2)]
    pub warmup: u64,
    /// Codes in the unique group (created and exported as CSV, timed); the
    /// redeems use them, so it bounds how many can run.
    #[arg(long, env = "BENCH_CODES", default_value_t = 1_000_000)]
    pub codes: usize,
    /// One redeem in this many takes the shared code (0: none do).
    #[arg(long, env = "BENCH_SHARED_EVERY", default_value_t = 4)]
    pub shared_every: usize,
    /// Where the services keep their data: sqlite (the embedded default) or
    /// postgres (a private cluster with fsync on).
    #[arg(long, env = "BENCH_STORAGE", default_value = "sqlite")]
    pub storage: String,
    /// JetStream's sync_interval for the platform's nats-server: `shipped`
    /// (what nats.conf says) or a value (`always`, `2m`).
    #[arg(long, env = "BENCH_NATS_SYNC", default_value = "shipped")]
    pub nats_sync: String,
    /// The flash: phones racing for one shared code (0: no flash).
    #[arg(long, env = "BENCH_FLASH_PHONES", default_value_t = 20_000)]
    pub flash_phones: usize,
    /// The flash code's cap.
    #[arg(long, env = "BENCH_FLASH_CAP", default_value_t = 1_000)]
    pub flash_cap: usize,
    /// Clients at once during the flash.
    #[arg(long, env = "BENCH_FLASH_CONCURRENCY", default_value_t = 256)]
    pub flash_concurrency: usize,
    /// Restarts, each timing the first redeem after /readyz (0: none).
    #[arg(long, env = "BENCH_FIRST_ROUNDS", default_value_t = 5)]
    pub first_rounds: usize,
    /// Measure the broker's ceiling (JetStream publishes, sync always and
    /// the server's default).
    #[arg(long, env = "BENCH_CEILING", default_value_t = true, action = clap::ArgAction::Set)]
    pub ceiling: bool,
}

/// The baseline's processes: this binary, run again in another role.
#[derive(Subcommand, Debug)]
pub enum Role {
    /// The baseline's HTTP side (internal).
    EchoGateway {
        #[arg(long)]
        nats: String,
        #[arg(long)]
        addr: std::net::SocketAddr,
    },
    /// The baseline's responder (internal).
    EchoResponder {
        #[arg(long)]
        nats: String,
    },
    /// Measures what one SQLite statement and one commit cost on this
    /// machine: through svc-kit's Db (the services' path: a writer thread
    /// that group-commits) and through sqlx (the path before issue 12).
    Statements {
        /// Operations per measurement.
        #[arg(long, default_value_t = 2000)]
        n: usize,
    },
}

/// Runs the benchmark, prints the table and writes the figures down.
pub async fn main(args: Args) -> anyhow::Result<()> {
    match &args.role {
        Some(Role::EchoGateway { nats, addr }) => return baseline::echo_gateway(nats, *addr).await,
        Some(Role::EchoResponder { nats }) => return baseline::echo_responder(nats).await,
        Some(Role::Statements { n }) => {
            let n = (*n).max(10);
            let figures = statements::run(n).await?;
            statements::print(&figures, n);
            return Ok(());
        }
        None => {}
    }
    let report = run::run(&args).await?;
    let table = report::markdown(&report);
    println!("\n{table}");
    let dir = run::out_dir();
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join("redeem.md"), &table)?;
    std::fs::write(
        dir.join("redeem.json"),
        serde_json::to_string_pretty(&report::json(&report))?,
    )?;
    eprintln!("written to {}", dir.join("redeem.{md,json}").display());
    Ok(())
}
