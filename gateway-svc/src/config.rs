//! Configuration from flags or environment variables (DESIGN.md §10). `--help`
//! lists every variable with its default.

use std::net::SocketAddr;

use shared_events::Region;
use svc_kit::{nats::NatsArgs, telemetry::LogFormat};

#[derive(Debug, Clone, clap::Parser)]
#[command(
    name = "gateway-svc",
    version,
    about = "The public HTTP API of the wallet and gift-code platform; talks to the services over NATS only.",
    after_help = "Logging is filtered with RUST_LOG (default: info)."
)]
pub struct Config {
    #[command(flatten)]
    pub nats: NatsArgs,

    /// Address of the public HTTP API.
    #[arg(long, env = "GATEWAY_HTTP_ADDR", default_value = "0.0.0.0:8080")]
    pub http_addr: SocketAddr,

    /// Bearer token of the admin routes, and what the console's sign-in asks
    /// for (its session key is derived from it). Unset: one is generated at
    /// start-up and logged once.
    #[arg(long, env = "GATEWAY_ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,

    /// How long a redeem waits for the wallet credit before answering 202.
    #[arg(long, env = "GATEWAY_REDEEM_TIMEOUT_MS", default_value_t = 3000)]
    pub redeem_timeout_ms: u64,

    /// How long creating a group may take before the caller gets 503. A group
    /// of 1,000,000 codes takes about 15 s on two cores (BENCHMARKS.md); its
    /// codes are shown only in this response, so giving up early loses them.
    #[arg(
        long,
        env = "GATEWAY_CREATE_GROUP_TIMEOUT_MS",
        default_value_t = 120_000
    )]
    pub create_group_timeout_ms: u64,

    /// Redeem requests a minute per client IP (0: no limit).
    #[arg(long, env = "GATEWAY_RATE_LIMIT_PER_IP", default_value_t = 600)]
    pub rate_limit_per_ip: u32,

    /// Failed redeem attempts an hour per phone (0: no limit).
    #[arg(long, env = "GATEWAY_FAILED_REDEEMS_PER_PHONE", default_value_t = 20)]
    pub failed_redeems_per_phone: u32,

    /// API requests handled at once. Past it a request is answered 503
    /// `service_unavailable` with Retry-After at once, instead of queueing.
    #[arg(long, env = "GATEWAY_MAX_IN_FLIGHT", default_value_t = 512)]
    pub max_in_flight: usize,

    /// How long a console session lasts, in hours, before signing in again.
    #[arg(long, env = "CONSOLE_SESSION_HOURS", default_value_t = 8)]
    pub console_session_hours: u64,

    /// Console sign-in attempts per client IP every 5 minutes (0: no limit).
    #[arg(long, env = "CONSOLE_SIGNIN_ATTEMPTS", default_value_t = 10)]
    pub console_signin_attempts: u32,

    /// Live-feed streams (/console/live) open at once. They are not counted
    /// in GATEWAY_MAX_IN_FLIGHT; past this one more is answered 503.
    #[arg(long, env = "CONSOLE_MAX_STREAMS", default_value_t = 64)]
    pub console_max_streams: usize,

    /// Region (ISO 3166 alpha-2) for reading phone numbers in national format.
    #[arg(long, env = "DEFAULT_REGION", default_value = "US")]
    pub default_region: Region,

    /// Log output: text or json.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value = "text")]
    pub log_format: LogFormat,
}
