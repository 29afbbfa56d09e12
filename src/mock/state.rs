//! Server-wide state shared by every connection, and the per-connection handle.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::atomic::{AtomicI64, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ring::rand::{SecureRandom, SystemRandom};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use super::auth::Session;
use super::events::Sub;
use super::transcript::TranscriptLog;
use super::transport::TlsMaterial;
use super::{MockApiKey, MockConfig, MockUser, apps, jobs};
use crate::protocol::{Notification, redact};

/// Lock a std mutex, recovering from poisoning (a panicking task must not wedge the server).
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// `n` random alphanumeric characters from the system RNG.
pub(crate) fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let rng = SystemRandom::new();
    let mut out = String::with_capacity(n);
    let mut buf = [0u8; 1];
    while out.len() < n {
        if rng.fill(&mut buf).is_err() {
            // The system RNG never fails on supported platforms; fall back to the clock.
            buf[0] = (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.subsec_nanos())
                .unwrap_or(7)
                % 251) as u8;
        }
        // Rejection sampling keeps the distribution uniform.
        if usize::from(buf[0]) < 248 {
            out.push(char::from(ALPHABET[usize::from(buf[0]) % ALPHABET.len()]));
        }
    }
    out
}

/// Ids, uuids, random bytes and the clock; counter-based in deterministic mode.
#[derive(Debug)]
pub(crate) struct Ids {
    deterministic: bool,
    counter: AtomicU64,
    clock_ms: AtomicI64,
    rng: SystemRandom,
}

/// 2025-01-01T00:00:00Z, where the deterministic clock starts.
pub(crate) const DETERMINISTIC_EPOCH_MS: i64 = 1_735_689_600_000;

impl Ids {
    fn new(deterministic: bool) -> Self {
        Ids {
            deterministic,
            counter: AtomicU64::new(0),
            clock_ms: AtomicI64::new(DETERMINISTIC_EPOCH_MS),
            rng: SystemRandom::new(),
        }
    }

    /// A uuid4-shaped string; `00000000-0000-4000-8000-00000000000N` in deterministic mode.
    pub fn uuid(&self) -> String {
        let b = self.bytes(16);
        if self.deterministic {
            let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
            return format!("00000000-0000-4000-8000-{n:012x}");
        }
        let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
        format!(
            "{}-{}-4{}-{:x}{}-{}",
            &h[0..8],
            &h[8..12],
            &h[13..16],
            8 + (b[8] & 3),
            &h[17..20],
            &h[20..32]
        )
    }

    /// `n` random bytes (a counter-seeded SHA-256 stream in deterministic mode).
    pub fn bytes(&self, n: usize) -> Vec<u8> {
        if self.deterministic {
            let mut out = Vec::with_capacity(n);
            let seed = self.counter.load(Ordering::SeqCst);
            let mut i = 0u64;
            while out.len() < n {
                let d = ring::digest::digest(
                    &ring::digest::SHA256,
                    format!("midscript-mock/{seed}/{i}").as_bytes(),
                );
                out.extend_from_slice(d.as_ref());
                i += 1;
            }
            out.truncate(n);
            return out;
        }
        let mut out = vec![0u8; n];
        let _ = self.rng.fill(&mut out);
        out
    }

    /// A fresh secret token (64 alphanumerics; counter-based in deterministic mode).
    pub fn token(&self) -> String {
        if self.deterministic {
            let n = self.counter.fetch_add(1, Ordering::SeqCst) + 1;
            return format!("mocktoken{n:055}");
        }
        random_alnum(64)
    }

    /// Milliseconds since the epoch. Deterministic mode: starts at 2025-01-01T00:00:00Z and
    /// advances one second per reading.
    pub fn now_ms(&self) -> i64 {
        if self.deterministic {
            return self.clock_ms.fetch_add(1000, Ordering::SeqCst);
        }
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_millis() as i64)
            .unwrap_or(0)
    }

    /// A uniformly random duration in `[min, max]` (always `min` in deterministic mode).
    pub fn duration_between(&self, min: Duration, max: Duration) -> Duration {
        if self.deterministic || max <= min {
            return min;
        }
        let b = self.bytes(8);
        let mut a = [0u8; 8];
        a.copy_from_slice(&b);
        let span = (max - min).as_millis().max(1) as u64;
        min + Duration::from_millis(u64::from_le_bytes(a) % (span + 1))
    }
}

/// A token minted by `auth.generate_token` or as a `reconnect_token`.
#[derive(Debug, Clone)]
pub(crate) struct TokenRec {
    pub username: String,
    pub expires_at: tokio::time::Instant,
    pub single_use: bool,
}

