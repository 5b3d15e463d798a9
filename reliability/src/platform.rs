//! The platform as real processes, for attacking: nats-server (one, or a
//! three-node cluster), and the three service binaries, each possibly in
//! several replicas, every one of which can be `kill -9`ed and restarted on the
//! same database and port. Everything lives in one temporary directory and on
//! random ports; processes die with the test.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rand::RngExt;
use tempfile::TempDir;
use testkit::{NatsServer, free_port};

use crate::nats_cluster::NatsCluster;

pub const TOKEN: &str = "reliability-admin-token";

/// Where each service keeps its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Storage {
    /// One SQLite file per service (the embedded default): one replica each.
    Sqlite,
    /// One PostgreSQL database per service, shared by its replicas.
    Postgres,
}

pub enum Broker {
    Single(NatsServer),
    Cluster(NatsCluster),
}

impl Broker {
    /// The URL(s) a service is given: every node of a cluster.
    pub fn urls(&self) -> String {
        match self {
            Broker::Single(n) => n.url(),
            Broker::Cluster(c) => c.urls(),
        }
    }

    fn env_for(&self, user: &str) -> Vec<(String, String)> {
        match self {
            Broker::Single(n) => n.env_for(user),
            Broker::Cluster(c) => c.env_for(user),
        }
    }
}

/// A service binary of the workspace in `target/<profile>/`: the directory of
/// this executable (a binary such as the benchmark) or the one above it (a
/// test, in `deps/`), or `PLATFORM_BIN_DIR` when set. `cargo test
/// --workspace` builds them all first.
pub fn binary(name: &str) -> PathBuf {
    // The benchmark may run other binaries than its own (an earlier build's,
    // for a before-and-after in the same harness).
    if let Some(dir) = std::env::var_os("PLATFORM_BIN_DIR") {
        let path = PathBuf::from(dir).join(name);
        assert!(path.is_file(), "PLATFORM_BIN_DIR has no {}", path.display());
        return path;
    }
    let exe = std::env::current_exe().unwrap_or_else(|e| panic!("current exe: {e}"));
    let here = exe
        .parent()
        .unwrap_or_else(|| panic!("no directory above {}", exe.display()));
    let dir = if here.ends_with("deps") {
        here.parent().unwrap_or(here)
    } else {
        here
    };
    let path = dir.join(name);
    assert!(
        path.is_file(),
        "\n\n*** {} is missing. The reliability suite runs the real binaries:\n\
         *** build them first with `cargo build --workspace` (or run\n\
         *** `cargo test --workspace`, as ./scripts/test.sh does).\n\n",
        path.display()
    );
    path
}

/// One service process: its binary, its environment and its HTTP port stay
/// the same across kills and restarts, like a supervised unit.
pub struct Proc {
    pub name: String,
    bin: PathBuf,
    env: Vec<(String, String)>,
    pub http: String,
    log: PathBuf,
    child: Option<Child>,
    pub kills: u32,
}

impl Proc {
    pub fn start(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap_or_else(|e| panic!("log {}: {e}", self.log.display()));
        let mut cmd = Command::new(&self.bin);
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env(
                "RUST_LOG",
                std::env::var("PLATFORM_RUST_LOG").unwrap_or_else(|_| "warn".into()),
            )
            .stdin(Stdio::null())
            // The services log to stdout: into the log with stderr.
            .stdout(log.try_clone().map_or_else(|_| Stdio::null(), Stdio::from))
            .stderr(log);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("start {}: {e}", self.name));
        testkit::watchdog(child.id(), "9");
        self.child = Some(child);
    }

    /// SIGKILL: no drain, no flush, whatever was in flight is cut.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.kills += 1;
        }
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Polls `/readyz` until it answers 200.
    pub async fn wait_ready(&self, within: Duration) {
        let http = reqwest::Client::new();
        let deadline = Instant::now() + within;
        loop {
            let ok = http
                .get(format!("{}/readyz", self.http))
                .timeout(Duration::from_secs(2))
                .send()
                .await
                .is_ok_and(|r| r.status() == 200);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} not ready within {within:?}; its log: {}",
                self.name,
                self.log.display()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

pub struct Options {
    pub storage: Storage,
    /// Replicas of each service (gateway included); more than one needs
    /// PostgreSQL.
    pub replicas: usize,
    /// A three-node NATS cluster with streams at three replicas.
    pub cluster: bool,
    /// A single nats-server as `nats.conf` ships it (its `sync_interval`),
    /// for benchmarks; tests use the server's default.
    pub as_shipped: bool,
    /// With `as_shipped`: another `sync_interval` than the shipped one.
    pub sync: Option<String>,
    /// PostgreSQL with fsync on (benchmarks); tests run it without.
    pub durable_postgres: bool,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            storage: Storage::Sqlite,
            replicas: 1,
            cluster: false,
            as_shipped: false,
            sync: None,
            durable_postgres: false,
        }
    }
}

pub struct Platform {
    pub broker: Broker,
    pub giftcode: Vec<Proc>,
    pub wallet: Vec<Proc>,
    pub gateway: Vec<Proc>,
    pub dir: TempDir,
}

