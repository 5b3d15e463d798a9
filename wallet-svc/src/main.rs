//! The wallet-svc binary: configuration, logging, the listener, and `run`.

use clap::Parser;
use wallet_svc::{Config, run};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    #[cfg(not(feature = "fault-injection"))]
    if std::env::var_os("WALLET_FAULT_CRASH_AFTER_COMMIT").is_some() {
        anyhow::bail!(
            "WALLET_FAULT_CRASH_AFTER_COMMIT needs a test build (--features fault-injection)"
        );
    }
    let config = Config::parse();
    svc_kit::telemetry::init(config.kit.log_format);
    let listener = tokio::net::TcpListener::bind(config.kit.http_addr)
        .await
        .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", config.kit.http_addr))?;
    run(config, listener, svc_kit::shutdown_signal()).await?;
    Ok(())
}
