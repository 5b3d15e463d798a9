//! Configuration from flags or environment variables (DESIGN.md §10). `--help`
//! lists every variable with its default.

use std::net::SocketAddr;

use shared_events::Currency;

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "giftcode-svc",
    version,
    about = "Gift-code groups, codes and redemptions: the NATS service `giftcode`.",
    after_help = "Logging is filtered with RUST_LOG (default: info)."
)]
pub struct Config {
    #[command(flatten)]
    pub kit: svc_kit::Args,

    /// Address of the health and metrics HTTP server.
    #[arg(long, env = "GIFTCODE_HTTP_ADDR", default_value = "0.0.0.0:8082")]
    pub http_addr: SocketAddr,

    /// sqlite://PATH (created on first start), sqlite::memory: or postgres://…
    #[arg(
        long,
        env = "GIFTCODE_DATABASE_URL",
        default_value = "sqlite://data/giftcode.db"
    )]
    pub database_url: String,

    /// Hex key (at least 32 bytes) for the codes' HMAC digests. Required with
    /// PostgreSQL; with SQLite a key is generated beside the database file.
    #[arg(long, env = "GIFTCODE_CODE_KEY", hide_env_values = true)]
    pub code_key: Option<String>,

    /// The platform currency (ISO 4217), echoed on every amount.
    #[arg(long, env = "CURRENCY", default_value = "USD")]
    pub currency: Currency,
}