/// When a scenario fails, the last lines of every process's log say why.
impl Drop for Platform {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            return;
        }
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.extension().is_some_and(|x| x == "log") {
                let text = std::fs::read_to_string(&path).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = lines[lines.len().saturating_sub(15)..].join("\n");
                eprintln!("--- {} (last lines)\n{tail}", path.display());
            }
        }
    }
}

impl Platform {
    pub async fn start(opts: Options) -> Platform {
        assert!(
            opts.replicas == 1 || opts.storage == Storage::Postgres,
            "replicas share a database: use PostgreSQL"
        );
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let broker = if opts.cluster {
            Broker::Cluster(NatsCluster::start(3))
        } else if let (true, Some(sync)) = (opts.as_shipped, &opts.sync) {
            Broker::Single(NatsServer::start_with_sync(Some(sync)))
        } else if opts.as_shipped {
            Broker::Single(NatsServer::start_as_shipped())
        } else {
            Broker::Single(NatsServer::start_with_users())
        };
        let replicas = if opts.cluster { "3" } else { "1" };
        let db = |name: &str| {
            let name = name.to_owned();
            let path = dir.path().join(format!("{name}.db"));
            async move {
                match opts.storage {
                    Storage::Sqlite => format!("sqlite://{}", path.display()),
                    Storage::Postgres if opts.durable_postgres => {
                        testkit::Postgres::durable().fresh_database().await
                    }
                    Storage::Postgres => testkit::Postgres::shared().fresh_database().await,
                }
            }
        };
        let code_key: String = (0..32)
            .map(|_| format!("{:02x}", rand::rng().random::<u8>()))
            .collect();
        let giftcode_db = db("giftcode").await;
        let wallet_db = db("wallet").await;
        let mut p = Platform {
            giftcode: Vec::new(),
            wallet: Vec::new(),
            gateway: Vec::new(),
            broker,
            dir,
        };
        for i in 0..opts.replicas {
            let common = |p: &Platform, user: &str| {
                let mut env = p.broker.env_for(user);
                env.push(("NATS_URL".into(), p.broker.urls()));
                env.push(("NATS_STREAM_REPLICAS".into(), replicas.into()));
                env
            };
            let mut env = common(&p, "giftcode");
            env.push(("GIFTCODE_DATABASE_URL".into(), giftcode_db.clone()));
            if opts.storage == Storage::Postgres {
                // Replicas must share the key their codes are digested with.
                env.push(("GIFTCODE_CODE_KEY".into(), code_key.clone()));
            }
            let proc = p.proc("giftcode-svc", i, "GIFTCODE_HTTP_ADDR", env);
            p.giftcode.push(proc);
            let mut env = common(&p, "wallet");
            env.push(("WALLET_DATABASE_URL".into(), wallet_db.clone()));
            let proc = p.proc("wallet-svc", i, "WALLET_HTTP_ADDR", env);
            p.wallet.push(proc);
            let mut env = common(&p, "gateway");
            env.extend(
                [
                    ("GATEWAY_ADMIN_TOKEN", TOKEN),
                    ("GATEWAY_RATE_LIMIT_PER_IP", "0"),
                    ("GATEWAY_FAILED_REDEEMS_PER_PHONE", "0"),
                ]
                .map(|(k, v)| (k.to_owned(), v.to_owned())),
            );
            let proc = p.proc("gateway-svc", i, "GATEWAY_HTTP_ADDR", env);
            p.gateway.push(proc);
        }
        // giftcode-svc and wallet-svc first: each creates its stream.
        for proc in p.giftcode.iter_mut().chain(p.wallet.iter_mut()) {
            proc.start();
        }
        for proc in p.gateway.iter_mut() {
            proc.start();
        }
        for proc in p.all() {
            proc.wait_ready(Duration::from_secs(60)).await;
        }
        p
    }

    fn proc(&self, name: &str, i: usize, addr_var: &str, mut env: Vec<(String, String)>) -> Proc {
        let port = free_port();
        env.push((addr_var.to_owned(), format!("127.0.0.1:{port}")));
        Proc {
            name: format!("{name}#{i}"),
            bin: binary(name),
            env,
            http: format!("http://127.0.0.1:{port}"),
            log: self.dir.path().join(format!("{name}-{i}.log")),
            child: None,
            kills: 0,
        }
    }

    pub fn all(&self) -> impl Iterator<Item = &Proc> {
        self.giftcode
            .iter()
            .chain(self.wallet.iter())
            .chain(self.gateway.iter())
    }

    /// The gateways' API bases, for the load to spread over.
    pub fn api_bases(&self) -> Vec<String> {
        self.gateway
            .iter()
            .map(|g| format!("{}/api/v1", g.http))
            .collect()
    }

    /// Restarts whatever is not running and waits until all are ready.
    pub async fn heal(&mut self) {
        for proc in self
            .giftcode
            .iter_mut()
            .chain(self.wallet.iter_mut())
            .chain(self.gateway.iter_mut())
        {
            if !proc.is_running() {
                proc.start();
            }
        }
        for proc in self.all() {
            proc.wait_ready(Duration::from_secs(120)).await;
        }
    }
}
