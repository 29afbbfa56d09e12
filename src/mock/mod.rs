//! The built-in mock middleware: a simulated TrueNAS server on a loopback port.
//!
//! It speaks the JSON-RPC 2.0 WebSocket dialect of `/api/current` and the legacy DDP-like
//! dialect of `/websocket` (§1.4; the only one of the 24.10 profile) the way the real
//! middleware does (`docs/middleware.md` §1.3, §2–§6): no
//! greeting, concurrent calls with out-of-order replies, the real error codes and `data`, close
//! codes, the `auth.login_ex` state machine (incl. SCRAM on 26), the rate limit, jobs with their
//! `core.get_jobs` events, subscriptions and event sources, and stateful custom apps
//! (`docs/apps.md` §1).
//!
//! The mock shares only [`crate::protocol`] with the client. Layout:
//! - `transport.rs`: listener, TLS, HTTP routing, WebSocket framing, size
//!   limits and close codes;
//! - `rpc.rs`: the JSON-RPC envelope, and `ddp.rs`: the legacy `/websocket` framing; both
//!   hand calls to the same dispatcher;
//! - `dispatch.rs`: the method table, authentication, rate limit, concurrency, job launching;
//! - `auth.rs`, `scram.rs`, `jobs.rs`, `events.rs`, `apps.rs`, `pools.rs`, `filesystem.rs`,
//!   `system.rs`, `query.rs`, `transcript.rs`, `state.rs`, `error.rs`;
//! - `demo.rs`: the demo state ([`MockConfig::demo`]) and its life (a recurring job, alerts,
//!   a filling pool).
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use midscript::mock::{MockConfig, MockServer};
//! let server = MockServer::start(MockConfig::for_tests()).await?;
//! println!("{}", server.url()); // ws://127.0.0.1:PORT/api/current
//! server.shutdown().await;
//! # Ok(()) }
//! ```

mod apps;
mod auth;
mod ddp;
mod demo;
mod dispatch;
mod error;
mod events;
mod filesystem;
mod jobs;
mod pools;
mod query;
mod rpc;
mod scram;
mod state;
mod system;
mod transcript;
mod transport;

#[cfg(test)]
mod tests;

use std::fmt;
use std::net::SocketAddr;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use transcript::{Transcript, TranscriptEvent, TranscriptLine};

/// The server release the mock pretends to be (`docs/middleware.md` §0.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ServerVersion {
    /// TrueNAS 24.10 "Electric Eel" (24.10.2.4): only the legacy DDP-like `/websocket`
    /// (`/api/current` and every other `/api` path answer HTTP 404), no `auth.login_ex`, no
    /// `auth.mechanism_choices`, no `core.set_options`, no SCRAM, no revoking of API keys used
    /// over an insecure transport; `core.get_events` exists; job objects have no
    /// `message_ids`; the rate limit counts logged-in calls to no-auth methods too; the DDP
    /// `ping` is answered.
    V24_10,
    /// TrueNAS 25.04 "Fangtooth" (25.04.2.6): `core.ping` needs a login, `core.get_methods` is
    /// no-auth, `core.set_options` knows only `py_exceptions`, no SCRAM, no `DENIED`.
    V25_04,
    /// TrueNAS 25.10 "Goldeye" (25.10.6): new-style jobs, `core.ping` without login.
    V25_10,
    /// TrueNAS 26.0: adds SCRAM-SHA-512 (with `tls-server-end-point` channel binding), the
    /// `DENIED` response type, and `latest_app_version` / `action_required` on app entries.
    V26_0,
    /// TrueNAS 27.0: apps gain the `ERROR` state with an `error_reason`, `version` /
    /// `human_version` may be null, and the app jobs that pull images (create, update,
    /// pull_images, redeploy, upgrade) are abortable and report per-layer pull progress.
    V27_0,
}

impl ServerVersion {
    /// Every version, oldest first.
    pub const ALL: [ServerVersion; 5] = [
        ServerVersion::V24_10,
        ServerVersion::V25_04,
        ServerVersion::V25_10,
        ServerVersion::V26_0,
        ServerVersion::V27_0,
    ];

