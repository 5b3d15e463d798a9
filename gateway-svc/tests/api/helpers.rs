//! `Stack::start` runs the platform as shipped: a private nats-server with the
//! repo's users and permissions (`nats-users.conf`), and the giftcode-svc,
//! wallet-svc and gateway-svc binaries, each connecting as its own user, on
//! SQLite files in a temp dir. Processes are killed when the stack is dropped,
//! and a test fails if a service was refused anything by the broker.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use serde_json::Value;
use tempfile::TempDir;
use testkit::{NatsServer, free_port};

pub use testkit::bus::phone;

pub const TOKEN: &str = "test-admin-token";

/// A sibling service binary. `cargo test --workspace` (what scripts/test.sh
/// runs) builds every binary of the workspace before any test starts.
fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_gateway-svc"))
        .parent()
        .expect("target dir")
        .join(name);
    assert!(
        path.exists(),
        "\n\n*** {} is missing: these end-to-end tests run the real binaries.\n\
         *** Run `cargo test --workspace` (or ./scripts/test.sh), or first\n\
         *** `cargo build -p giftcode-svc -p wallet-svc`.\n\n",
        path.display()
    );
    path
}

/// Where the services keep their data.
pub struct Databases {
    pub giftcode: String,
    pub wallet: String,
    /// giftcode-svc's code key (required with PostgreSQL).
    pub code_key: Option<String>,
}

pub struct Stack {
    pub nats: NatsServer,
    pub base: String,
    pub http: reqwest::Client,
    pub dir: TempDir,
    databases: Databases,
    gateway_env: Vec<(String, String)>,
    /// More environment for giftcode-svc and wallet-svc.
    pub service_env: Vec<(String, String)>,
    /// The health and metrics addresses of giftcode-svc and wallet-svc.
    pub giftcode_http: String,
    pub wallet_http: String,
    giftcode: Option<Child>,
    wallet: Option<Child>,
    gateway: Option<Child>,
    replicas: Vec<Child>,
}

impl Stack {
    /// The platform with the gateway's rate limits off and a long redeem
    /// timeout, unless `env` says otherwise.
    pub async fn start(gateway_env: &[(&str, &str)]) -> Stack {
        Self::start_with(gateway_env, &[]).await
    }

    /// The platform with more environment for giftcode-svc and wallet-svc.
    pub async fn start_with(gateway_env: &[(&str, &str)], service_env: &[(&str, &str)]) -> Stack {
        let dir = tempfile::tempdir().expect("tempdir");
        let databases = Databases {
            giftcode: format!("sqlite://{}/giftcode.db", dir.path().display()),
            wallet: format!("sqlite://{}/wallet.db", dir.path().display()),
            code_key: None,
        };
        Self::start_on(dir, databases, gateway_env, service_env).await
    }

