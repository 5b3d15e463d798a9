//! The baseline: the cheapest version of this architecture's hops. An axum
//! route takes a JSON body, makes one NATS request-reply to a responder in
//! another process that echoes it, and answers it as JSON: the HTTP and NATS
//! work every redeem must do at least, with no database, no JetStream and no
//! second service. Both run as processes of their own (this binary's
//! `echo-gateway` and `echo-responder`) on a nats-server of their own.

use std::{
    net::SocketAddr,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use axum::{Json, Router, extract::State, routing::post};
use futures::StreamExt;
use serde_json::Value;
use testkit::NatsServer;

pub const SUBJECT: &str = "bench.echo";

/// `echo-gateway`: POST /echo, relayed over NATS and answered with the reply.
pub async fn echo_gateway(nats_url: &str, addr: SocketAddr) -> anyhow::Result<()> {
    let nats = async_nats::connect(nats_url).await?;
    let app = Router::new().route("/echo", post(echo)).with_state(nats);
    let listener = tokio::net::TcpListener::bind(addr).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

async fn echo(
    State(nats): State<async_nats::Client>,
    Json(body): Json<Value>,
) -> Result<Json<Value>, (axum::http::StatusCode, String)> {
    let bad = |e: String| (axum::http::StatusCode::SERVICE_UNAVAILABLE, e);
    let payload = serde_json::to_vec(&body).map_err(|e| bad(e.to_string()))?;
    let reply = nats
        .request(SUBJECT, payload.into())
        .await
        .map_err(|e| bad(e.to_string()))?;
    serde_json::from_slice(&reply.payload)
        .map(Json)
        .map_err(|e| bad(e.to_string()))
}

/// `echo-responder`: answers every request on [`SUBJECT`] with its payload.
pub async fn echo_responder(nats_url: &str) -> anyhow::Result<()> {
    let nats = async_nats::connect(nats_url).await?;
    let mut requests = nats.subscribe(SUBJECT).await?;
    nats.flush().await?;
    while let Some(msg) = requests.next().await {
        if let Some(reply) = msg.reply {
            nats.publish(reply, msg.payload).await?;
        }
    }
    Ok(())
}

/// The baseline's three processes, running.
pub struct Baseline {
    pub nats: NatsServer,
    pub gateway: Child,
    pub responder: Child,
    pub url: String,
}

impl Baseline {
    pub async fn start() -> anyhow::Result<Baseline> {
        let nats = NatsServer::start();
        let exe = std::env::current_exe()?;
        let port = testkit::free_port();
        let spawn = |args: &[&str]| -> anyhow::Result<Child> {
            let child = Command::new(&exe)
                .args(args)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .spawn()?;
            testkit::watchdog(child.id(), "9");
            Ok(child)
        };
        let responder = spawn(&["echo-responder", "--nats", &nats.url()])?;
        let addr = format!("127.0.0.1:{port}");
        let gateway = spawn(&["echo-gateway", "--nats", &nats.url(), "--addr", &addr])?;
        let url = format!("http://{addr}/echo");
        // Ready when an echo comes back: both processes are connected.
        let http = reqwest::Client::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ok = http
                .post(&url)
                .json(&serde_json::json!({"ping": 1}))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                break;
            }
            anyhow::ensure!(Instant::now() < deadline, "the baseline did not start");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        Ok(Baseline {
            nats,
            gateway,
            responder,
            url,
        })
    }

    pub fn pids(&self) -> Vec<(&'static str, u32)> {
        let mut pids = vec![
            ("echo-gateway", self.gateway.id()),
            ("echo-responder", self.responder.id()),
        ];
        pids.extend(self.nats.pid().map(|p| ("nats-server", p)));
        pids
    }
}

impl Drop for Baseline {
    fn drop(&mut self) {
        for c in [&mut self.gateway, &mut self.responder] {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
