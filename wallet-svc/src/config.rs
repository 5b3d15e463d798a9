//! Configuration from flags or environment variables (DESIGN.md §10). `--help`
//! lists every variable with its default.

use std::net::SocketAddr;

use shared_events::Currency;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "wallet-svc",
    version,
    about = "Wallets and their double-entry ledger: the NATS service `wallet`, credited by gift-code redemptions.",
    after_help = "Logging is filtered with RUST_LOG (default: info)."
)]
pub struct Config {
    #[command(flatten)]
    pub kit: svc_kit::Args,

    /// Address of the health and metrics HTTP server.
    #[arg(long, env = "WALLET_HTTP_ADDR", default_value = "0.0.0.0:8081")]
    pub http_addr: SocketAddr,

    /// sqlite://PATH (created on first start), sqlite::memory: or postgres://…
    #[arg(
        long,
        env = "WALLET_DATABASE_URL",
        default_value = "sqlite://data/wallet.db"
    )]
    pub database_url: String,

    /// The platform currency (ISO 4217). Events in another currency are refused.
    #[arg(long, env = "CURRENCY", default_value = "USD")]
    pub currency: Currency,

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
