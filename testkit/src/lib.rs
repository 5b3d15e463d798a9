//! Private infrastructure for tests (DEVELOPERS.md): each test gets its own
//! nats-server (random port, temporary store); each test binary gets one
//! PostgreSQL cluster (random port, temporary directory) in which every test
//! creates its own database. Nothing is shared between binaries, and nothing
//! outlives the test process: a watchdog shell kills each server when the test
//! process is gone, even if it died without unwinding.
//!
//! A missing `nats-server` or PostgreSQL fails the test loudly with what to
//! install; tests never skip silently.
//!
//! [`NatsServer::start_with_users`] runs the repo's own users and permissions
//! (`nats-users.conf`, which `nats.conf` includes) with fresh passwords, so a
//! test exercises the grants that ship.

pub mod bus;
pub mod fixtures;
pub mod nats;
pub mod postgres;

use std::{
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Command, Stdio},
    time::{Duration, Instant},
};

pub use nats::{
    NATS_USERS, NATS_USERS_CONF, NatsServer, ServerErrors, WATCHER_PREFIX, nats_server_bin,
};
pub use postgres::Postgres;
/// A free TCP port on loopback.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or_else(|e| panic!("cannot find a free port: {e}"))
}

pub(crate) fn wait_for_port(port: u16, what: &str, timeout: Duration) {
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
pub fn watchdog(pid: u32, signal: &str) {
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
pub(crate) fn which(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|p| p.join(name))
            .find(|p| p.is_file())
    })
}
