//! One PostgreSQL cluster per test binary (random port, temporary directory),
//! in which each test creates its own database.

use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::OnceLock,
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::{free_port, wait_for_port, which};

/// The PostgreSQL cluster of this test binary.
pub struct Postgres {
    port: u16,
    _dir: TempDir,
    /// Runs for the life of the test process; the watchdog ends it.
    _server: Child,
}

static POSTGRES: OnceLock<Postgres> = OnceLock::new();
static DURABLE: OnceLock<Postgres> = OnceLock::new();

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
        POSTGRES.get_or_init(|| Postgres::start(false))
    }

    /// A cluster of this process that keeps production's durability (fsync
    /// on), for benchmarks; tests use [`Postgres::shared`], which does not.
    pub fn durable() -> &'static Postgres {
        DURABLE.get_or_init(|| Postgres::start(true))
    }

    fn start(durable: bool) -> Self {
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
            // Tests want speed; a benchmark wants what production runs:
            // every commit on disk.
            .args(if durable {
                ["-c", "fsync=on", "-c", "full_page_writes=on"]
            } else {
                ["-c", "fsync=off", "-c", "full_page_writes=off"]
            })
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
