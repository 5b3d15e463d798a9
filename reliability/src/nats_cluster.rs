//! A three-node NATS cluster with JetStream on loopback ports, running the
//! repo's users and permissions (`nats-users.conf`), for the scale-out
//! scenario. Each node can be killed and restarted on its port and store.

use std::{
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use rand::RngExt;
use tempfile::TempDir;
use testkit::{NATS_USERS, NATS_USERS_CONF, free_port, nats_server_bin};

pub struct Node {
    pub name: String,
    pub port: u16,
    pub monitor: u16,
    conf: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

pub struct NatsCluster {
    pub nodes: Vec<Node>,
    users: Vec<(&'static str, String)>,
    _dir: TempDir,
}

impl NatsCluster {
    pub fn start(size: usize) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        std::fs::write(dir.path().join("nats-users.conf"), NATS_USERS_CONF)
            .unwrap_or_else(|e| panic!("users conf: {e}"));
        let routes: Vec<u16> = (0..size).map(|_| free_port()).collect();
        let route_urls = routes
            .iter()
            .map(|p| format!("\"nats-route://127.0.0.1:{p}\""))
            .collect::<Vec<_>>()
            .join(", ");
        let mut nodes = Vec::new();
        for (i, route) in routes.iter().enumerate() {
            let (port, monitor) = (free_port(), free_port());
            let name = format!("n{i}");
            let conf = dir.path().join(format!("{name}.conf"));
            let text = format!(
                "server_name: {name}\nhost: 127.0.0.1\nport: {port}\nhttp_port: {monitor}\n\
                 jetstream {{\n  store_dir: \"{store}\"\n  sync_interval: always\n}}\n\
                 cluster {{\n  name: reliability\n  host: 127.0.0.1\n  port: {route}\n  \
                 routes: [{route_urls}]\n}}\ninclude ./nats-users.conf\n",
                store = dir.path().join(&name).display(),
            );
            std::fs::write(&conf, text).unwrap_or_else(|e| panic!("{name}.conf: {e}"));
            nodes.push(Node {
                log: dir.path().join(format!("{name}.log")),
                name,
                port,
                monitor,
                conf,
                child: None,
            });
        }
        let users = NATS_USERS
            .iter()
            .map(|(u, _)| {
                let n: u128 = rand::rng().random();
                (*u, format!("p{n:032x}"))
            })
            .collect();
        let mut cluster = NatsCluster {
            nodes,
            users,
            _dir: dir,
        };
        for i in 0..size {
            cluster.spawn(i);
        }
        cluster.wait_meta_leader(Duration::from_secs(60));
        cluster
    }

    fn spawn(&mut self, i: usize) {
        let node = &self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)
            .unwrap_or_else(|e| panic!("log: {e}"));
        let mut cmd = Command::new(nats_server_bin());
        cmd.arg("-c").arg(&node.conf);
        for ((_, var), (_, pw)) in NATS_USERS.iter().zip(&self.users) {
            cmd.env(var, pw);
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("start nats-server {}: {e}", node.name));
        testkit::watchdog(child.id(), "9");
        self.nodes[i].child = Some(child);
    }

    /// Waits until JetStream has elected its meta leader: before that, no
    /// stream can be created.
    fn wait_meta_leader(&self, within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let led =
                self.nodes.iter().filter(|n| n.child.is_some()).any(|n| {
                    jsz(n.monitor).is_some_and(|v| v["meta_cluster"]["leader"].is_string())
                });
            if led {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the NATS cluster elected no JetStream leader within {within:?}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(|n| format!("nats://127.0.0.1:{}", n.port))
            .collect::<Vec<_>>()
            .join(",")
    }

    pub fn env_for(&self, user: &str) -> Vec<(String, String)> {
        let pw = self
            .users
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.clone())
            .unwrap_or_else(|| panic!("no NATS user {user}"));
        vec![
            ("NATS_USER".into(), user.into()),
            ("NATS_PASSWORD".into(), pw),
        ]
    }

    /// SIGKILL one node.
    pub fn kill(&mut self, i: usize) {
        if let Some(mut c) = self.nodes[i].child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    pub fn restart(&mut self, i: usize) {
        self.kill(i);
        self.spawn(i);
        self.wait_meta_leader(Duration::from_secs(60));
    }
}

impl Drop for NatsCluster {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            self.kill(i);
        }
    }
}

/// The node's `/jsz` monitoring page, read with a bare HTTP/1.0 request (no
/// HTTP client in a sync context, and no curl needed on the machine).
fn jsz(monitor: u16) -> Option<serde_json::Value> {
    use std::io::{Read, Write};
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", monitor)).ok()?;
    conn.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    conn.write_all(b"GET /jsz HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
        .ok()?;
    let mut reply = Vec::new();
    conn.read_to_end(&mut reply).ok()?;
    let at = reply.windows(4).position(|w| w == b"\r\n\r\n")?;
    serde_json::from_slice(&reply[at + 4..]).ok()
}