    /// The release string `system.info` reports, e.g. `25.04.2.6`.
    pub fn release(self) -> &'static str {
        match self {
            ServerVersion::V24_10 => "24.10.2.4",
            ServerVersion::V25_04 => "25.04.2.6",
            ServerVersion::V25_10 => "25.10.6",
            ServerVersion::V26_0 => "26.0.0",
            ServerVersion::V27_0 => "27.0.0",
        }
    }

    /// The API versions `GET /api/versions` lists (`docs/middleware.md` §1.1; `v24.10` is hidden).
    /// None on 24.10, which has no `/api` routes at all.
    pub fn api_versions(self) -> Vec<&'static str> {
        if self == ServerVersion::V24_10 {
            return Vec::new();
        }
        let mut v = vec!["v25.04.0", "v25.04.1", "v25.04.2"];
        if self >= ServerVersion::V25_10 {
            v.extend([
                "v25.10.0", "v25.10.1", "v25.10.2", "v25.10.3", "v25.10.4", "v25.10.5",
            ]);
        }
        if self >= ServerVersion::V26_0 {
            v.push("v26.0.0");
        }
        if self >= ServerVersion::V27_0 {
            v.push("v27.0.0");
        }
        v
    }

    /// Does this release serve JSON-RPC on `/api/…`? (Not 24.10, `docs/middleware.md` §0.1.)
    pub fn has_jsonrpc(self) -> bool {
        self >= ServerVersion::V25_04
    }
}

impl fmt::Display for ServerVersion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.release())
    }
}

/// The error of [`ServerVersion::from_str`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown server version {0:?} (expected 24.10, 25.04, 25.10, 26.0 or 27.0)")]
pub struct UnknownVersion(pub String);

impl FromStr for ServerVersion {
    type Err = UnknownVersion;

    /// Accepts `24.10`, `25.04`, `25.10`, `26.0` / `26`, `27.0` / `27`, with or without a patch
    /// suffix or a `v`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().trim_start_matches('v');
        let v = if t == "24.10" || t.starts_with("24.10.") {
            ServerVersion::V24_10
        } else if t == "25.04" || t.starts_with("25.04.") {
            ServerVersion::V25_04
        } else if t == "25.10" || t.starts_with("25.10.") {
            ServerVersion::V25_10
        } else if t == "26" || t == "26.0" || t.starts_with("26.0.") {
            ServerVersion::V26_0
        } else if t == "27" || t == "27.0" || t.starts_with("27.0.") {
            ServerVersion::V27_0
        } else {
            return Err(UnknownVersion(s.to_owned()));
        };
        Ok(v)
    }
}

/// A local account of the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockUser {
    /// `user.query` id (the uid is 949 + id, so id 1 is uid 950).
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Clear-text password accepted by `PASSWORD_PLAIN` / `auth.login`.
    pub password: String,
    /// When set, `PASSWORD_PLAIN` answers `OTP_REQUIRED` and this is the one valid OTP code.
    pub otp_code: Option<String>,
    /// Full admin: sees every job; otherwise only its own jobs.
    pub full_admin: bool,
    /// `false` makes logins answer `DENIED` on 26 (25.x has no such response type and lets the
    /// login succeed).
    pub api_access: bool,
}

/// An API key of the mock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MockApiKey {
    /// Key id (the part before `-`).
    pub id: i64,
    /// Username of the owner.
    pub owner: String,
    /// The full key, `"<id>-<material>"`.
    pub key: String,
    /// Revoked keys answer `AUTH_ERR`.
    pub revoked: bool,
    /// Expired keys answer `EXPIRED`.
    pub expired: bool,
}

/// The rate limit for anonymous calls to no-auth methods (`docs/middleware.md` §2.5).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RateLimitConfig {
    /// Calls allowed per `(method, ip)` per window (real: 20).
    pub max_calls: u32,
    /// Fixed window length (real: 60 s).
    pub window: Duration,
    /// Lower bound of the stall before EBUSY (real: 1 s).
    pub delay_min: Duration,
    /// Upper bound of the stall before EBUSY (real: 10 s).
    pub delay_max: Duration,
}

impl Default for RateLimitConfig {
    fn default() -> Self {
        RateLimitConfig {
            max_calls: 20,
            window: Duration::from_secs(60),
            delay_min: Duration::from_secs(1),
            delay_max: Duration::from_secs(10),
        }
    }
}

