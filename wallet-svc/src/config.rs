//! Configuration from flags or environment variables (DESIGN.md §10). `--help`
//! lists every variable with its default: svc-kit's (NATS, streams, the HTTP
//! address, the database, the currency, bounds, logs) and wallet-svc's own.

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "wallet-svc",
    version,
    about = "Wallets and their double-entry ledger: the NATS service `wallet`, credited by gift-code redemptions.",
    after_help = "Logging is filtered with RUST_LOG (default: info)."
)]
pub struct Config {
    #[command(flatten)]
    pub kit: svc_kit::Args<Env>,

    /// How long JetStream waits for the ack of a redemption event before
    /// delivering it again.
    #[arg(long, env = "WALLET_CONSUMER_ACK_WAIT_MS", default_value_t = 30_000)]
    pub consumer_ack_wait_ms: u64,

    /// Fault injection for tests: exit right after committing a credit and
    /// before acking its event, as a crash at the worst moment would. Only in
    /// builds with the `fault-injection` feature (the reliability suite's).
    #[cfg(feature = "fault-injection")]
    #[arg(long, env = "WALLET_FAULT_CRASH_AFTER_COMMIT", default_value_t = false)]
    pub fault_crash_after_commit: bool,
}

/// wallet-svc's names for svc-kit's settings.
#[derive(Debug, Clone)]
pub struct Env;

impl svc_kit::runtime::Names for Env {
    const HTTP_ADDR_ENV: &'static str = "WALLET_HTTP_ADDR";
    const HTTP_ADDR_DEFAULT: &'static str = "0.0.0.0:8081";
    const DATABASE_URL_ENV: &'static str = "WALLET_DATABASE_URL";
    const DATABASE_URL_DEFAULT: &'static str = "sqlite://data/wallet.db";
}
