//! The giftcode-svc binary: configuration, logging, the listener, and `run`.

use clap::Parser;
use giftcode_svc::{Config, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let config = Config::parse();
    svc_kit::telemetry::init(config.kit.log_format);
    let listener = tokio::net::TcpListener::bind(config.kit.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.kit.http_addr))?;
    tracing::info!(addr = %config.kit.http_addr, "health and metrics on HTTP");
    run(config, listener, svc_kit::shutdown_signal()).await?;
    Ok(())
}