/// Faults the mock can inject, to test clients that reconnect. Each fires once. Client
/// messages are counted over all connections, from 1.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MockFaults {
    /// Drop the connection that started the first job (the TCP connection ends, no close
    /// frame) at the job's first progress step. The job runs on.
    pub drop_mid_job: bool,
    /// Restart the server at the first job's first progress step (see `restart_at`).
    pub restart_mid_job: bool,
    /// The N-th client message is not handled: its connection is closed with 1011 instead.
    pub close_1011_at: Option<u64>,
    /// The N-th client message is not handled, and from then on its connection gets nothing
    /// at all: no replies, no events, no pongs (a frozen server).
    pub freeze_at: Option<u64>,
    /// The N-th client message is not handled: the server restarts. Every connection is
    /// dropped, nothing listens for `restart_downtime`, then the same port serves again
    /// with all state kept (accounts, apps, jobs, which run on).
    pub restart_at: Option<u64>,
    /// How long a restart keeps the port closed.
    pub restart_downtime: Duration,
}

/// Everything that shapes the mock's behaviour.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Serve `wss://` with a self-signed certificate generated at start; `false` = plain `ws://`.
    pub tls: bool,
    /// Local accounts.
    pub users: Vec<MockUser>,
    /// API keys.
    pub api_keys: Vec<MockApiKey>,
    /// Which release to imitate.
    pub version: ServerVersion,
    /// Treat plain `ws://` as a secure transport. Default `false`: plain ws is INSECURE, as for
    /// a remote peer (the real server trusts loopback, but the mock stands in for a remote NAS),
    /// so `API_KEY_PLAIN` over ws revokes the key (`docs/middleware.md` §1.5).
    pub plain_is_secure: bool,
    /// Rate limit settings.
    pub rate_limit: RateLimitConfig,
    /// Fixed ids, uuids (counter-based, uuid-shaped), container ids, salts and clock (starts at
    /// 2025-01-01T00:00:00Z and advances one second per reading); no randomness.
    pub deterministic: bool,
    /// Delay between job progress steps (and between app state changes, log lines and, in
    /// deterministic mode, one "second" of an event-source interval).
    pub job_step: Duration,
    /// Server-side delay after a failed login (real: 1–2 s).
    pub fail_delay: Duration,
    /// PBKDF2 iterations announced in SCRAM (>= 50 000; the official client refuses less; real
    /// servers use 500 000).
    pub scram_iterations: u32,
    /// Accept SCRAM channel binding (`p=tls-server-end-point`) over TLS, as 26.0.0-BETA.3 and
    /// later do. `false` imitates 26.0.0-BETA.1/2, which answer a bound login with `AUTH_ERR`.
    pub scram_channel_binding: bool,
    /// Apps whose deployment crashes (all containers `crashed`, app `CRASHED`). Independently,
    /// any service whose image tag is `crash` (e.g. `busybox:crash`) crashes.
    pub crash_apps: Vec<String>,
    /// Host name reported by `system.info` and put into the certificate.
    pub hostname: String,
    /// Keep a transcript of every frame (tests); off by default, so a long-running mock does
    /// not grow without bound.
    pub record_transcript: bool,
    /// Faults to inject (none by default).
    pub faults: MockFaults,
    /// Start from the demo state: three apps (one crashed), the pool `tank`, two alerts, and a
    /// recurring cloud backup job (`midscript mock --demo`, `midscript --mock`). Off in both
    /// presets, so tests start empty unless they ask.
    pub demo: bool,
    /// How long every call takes before it is answered (none by default): stands in for a busy
    /// NAS. The call holds one of the 10 running slots meanwhile, as a slow method would.
    pub latency: Duration,
    /// Start with synthetic alerts adding up to about this many bytes of JSON, so that
    /// `alert.list` is a big reply (0 by default: no alerts).
    pub alert_backlog_bytes: usize,
}

impl Default for MockConfig {
    /// Interactive defaults: TLS on, 25.10, one admin `truenas_admin` with a generated random
    /// password and one generated API key owned by it, realistic delays.
    fn default() -> Self {
        let password = state::random_alnum(20);
        let key = format!("1-{}", state::random_alnum(64));
        MockConfig {
            tls: true,
            users: vec![admin_user(password)],
            api_keys: vec![MockApiKey {
                id: 1,
                owner: "truenas_admin".into(),
                key,
                revoked: false,
                expired: false,
            }],
            version: ServerVersion::V25_10,
            plain_is_secure: false,
            rate_limit: RateLimitConfig::default(),
            deterministic: false,
            job_step: Duration::from_millis(400),
            fail_delay: Duration::from_millis(1500),
            scram_iterations: 500_000,
            scram_channel_binding: true,
            crash_apps: Vec::new(),
            hostname: "truenas".into(),
            record_transcript: false,
            faults: MockFaults::default(),
            demo: false,
            latency: Duration::ZERO,
            alert_backlog_bytes: 0,
        }
    }
}