/// Server-wide state.
pub(crate) struct Shared {
    pub config: MockConfig,
    pub tls: Option<TlsMaterial>,
    pub transcript: TranscriptLog,
    pub ids: Ids,
    pub users: Mutex<Vec<MockUser>>,
    pub keys: Mutex<Vec<MockApiKey>>,
    pub tokens: Mutex<HashMap<String, TokenRec>>,
    /// SCRAM server credentials per full key string (PBKDF2 runs once per key).
    pub scram: Mutex<HashMap<String, super::scram::Creds>>,
    pub jobs: jobs::JobStore,
    pub apps: apps::AppStore,
    pub pools: super::pools::PoolStore,
    pub fs: super::filesystem::FsStore,
    pub rate: Mutex<RateLimiter>,
    pub conns: Mutex<BTreeMap<u64, Arc<Conn>>>,
    pub alerts: Mutex<Vec<Value>>,
    next_conn: AtomicU64,
    /// `/api/boot_id`.
    pub boot_id: String,
    /// When the server started (for `system.info` uptime).
    pub started: tokio::time::Instant,
    /// Start time in ms since the epoch.
    pub started_ms: i64,
    /// Where the injected faults stand, and the login count.
    pub faults: FaultState,
}

/// Where the injected faults ([`super::MockFaults`]) stand.
#[derive(Debug, Default)]
pub(crate) struct FaultState {
    /// Client messages so far (all connections).
    pub messages: AtomicU64,
    /// The mid-job fault has fired.
    pub mid_job_fired: std::sync::atomic::AtomicBool,
    /// Wakes the accept loop to restart.
    pub restart: tokio::sync::Notify,
    /// Successful logins.
    pub logins: AtomicU64,
}

/// What a client message does under the injected faults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MessageFault {
    /// Handle it.
    None,
    /// Close its connection with 1011.
    Close1011,
    /// Freeze its connection.
    Freeze,
    /// Restart the server.
    Restart,
}

impl Shared {
    /// Count one client message and say which fault, if any, it triggers.
    pub fn count_message(&self) -> MessageFault {
        let n = self.faults.messages.fetch_add(1, Ordering::SeqCst) + 1;
        let f = &self.config.faults;
        if f.close_1011_at == Some(n) {
            MessageFault::Close1011
        } else if f.freeze_at == Some(n) {
            MessageFault::Freeze
        } else if f.restart_at == Some(n) {
            MessageFault::Restart
        } else {
            MessageFault::None
        }
    }
}

impl Shared {
    pub fn new(config: MockConfig, tls: Option<TlsMaterial>) -> Self {
        let ids = Ids::new(config.deterministic);
        let boot_id = ids.uuid();
        let started_ms = ids.now_ms();
        let apps = apps::AppStore::new(&config);
        Shared {
            users: Mutex::new(config.users.clone()),
            keys: Mutex::new(config.api_keys.clone()),
            tokens: Mutex::new(HashMap::new()),
            scram: Mutex::new(HashMap::new()),
            jobs: jobs::JobStore::default(),
            apps,
            pools: super::pools::PoolStore::default(),
            fs: super::filesystem::FsStore::new(started_ms),
            rate: Mutex::new(RateLimiter::default()),
            conns: Mutex::new(BTreeMap::new()),
            alerts: Mutex::new(super::system::alert_backlog(
                config.alert_backlog_bytes,
                started_ms,
            )),
            next_conn: AtomicU64::new(1),
            transcript: TranscriptLog::new(config.record_transcript),
            boot_id,
            started: tokio::time::Instant::now(),
            started_ms,
            faults: FaultState::default(),
            ids,
            config,
            tls,
        }
    }

    /// The next connection number.
    pub fn next_conn_id(&self) -> u64 {
        self.next_conn.fetch_add(1, Ordering::SeqCst)
    }

    /// Every live connection.
    pub fn connections(&self) -> Vec<Arc<Conn>> {
        lock(&self.conns).values().cloned().collect()
    }

    /// Send a plain-event `collection_update` to every connection subscribed to `name` (or `*`)
    /// that `visible` allows: one copy per connection (`docs/middleware.md` §5.1).
    pub fn publish(
        &self,
        update: crate::protocol::CollectionUpdate,
        visible: impl Fn(&Conn) -> bool,
    ) {
        let name = update.collection.clone();
        let note = Notification::CollectionUpdate(update);
        // Encoded once per framing, not once per connection.
        let mut wire: [Option<Value>; 2] = [None, None];
        for conn in self.connections() {
            if conn.subscribed_plain(&name) && visible(&conn) {
                let w =
                    wire[conn.framing as usize].get_or_insert_with(|| conn.framing.encode(&note));
                conn.send_notification_value(w);
            }
        }
    }
}

/// Per-connection switches set by `core.set_options`.
#[derive(Debug, Clone)]
pub(crate) struct ConnOptions {
    pub legacy_jobs: bool,
    pub private_methods: bool,
    pub py_exceptions: bool,
}

impl Default for ConnOptions {
    fn default() -> Self {
        ConnOptions {
            legacy_jobs: true,
            private_methods: false,
            py_exceptions: false,
        }
    }
}

/// What the writer task of a connection sends.
#[derive(Debug)]
pub(crate) enum Outbound {
    /// A text frame: the wire text and its redacted transcript form.
    Frame { wire: String, log: String },
    /// A close frame; the connection ends after it.
    Close { code: u16, reason: String },
    /// End the TCP connection without a close frame (an injected fault).
    Drop,
}

