//! NATS plumbing shared by the services and their clients (DESIGN.md §6):
//! connection settings ([`NatsArgs`]), the JSON request/reply convention
//! ([`wire`]), and the typed client the gateway and the tests call a service
//! with ([`client`]).

pub mod client;
pub mod wire;

use std::time::Duration;

use async_nats::{Client, ConnectOptions, Message};
use shared_events::subjects::REQUEST_ID_HEADER;

pub use client::ServiceClient;
pub use wire::{CallError, decode_reply, error_reply, parse_request};

/// How to reach NATS. Flattened into each service's `Config`.
#[derive(Debug, Clone, clap::Args)]
pub struct NatsArgs {
    /// NATS server URL(s), comma-separated.
    #[arg(
        long = "nats-url",
        env = "NATS_URL",
        default_value = "nats://127.0.0.1:4222"
    )]
    pub url: String,
    /// NATS user name (with NATS_PASSWORD).
    #[arg(long = "nats-user", env = "NATS_USER")]
    pub user: Option<String>,
    /// NATS password (with NATS_USER).
    #[arg(long = "nats-password", env = "NATS_PASSWORD", hide_env_values = true)]
    pub password: Option<String>,
    /// Path of a NATS credentials file (instead of user and password).
    #[arg(long = "nats-creds", env = "NATS_CREDS")]
    pub creds: Option<std::path::PathBuf>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("NATS_USER and NATS_PASSWORD must be set together")]
    HalfCredentials,
    #[error("cannot read NATS credentials file: {0}")]
    Creds(std::io::Error),
    #[error("cannot connect to NATS at {url}: {reason}")]
    Unreachable { url: String, reason: String },
}

impl NatsArgs {
    /// The servers of `url`: async-nats reads one URL per string, so a
    /// cluster's comma-separated list is split here.
    pub fn servers(&self) -> Vec<&str> {
        self.url
            .split(',')
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .collect()
    }

    /// Connects, retrying for up to ten seconds so that a service started next to
    /// its broker does not lose the race; after that it fails with the reason.
    /// Once connected, the client reconnects forever (to any of the servers).
    pub async fn connect(&self, name: &str) -> Result<Client, ConnectError> {
        let mut last = String::new();
        for _ in 0..20 {
            let mut opts = ConnectOptions::new()
                .name(name)
                .max_reconnects(None)
                .connection_timeout(Duration::from_secs(2))
                .request_timeout(Some(Duration::from_secs(10)));
            opts = match (&self.user, &self.password, &self.creds) {
                (_, _, Some(path)) => opts
                    .credentials_file(path)
                    .await
                    .map_err(ConnectError::Creds)?,
                (Some(u), Some(p), None) => opts.user_and_password(u.clone(), p.clone()),
                (None, None, None) => opts,
                _ => return Err(ConnectError::HalfCredentials),
            };
            match opts.connect(self.servers()).await {
                Ok(client) => return Ok(client),
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
        Err(ConnectError::Unreachable {
            url: self.url.clone(),
            reason: last,
        })
    }
}

/// The request id a message carries, if any.
pub fn request_id(msg: &Message) -> Option<String> {
    msg.headers
        .as_ref()
        .and_then(|h| h.get(REQUEST_ID_HEADER))
        .map(|v| v.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Args {
        #[command(flatten)]
        nats: NatsArgs,
    }

    #[test]
    fn a_cluster_url_list_is_split_into_servers() {
        let a = Args::try_parse_from([
            "x",
            "--nats-url",
            "nats://127.0.0.1:4222, nats://127.0.0.1:4223,,nats://127.0.0.1:4224",
        ])
        .expect("args");
        assert_eq!(
            a.nats.servers(),
            [
                "nats://127.0.0.1:4222",
                "nats://127.0.0.1:4223",
                "nats://127.0.0.1:4224"
            ]
        );
        for server in a.nats.servers() {
            assert!(server.parse::<async_nats::ServerAddr>().is_ok(), "{server}");
        }
    }
}