/// The password of `truenas_admin` in [`MockConfig::for_tests`].
pub const TEST_PASSWORD: &str = "correct-horse-battery";
/// The API key in [`MockConfig::for_tests`] (id 1, owned by `truenas_admin`).
pub const TEST_API_KEY: &str = "1-TestKeyMaterial0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLM";

fn admin_user(password: String) -> MockUser {
    MockUser {
        id: 1,
        username: "truenas_admin".into(),
        password,
        otp_code: None,
        full_admin: true,
        api_access: true,
    }
}

impl MockConfig {
    /// Deterministic settings for tests: plain ws, 25.10, `truenas_admin` /
    /// [`TEST_PASSWORD`], API key [`TEST_API_KEY`], 5 ms job steps, no failure or rate-limit
    /// delays, 50 000 SCRAM iterations.
    pub fn for_tests() -> Self {
        MockConfig {
            tls: false,
            users: vec![admin_user(TEST_PASSWORD.into())],
            api_keys: vec![MockApiKey {
                id: 1,
                owner: "truenas_admin".into(),
                key: TEST_API_KEY.into(),
                revoked: false,
                expired: false,
            }],
            version: ServerVersion::V25_10,
            plain_is_secure: false,
            rate_limit: RateLimitConfig {
                delay_min: Duration::ZERO,
                delay_max: Duration::ZERO,
                ..RateLimitConfig::default()
            },
            deterministic: true,
            job_step: Duration::from_millis(5),
            fail_delay: Duration::ZERO,
            scram_iterations: 50_000,
            scram_channel_binding: true,
            crash_apps: Vec::new(),
            hostname: "truenas".into(),
            record_transcript: true,
            faults: MockFaults::default(),
            demo: false,
            latency: Duration::ZERO,
            alert_backlog_bytes: 0,
        }
    }
}

/// A running mock server. It serves until [`MockServer::shutdown`] (or until dropped, which
/// stops accepting and closes connections in the background).
pub struct MockServer {
    shared: Arc<state::Shared>,
    addr: SocketAddr,
    stop: CancellationToken,
    accept: Option<JoinHandle<()>>,
}

impl MockServer {
    /// Start on `127.0.0.1` with a free port.
    pub async fn start(config: MockConfig) -> std::io::Result<MockServer> {
        Self::start_on(SocketAddr::from(([127, 0, 0, 1], 0)), config).await
    }

    /// Start on the given address (port 0 picks a free port). The mock listens on nothing else.
    pub async fn start_on(addr: SocketAddr, config: MockConfig) -> std::io::Result<MockServer> {
        let tls = if config.tls {
            Some(transport::TlsMaterial::generate(&config.hostname)?)
        } else {
            None
        };
        let demo = config.demo;
        let shared = Arc::new(state::Shared::new(config, tls));
        if demo {
            demo::seed(&shared);
        }
        let listener = tokio::net::TcpListener::bind(addr).await?;
        let addr = listener.local_addr()?;
        let stop = CancellationToken::new();
        if demo {
            tokio::spawn(demo::run(shared.clone(), stop.clone()));
        }
        let accept = tokio::spawn(transport::serve(listener, shared.clone(), stop.clone()));
        Ok(MockServer {
            shared,
            addr,
            stop,
            accept: Some(accept),
        })
    }

    /// `ws://127.0.0.1:PORT/api/current`, or `wss://…` with TLS; on the 24.10 profile, which
    /// has no `/api/current`, the [`MockServer::legacy_url`].
    pub fn url(&self) -> String {
        if self.shared.config.version.has_jsonrpc() {
            self.url_with_path("/api/current")
        } else {
            self.legacy_url()
        }
    }

    /// `ws://127.0.0.1:PORT/websocket` (or `wss://…`): the legacy DDP-like endpoint, served
    /// by every profile.
    pub fn legacy_url(&self) -> String {
        self.url_with_path("/websocket")
    }

    fn url_with_path(&self, path: &str) -> String {
        let scheme = if self.shared.tls.is_some() {
            "wss"
        } else {
            "ws"
        };
        format!("{scheme}://{}{path}", self.addr)
    }