    /// The platform on `databases` (kept in `dir` if they are files).
    pub async fn start_on(
        dir: TempDir,
        databases: Databases,
        gateway_env: &[(&str, &str)],
        service_env: &[(&str, &str)],
    ) -> Stack {
        let nats = NatsServer::start_with_users();
        let port = free_port();
        let mut env: Vec<(String, String)> = vec![
            ("GATEWAY_RATE_LIMIT_PER_IP".into(), "0".into()),
            ("GATEWAY_FAILED_REDEEMS_PER_PHONE".into(), "0".into()),
            // A slow machine must not turn a credited answer into a 202: the
            // tests that want a 202 stop wallet-svc and shorten this.
            ("GATEWAY_REDEEM_TIMEOUT_MS".into(), "30000".into()),
        ];
        env.extend(
            gateway_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string())),
        );
        env.push(("GATEWAY_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
        env.push(("GATEWAY_ADMIN_TOKEN".into(), TOKEN.into()));
        let mut stack = Stack {
            base: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .pool_max_idle_per_host(64)
                .build()
                .expect("client"),
            nats,
            dir,
            databases,
            gateway_env: env,
            service_env: service_env
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            giftcode_http: format!("http://127.0.0.1:{}", free_port()),
            wallet_http: format!("http://127.0.0.1:{}", free_port()),
            giftcode: None,
            wallet: None,
            gateway: None,
            replicas: Vec::new(),
        };
        stack.start_giftcode();
        stack.start_wallet();
        stack.gateway = Some(stack.spawn("gateway-svc", &[]));
        stack.wait_ready().await;
        stack
    }

    fn spawn(&self, name: &str, env: &[(String, String)]) -> Child {
        self.spawn_logged(name, name, env)
    }

    /// `name` with its output (the services log to stdout) in `<log>.log`.
    fn spawn_logged(&self, name: &str, log: &str, env: &[(String, String)]) -> Child {
        let path = if name == "gateway-svc" {
            PathBuf::from(env!("CARGO_BIN_EXE_gateway-svc"))
        } else {
            binary(name)
        };
        let log = std::fs::File::create(self.dir.path().join(format!("{log}.log"))).expect("log");
        let mut cmd = Command::new(path);
        // Each service as its own NATS user: giftcode, wallet, gateway.
        let user = name.trim_end_matches("-svc");
        cmd.env("NATS_URL", self.nats.url())
            .envs(self.nats.env_for(user))
            .env_remove("NATS_CREDS")
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_or_else(|_| Stdio::null(), Stdio::from))
            .stderr(log);
        let vars = if name == "gateway-svc" {
            &self.gateway_env
        } else {
            env
        };
        for (k, v) in vars {
            cmd.env(k, v);
        }
        cmd.spawn().unwrap_or_else(|e| panic!("start {name}: {e}"))
    }

    pub fn start_giftcode(&mut self) {
        let mut env = vec![
            (
                "GIFTCODE_DATABASE_URL".to_owned(),
                self.databases.giftcode.clone(),
            ),
            (
                "GIFTCODE_HTTP_ADDR".to_owned(),
                self.giftcode_http.trim_start_matches("http://").to_owned(),
            ),
        ];
        env.extend(self.service_env.iter().cloned());
        if let Some(key) = &self.databases.code_key {
            env.push(("GIFTCODE_CODE_KEY".to_owned(), key.clone()));
        }
        self.giftcode = Some(self.spawn("giftcode-svc", &env));
    }

    pub fn start_wallet(&mut self) {
        let mut env = vec![
            (
                "WALLET_DATABASE_URL".to_owned(),
                self.databases.wallet.clone(),
            ),
            (
                "WALLET_HTTP_ADDR".to_owned(),
                self.wallet_http.trim_start_matches("http://").to_owned(),
            ),
        ];
        env.extend(self.service_env.iter().cloned());
        self.wallet = Some(self.spawn("wallet-svc", &env));
    }

    /// A second gateway on the same broker and token (DESIGN.md §11); its
    /// base URL, once it is ready.
    pub async fn start_gateway_replica(&mut self) -> String {
        let port = free_port();
        let mut env = self.gateway_env.clone();
        env.retain(|(k, _)| k != "GATEWAY_HTTP_ADDR");
        env.push(("GATEWAY_HTTP_ADDR".into(), format!("127.0.0.1:{port}")));
        let saved = std::mem::replace(&mut self.gateway_env, env);
        let log = format!("gateway-svc-replica-{}", self.replicas.len() + 1);
        let child = self.spawn_logged("gateway-svc", &log, &[]);
        self.gateway_env = saved;
        self.replicas.push(child);
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(60);
        while !matches!(self.http.get(format!("{base}/readyz")).send().await, Ok(r) if r.status() == 200)
        {
            assert!(
                Instant::now() < deadline,
                "the replica did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        base
    }

    /// SIGTERM to the gateway; how long it took to exit (None: not within 60 s).
    pub async fn terminate_gateway(&mut self) -> Option<Duration> {
        let mut child = self.gateway.take()?;
        let started = Instant::now();
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .status();
        while started.elapsed() < Duration::from_secs(60) {
            if let Ok(Some(_)) = child.try_wait() {
                return Some(started.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        kill(Some(child));
        None
    }

    /// SIGKILL: the service vanishes mid-flight.
    pub fn kill_giftcode(&mut self) {
        kill(self.giftcode.take());
    }

    pub fn kill_wallet(&mut self) {
        kill(self.wallet.take());
    }

    /// Until the gateway says both services answer.
    pub async fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(r) = self.http.get(format!("{}/readyz", self.base)).send().await
                && r.status() == 200
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the platform did not become ready"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// wallet-svc's SQLite file, for tests that tamper with the ledger.
    pub fn wallet_db(&self) -> std::path::PathBuf {
        self.dir.path().join("wallet.db")
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}/api/v1{path}", self.base)
    }

    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, self.url(path)).bearer_auth(TOKEN)
    }

    pub async fn redeem(
        &self,
        code: &str,
        phone: &str,
    ) -> (u16, Value, reqwest::header::HeaderMap) {
        let r = self
            .http
            .post(self.url("/redemptions"))
            .json(&serde_json::json!({"code": code, "phone": phone}))
            .send()
            .await
            .expect("redeem");
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        (status, r.json().await.unwrap_or(Value::Null), headers)
    }

    /// Creates a group through the API; returns it with its codes.
    pub async fn create_group(&self, body: Value) -> Value {
        let r = self
            .admin(reqwest::Method::POST, "/gift-groups")
            .json(&body)
            .send()
            .await
            .expect("create");
        assert_eq!(r.status(), 201);
        r.json().await.expect("json")
    }

    pub async fn get_json(&self, path: &str) -> (u16, Value) {
        let r = self
            .admin(reqwest::Method::GET, path)
            .send()
            .await
            .expect("get");
        (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
    }
}

fn kill(child: Option<Child>) {
    if let Some(mut c) = child {
        let _ = c.kill();
        let _ = c.wait();
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        // A failed test shows what the services said.
        if std::thread::panicking()
            && let Ok(entries) = std::fs::read_dir(self.dir.path())
        {
            for e in entries.flatten() {
                let path = e.path();
                if path.extension().is_some_and(|x| x == "log")
                    && let Ok(text) = std::fs::read_to_string(&path)
                {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = lines[lines.len().saturating_sub(40)..].join("\n");
                    eprintln!("--- {} (last 40 lines) ---\n{tail}", path.display());
                }
            }
        }
        kill(self.gateway.take());
        for r in self.replicas.drain(..) {
            kill(Some(r));
        }
        kill(self.giftcode.take());
        kill(self.wallet.take());
        // Every test is also a test of the permissions: a grant missing from
        // nats-users.conf shows up here even where a service retried around it.
        let refused = self.nats.service_violations();
        if !refused.is_empty() && !std::thread::panicking() {
            panic!(
                "the broker refused the services (see nats-users.conf):\n{}",
                refused.join("\n")
            );
        }
    }
}
