//! NATS plumbing shared by the services and their clients (DESIGN.md §6):
//! connection settings, the JSON request/reply convention with error replies
//! (`Nats-Service-Error` headers plus a `{code, message}` body), and a typed client
//! that the gateway and the tests use to call a service.

use std::time::Duration;

use async_nats::{
    Client, ConnectOptions, HeaderMap, Message,
    service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE, Request},
};
use bytes::Bytes;
use serde::{Serialize, de::DeserializeOwned};
use shared_events::{ErrorCode, ServiceError, subjects::REQUEST_ID_HEADER};

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
    /// Replicas of the JetStream streams this service creates (3 on a cluster).
    #[arg(
        long = "nats-stream-replicas",
        env = "NATS_STREAM_REPLICAS",
        default_value_t = 1
    )]
    pub stream_replicas: usize,
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

/// Reads a JSON request. A syntax error is `malformed_json`; JSON of the wrong
/// shape (a missing field, a wrong type, an unknown field) is `validation_failed`.
pub fn parse_request<T: DeserializeOwned>(payload: &[u8]) -> Result<T, ServiceError> {
    let payload = if payload.is_empty() {
        b"{}".as_slice()
    } else {
        payload
    };
    // Syntax first, shape second: a struct that denies unknown fields would
    // otherwise report a truncated document as a bad field.
    let value: serde_json::Value = serde_json::from_slice(payload)
        .map_err(|e| ServiceError::new(ErrorCode::MalformedJson, e.to_string()))?;
    serde_json::from_value(value)
        .map_err(|e| ServiceError::new(ErrorCode::ValidationFailed, e.to_string()))
}

/// Encodes an error reply: the service API headers plus the JSON body.
pub fn error_reply(err: &ServiceError) -> (HeaderMap, Bytes) {
    let mut headers = HeaderMap::new();
    headers.insert(NATS_SERVICE_ERROR, err.code.as_str());
    headers.insert(
        NATS_SERVICE_ERROR_CODE,
        err.code.status().to_string().as_str(),
    );
    let body = serde_json::to_vec(err).unwrap_or_default();
    (headers, body.into())
}

/// Registers the NATS service `name` with one endpoint per subject (named after
/// the subject without the service prefix, e.g. `groups-create`), in the
/// default queue group so replicas share the load. Each request is handled on
/// its own task on `tracker`, so shutdown can wait for those in flight.
pub async fn serve<H, Fut>(
    client: &Client,
    name: &str,
    description: &str,
    subjects: &[&'static str],
    tracker: &tokio_util::task::TaskTracker,
    handler: H,
) -> Result<async_nats::service::Service, String>
where
    H: Fn(&'static str, Request) -> Fut + Clone + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    use async_nats::service::ServiceExt;
    use futures::StreamExt;
    let service = client
        .service_builder()
        .description(description)
        .start(name, env!("CARGO_PKG_VERSION"))
        .await
        .map_err(|e| format!("cannot register service {name}: {e}"))?;
    for &subject in subjects {
        let endpoint_name = subject
            .strip_prefix(name)
            .map(|s| s.trim_start_matches('.'))
            .unwrap_or(subject)
            .replace('.', "-");
        let mut endpoint = service
            .endpoint_builder()
            .name(endpoint_name)
            .add(subject)
            .await
            .map_err(|e| format!("cannot add endpoint {subject}: {e}"))?;
        let (handler, inner) = (handler.clone(), tracker.clone());
        tracker.spawn(async move {
            while let Some(req) = endpoint.next().await {
                inner.spawn(handler(subject, req));
            }
        });
    }
    Ok(service)
}

/// Sends `result` as the reply and returns its outcome word (`ok` or the error
/// code) for metrics.
pub async fn reply<T: Serialize>(req: &Request, result: Result<T, ServiceError>) -> &'static str {
    respond(req, &result).await;
    match &result {
        Ok(_) => "ok",
        Err(e) => e.code.as_str(),
    }
}

/// Answers a service request with a JSON value or an error reply. An error is
/// sent as a normal payload with the error headers set, because the service API's
/// own error reply has no body to carry `{code, message}`.
pub async fn respond<T: Serialize>(req: &Request, result: &Result<T, ServiceError>) {
    let sent = match result {
        Ok(value) => match serde_json::to_vec(value) {
            Ok(body) => req.respond(Ok(body.into())).await,
            Err(e) => {
                let err = ServiceError::new(ErrorCode::Internal, e.to_string());
                let (headers, body) = error_reply(&err);
                req.respond_with_headers(Ok(body), headers).await
            }
        },
        Err(err) => {
            let (headers, body) = error_reply(err);
            req.respond_with_headers(Ok(body), headers).await
        }
    };
    if let Err(e) = sent {
        tracing::warn!(error = %e, "could not send reply");
    }
}

