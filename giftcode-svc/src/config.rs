//! Configuration from flags or environment variables (DESIGN.md §10). `--help`
//! lists every variable with its default: svc-kit's (NATS, streams, the HTTP
//! address, the database, the currency, bounds, logs) and giftcode-svc's own.

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "giftcode-svc",
    version,
    about = "Gift-code groups, codes and redemptions: the NATS service `giftcode`.",
    after_help = "Logging is filtered with RUST_LOG (default: info)."
)]
pub struct Config {
    #[command(flatten)]
    pub kit: svc_kit::Args<Env>,

    /// Hex key (at least 32 bytes) for the codes' HMAC digests. Required with
    /// PostgreSQL; with SQLite a key is generated beside the database file.
    #[arg(long, env = "GIFTCODE_CODE_KEY", hide_env_values = true)]
    pub code_key: Option<String>,
}

/// giftcode-svc's names for svc-kit's settings.
#[derive(Debug, Clone)]
pub struct Env;

impl svc_kit::runtime::Names for Env {
    const HTTP_ADDR_ENV: &'static str = "GIFTCODE_HTTP_ADDR";
    const HTTP_ADDR_DEFAULT: &'static str = "0.0.0.0:8082";
    const DATABASE_URL_ENV: &'static str = "GIFTCODE_DATABASE_URL";
    const DATABASE_URL_DEFAULT: &'static str = "sqlite://data/giftcode.db";
}