/// The wire dialect of a connection, chosen by its path (`docs/middleware.md` §1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// JSON-RPC 2.0 (`/api/current`, `/api/vX.Y.Z`).
    JsonRpc = 0,
    /// The legacy DDP-like protocol (`/websocket`, §1.4).
    Ddp = 1,
}

impl Framing {
    /// A notification as this framing sends it: `collection_update` / `notify_unsubscribed`,
    /// or the DDP `added|changed|removed` / `nosub` frames (§5.6).
    pub fn encode(self, note: &Notification) -> Value {
        match self {
            Framing::JsonRpc => note.to_value(),
            Framing::Ddp => super::ddp::notification(note),
        }
    }
}

/// One WebSocket connection.
pub(crate) struct Conn {
    pub id: u64,
    /// JSON-RPC or legacy DDP.
    pub framing: Framing,
    /// DDP only: `connect` was accepted (until then every message gets `failed`).
    pub ddp_connected: std::sync::atomic::AtomicBool,
    out: mpsc::UnboundedSender<Outbound>,
    /// TLS or trusted transport (`docs/middleware.md` §1.1 "secure transport").
    pub secure: bool,
    /// The connection runs over TLS (channel binding possible).
    pub tls: bool,
    pub ip: IpAddr,
    pub session: Mutex<Session>,
    pub options: Mutex<ConnOptions>,
    pub subs: Mutex<Vec<Sub>>,
    /// Calls in flight (running + queued), for the 20-call limit (`docs/middleware.md` §3.6).
    pub in_flight: AtomicUsize,
    /// 10 running calls at most.
    pub running: Arc<Semaphore>,
    /// Cancelled when the connection closes.
    pub gone: CancellationToken,
    /// Frozen by an injected fault: nothing is sent or read any more.
    pub frozen: std::sync::atomic::AtomicBool,
}

impl Conn {
    pub fn new(
        id: u64,
        framing: Framing,
        out: mpsc::UnboundedSender<Outbound>,
        secure: bool,
        tls: bool,
        ip: IpAddr,
    ) -> Self {
        Conn {
            id,
            framing,
            ddp_connected: Default::default(),
            out,
            secure,
            tls,
            ip,
            session: Mutex::new(Session::default()),
            options: Mutex::new(ConnOptions::default()),
            subs: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            running: Arc::new(Semaphore::new(10)),
            gone: CancellationToken::new(),
            frozen: Default::default(),
        }
    }

    /// Queue a frame; `log` is its redacted form for the transcript.
    pub fn send(&self, wire: String, log: String) {
        if self.frozen.load(Ordering::SeqCst) {
            return;
        }
        let _ = self.out.send(Outbound::Frame { wire, log });
    }

    /// End the TCP connection without a close frame (an injected fault).
    pub fn drop_abruptly(&self) {
        let _ = self.out.send(Outbound::Drop);
    }

    /// Queue a notification (secret-named keys redacted in the transcript).
    pub fn send_notification_value(&self, wire: &Value) {
        let mut log = wire.clone();
        redact::redact_keys(&mut log);
        self.send(wire.to_string(), log.to_string());
    }

    /// Queue a notification, in this connection's framing.
    pub fn notify(&self, note: &Notification) {
        self.send_notification_value(&self.framing.encode(note));
    }

    /// Close the connection with `code` and `reason`.
    pub fn close(&self, code: u16, reason: impl Into<String>) {
        let _ = self.out.send(Outbound::Close {
            code,
            reason: reason.into(),
        });
    }

    /// Is a user logged in?
    pub fn logged_in(&self) -> bool {
        lock(&self.session).user.is_some()
    }

    /// Has this connection a plain (non-source) subscription matching `name`?
    pub fn subscribed_plain(&self, name: &str) -> bool {
        lock(&self.subs)
            .iter()
            .any(|s| s.source.is_none() && (s.name == name || s.name == "*"))
    }
}

/// Fixed-window rate limiter keyed by `(method, ip)` (`docs/middleware.md` §2.5).
#[derive(Debug, Default)]
pub(crate) struct RateLimiter {
    windows: HashMap<(String, IpAddr), (tokio::time::Instant, u32)>,
}

/// The real cache holds at most 100 keys and counts as "full" at exactly 100.
const RATE_CACHE_MAX: usize = 100;

impl RateLimiter {
    /// Count one call; `true` when it is over the limit.
    pub fn over_limit(&mut self, method: &str, ip: IpAddr, max: u32, window: Duration) -> bool {
        let now = tokio::time::Instant::now();
        self.windows
            .retain(|_, (start, _)| now.duration_since(*start) < window);
        let key = (method.to_owned(), ip);
        if !self.windows.contains_key(&key) && self.windows.len() == RATE_CACHE_MAX {
            return true;
        }
        let entry = self.windows.entry(key).or_insert((now, 0));
        entry.1 = entry.1.saturating_add(1);
        entry.1 > max
    }
}