/// Why a call to a service failed, as seen by the caller.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    /// The service answered with an error reply.
    #[error("{0}")]
    Service(ServiceError),
    /// Nobody is listening on the subject (the service is down).
    #[error("no responders on {0}")]
    NoResponders(String),
    #[error("request to {0} timed out")]
    Timeout(String),
    #[error("NATS request failed: {0}")]
    Transport(String),
    #[error("unreadable reply: {0}")]
    BadReply(String),
}

impl CallError {
    /// The error word a caller should surface: the service's own, or
    /// `service_unavailable` when it could not be reached.
    pub fn code(&self) -> ErrorCode {
        match self {
            Self::Service(e) => e.code,
            Self::NoResponders(_) | Self::Timeout(_) | Self::Transport(_) => {
                ErrorCode::ServiceUnavailable
            }
            Self::BadReply(_) => ErrorCode::Internal,
        }
    }
}

/// Reads one reply message: an error reply becomes [`CallError::Service`].
pub fn decode_reply<T: DeserializeOwned>(msg: &Message) -> Result<T, CallError> {
    let is_error = msg
        .headers
        .as_ref()
        .is_some_and(|h| h.get(NATS_SERVICE_ERROR).is_some());
    if is_error {
        let err: ServiceError = serde_json::from_slice(&msg.payload)
            .map_err(|e| CallError::BadReply(format!("error reply: {e}")))?;
        return Err(CallError::Service(err));
    }
    serde_json::from_slice(&msg.payload).map_err(|e| CallError::BadReply(e.to_string()))
}

/// A typed caller of one NATS service.
#[derive(Clone, Debug)]
pub struct ServiceClient {
    client: Client,
    timeout: Duration,
}

impl ServiceClient {
    pub fn new(client: Client, timeout: Duration) -> Self {
        Self { client, timeout }
    }

    pub fn nats(&self) -> &Client {
        &self.client
    }

    fn headers(request_id: Option<&str>) -> HeaderMap {
        let mut headers = HeaderMap::new();
        if let Some(id) = request_id {
            headers.insert(REQUEST_ID_HEADER, id);
        }
        headers
    }

    /// One request, one reply.
    pub async fn call<Req: Serialize, Resp: DeserializeOwned>(
        &self,
        subject: &str,
        req: &Req,
        request_id: Option<&str>,
    ) -> Result<Resp, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::BadReply(e.to_string()))?;
        let msg = self.raw(subject, body.into(), request_id).await?;
        decode_reply(&msg)
    }

    /// One request with a raw payload; the reply message as it came.
    pub async fn raw(
        &self,
        subject: &str,
        body: Bytes,
        request_id: Option<&str>,
    ) -> Result<Message, CallError> {
        let request = async_nats::Request::new()
            .payload(body)
            .headers(Self::headers(request_id))
            .timeout(Some(self.timeout));
        self.client
            .send_request(subject.to_owned(), request)
            .await
            .map_err(|e| map_request_error(subject, e))
    }

    /// A request answered by several messages (a [`Subscriber`] on a fresh
    /// inbox). The caller reads until the protocol's last frame.
    pub async fn call_stream<Req: Serialize>(
        &self,
        subject: &str,
        req: &Req,
        request_id: Option<&str>,
    ) -> Result<async_nats::Subscriber, CallError> {
        let body = serde_json::to_vec(req).map_err(|e| CallError::BadReply(e.to_string()))?;
        let inbox = self.client.new_inbox();
        let sub = self
            .client
            .subscribe(inbox.clone())
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        self.client
            .publish_with_reply_and_headers(
                subject.to_owned(),
                inbox,
                Self::headers(request_id),
                body.into(),
            )
            .await
            .map_err(|e| CallError::Transport(e.to_string()))?;
        Ok(sub)
    }

    pub fn timeout(&self) -> Duration {
        self.timeout
    }
}

fn map_request_error(subject: &str, e: async_nats::RequestError) -> CallError {
    use async_nats::RequestErrorKind;
    match e.kind() {
        RequestErrorKind::NoResponders => CallError::NoResponders(subject.to_owned()),
        RequestErrorKind::TimedOut => CallError::Timeout(subject.to_owned()),
        _ => CallError::Transport(e.to_string()),
    }
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