    /// The bound address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// SHA-256 fingerprint of the certificate as `openssl x509 -fingerprint -sha256` prints it
    /// (uppercase hex, colon-separated); `None` without TLS.
    pub fn fingerprint(&self) -> Option<String> {
        self.shared.tls.as_ref().map(|t| t.fingerprint.clone())
    }

    /// The certificate (DER) served with TLS.
    pub fn certificate_der(&self) -> Option<Vec<u8>> {
        self.shared.tls.as_ref().map(|t| t.cert_der.clone())
    }

    /// The configuration the server runs with (generated credentials included).
    pub fn config(&self) -> &MockConfig {
        &self.shared.config
    }

    /// A snapshot of the transcript so far.
    pub fn transcript(&self) -> Transcript {
        self.shared.transcript.snapshot()
    }

    /// Forget the transcript so far.
    pub fn clear_transcript(&self) {
        self.shared.transcript.clear();
    }

    /// Make deployments of `app` crash (or stop crashing) from the next deploy on.
    pub fn set_crash(&self, app: &str, crash: bool) {
        self.shared.apps.set_crash(app, crash);
    }

    /// Break the on-disk metadata of an existing app (`reason`: `METADATA_MISSING`,
    /// `METADATA_UNREADABLE` or `METADATA_INCOMPLETE`), or mend it with `None`. On 27 the app
    /// then shows the `ERROR` state with that `error_reason`; earlier releases leave it out of
    /// `app.query`. `app.query` subscribers are told. `false` when there is no such app or the
    /// reason is unknown.
    pub fn set_app_metadata_error(&self, app: &str, reason: Option<&str>) -> bool {
        let done = self.shared.apps.set_metadata_error(app, reason);
        if done {
            apps::announce(&self.shared, app);
        }
        done
    }

    /// Set the status of pool `name` (`ONLINE`, `DEGRADED`, …) and announce it on
    /// `pool.query`; false when there is no such pool.
    pub fn set_pool_status(&self, name: &str, status: &str) -> bool {
        match self.shared.pools.set_status(name, status) {
            Some(entry) => {
                pools::announce(&self.shared, entry);
                true
            }
            None => false,
        }
    }

    /// Raise an alert (`level` as the server names them: INFO, NOTICE, WARNING, ERROR,
    /// CRITICAL, ALERT, EMERGENCY) and announce it on `alert.list`; returns its uuid.
    pub fn raise_alert(&self, klass: &str, level: &str, text: &str) -> String {
        let a = demo::alert(&self.shared, klass, level, text);
        let uuid = a["uuid"].as_str().unwrap_or_default().to_owned();
        demo::raise(&self.shared, a);
        uuid
    }

    /// Remove alert `uuid` and announce it; false when there is no such alert.
    pub fn clear_alert(&self, uuid: &str) -> bool {
        demo::clear(&self.shared, uuid)
    }

    /// Put a file (and its parent directories) into the mock's file tree.
    pub fn add_file(&self, path: &str) {
        self.shared.fs.add_file(path);
    }

    /// The bytes of a file in the mock's file tree (`None` when it is not a file).
    pub fn file_content(&self, path: &str) -> Option<Vec<u8>> {
        self.shared.fs.content(path)
    }

    /// The permission bits of a path in the mock's file tree.
    pub fn file_mode(&self, path: &str) -> Option<u32> {
        self.shared.fs.mode(path)
    }

    /// The mock's dataset names, sorted.
    pub fn datasets(&self) -> Vec<String> {
        self.shared.fs.datasets()
    }

    /// Every path of the mock's file tree with its type (`DIRECTORY` / `FILE`), sorted.
    pub fn files(&self) -> Vec<(String, &'static str)> {
        self.shared.fs.list()
    }

    /// Restart now, as [`MockFaults::restart_at`] does: every connection is dropped, the port
    /// stays closed for [`MockFaults::restart_downtime`], then serves again with all state
    /// kept.
    pub fn restart(&self) {
        self.shared.faults.restart.notify_one();
    }

    /// How many logins succeeded so far (every dialect and mechanism).
    pub fn logins(&self) -> u64 {
        self.shared
            .faults
            .logins
            .load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Stop accepting, close every connection (1001) and wait for the accept loop to end.
    pub async fn shutdown(mut self) {
        self.stop.cancel();
        if let Some(h) = self.accept.take() {
            let _ = h.await;
        }
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl fmt::Debug for MockServer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MockServer")
            .field("url", &self.url())
            .field("version", &self.shared.config.version)
            .finish()
    }
}
