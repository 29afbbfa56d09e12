//! Staying connected. A [`Link`] is what every clone of a [`super::Client`] shares: the
//! current [`Connection`], the event router (subscribers and job waiters), the credentials and
//! the login count. With a [`ReconnectPolicy`], a supervisor task watches the connection; when
//! it drops, the supervisor
//!
//! 1. reconnects with exponential backoff and jitter (never two clients of a restarted server
//!    in lock step), giving up after [`ReconnectPolicy::give_up_after`];
//! 2. logs in again with the same credentials, within a budget of
//!    [`ReconnectPolicy::logins_per_minute`] (the middleware allows 20 anonymous calls per
//!    minute per method and address, and every login is one or more of them: a login storm
//!    would lock the client out);
//! 3. subscribes again to every live subscription (the server forgets them with the socket);
//! 4. brings job waiters up to date with one `core.get_jobs` for the jobs they wait on (job
//!    events sent while disconnected are lost, the jobs themselves run on).
//!
//! Calls wait while a reconnect is under way. A call that was in flight when the connection
//! dropped is sent again only when it is a read ([`crate::catalog::is_read_method`]);
//! anything else fails with [`Error::OutcomeUnknown`]: the server may have carried it out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tokio::sync::watch;

use super::ConnectOptions;
use super::auth::{Credentials, LoginContext, LoginInfo, check_key_safety};
use super::error::{Error, Result};
use super::events::Router;
use super::jobs::AppJobLocks;
use super::rpc::{CallError, Connection, Payload, Setup};
use super::transport::{self, Dialect, Endpoint, Fingerprint, TransportOptions, Trust};

/// How to reconnect after the connection drops.
#[derive(Debug, Clone, PartialEq)]
pub struct ReconnectPolicy {
    /// The wait before the first attempt; it doubles after each failed attempt up to
    /// `max_delay`, and each wait is drawn at random from its upper half (jitter).
    pub first_delay: Duration,
    /// The longest wait between two attempts.
    pub max_delay: Duration,
    /// Give up when no connection could be re-established for this long.
    pub give_up_after: Duration,
    /// Logins allowed in any 60 s, the first one included. Each login costs one to three
    /// rate-limited calls on the server (20 per minute per method), so the default of 5 stays
    /// well clear of it.
    pub logins_per_minute: u32,
}

impl Default for ReconnectPolicy {
    /// 250 ms doubling to 5 s, give up after 60 s, 5 logins a minute.
    fn default() -> Self {
        ReconnectPolicy {
            first_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(5),
            give_up_after: Duration::from_secs(60),
            logins_per_minute: 5,
        }
    }
}

/// What the reconnect supervisor reports to a [`ReconnectObserver`].
#[derive(Debug)]
pub enum ReconnectEvent<'a> {
    /// The connection dropped; reconnecting starts.
    Lost {
        /// Why it dropped.
        cause: &'a str,
    },
    /// A new connection is up, logged in and subscribed again.
    Reconnected {
        /// Attempts it took.
        attempts: u32,
        /// Logins on this client so far, the first one included.
        logins: u64,
    },
    /// Reconnecting gave up; every waiting call, subscriber and job waiter gets this error.
    GaveUp {
        /// Why.
        error: &'a Error,
    },
}

/// Told about connection losses and reconnects (the CLI prints them on stderr).
pub type ReconnectObserver = Arc<dyn Fn(&ReconnectEvent<'_>) + Send + Sync>;

/// The state of a link, watched by calls that wait for a usable connection.
#[derive(Debug, Clone)]
enum State {
    /// This generation of connection is (as far as anyone knows) open.
    Up(u64),
    /// The connection dropped; a new one is being made.
    Reconnecting,
    /// No more connections: closed by the user, or reconnecting gave up.
    Gone(Option<Arc<str>>),
}

/// Everything the clones of one client share.
pub(crate) struct Link {
    /// The URL connected to (after a legacy fallback, the `/websocket` one).
    pub(crate) url: String,
    /// The dialect spoken.
    pub(crate) dialect: Dialect,
    options: ConnectOptions,
    /// The trust for reconnects: as configured, except that an unverified first connection
    /// pins the certificate it saw, so no other certificate is accepted mid-session.
    reconnect_trust: Trust,
    current: Mutex<Arc<Connection>>,
    pub(crate) router: Arc<Mutex<Router>>,
    /// Serialises the one-time `core.get_jobs` subscription.
    pub(crate) jobs_gate: tokio::sync::Mutex<()>,
    /// One lock per app: [`super::Client::job`] runs one app job at a time per app, across
    /// the clones of a client and across reconnects.
    pub(crate) app_jobs: AppJobLocks,
    credentials: Mutex<Option<Credentials>>,
    logins: AtomicU64,
    login_times: Mutex<VecDeque<Instant>>,
    state: watch::Sender<State>,
    closing: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// What opening a link found out.
pub(crate) struct Opened {
    pub(crate) link: Arc<Link>,
    pub(crate) fingerprint: Option<Fingerprint>,
    pub(crate) login: Option<LoginInfo>,
}

impl Link {
    /// Connect to `options.url`, do the legacy handshake when needed, log in with
    /// `options.credentials`, and start the reconnect supervisor when `options.reconnect` is set.
    pub(crate) async fn open(options: &ConnectOptions) -> Result<Opened> {
        let endpoint = Endpoint::parse(&options.url)?;
        check_key_safety(&endpoint, options.credentials.as_ref())?;
        let dialect = options.dialect.unwrap_or_else(|| endpoint.dialect());
        let router = Arc::new(Mutex::new(Router::default()));
        let reconnects = options.reconnect.is_some();
        let (conn, fingerprint) = connect_once(
            options,
            &endpoint,
            dialect,
            &options.trust,
            router.clone(),
            !reconnects,
        )
        .await?;
        let reconnect_trust = match (&options.trust, fingerprint) {
            (Trust::Insecure, Some(seen)) => Trust::Pinned(seen),
            (trust, _) => trust.clone(),
        };
        let link = Arc::new(Link {
            url: options.url.clone(),
            dialect,
            options: options.clone(),
            reconnect_trust,
            current: Mutex::new(conn.clone()),
            router,
            jobs_gate: tokio::sync::Mutex::new(()),
            app_jobs: AppJobLocks::default(),
            credentials: Mutex::new(None),
            logins: AtomicU64::new(0),
            login_times: Mutex::new(VecDeque::new()),
            state: watch::channel(State::Up(0)).0,
            closing: AtomicBool::new(false),
        });
        let mut login = None;
        if let Some(creds) = &options.credentials {
            match link.login(creds).await {
                Ok(info) => login = Some(info),
                Err(e) => {
                    link.close().await;
                    return Err(e);
                }
            }
        }
        if reconnects {
            tokio::spawn(supervise(Arc::downgrade(&link), conn.ended_watch()));
        }
        Ok(Opened {
            link,
            fingerprint,
            login,
        })
    }

    /// The connection in use now.
    pub(crate) fn current(&self) -> Arc<Connection> {
        lock(&self.current).clone()
    }

    /// Does this link reconnect?
    pub(crate) fn reconnects(&self) -> bool {
        self.options.reconnect.is_some()
    }

    /// Logins so far (the first one included).
    pub(crate) fn logins(&self) -> u64 {
        self.logins.load(Ordering::SeqCst)
    }

    /// Log in on the current connection; the credentials are kept for logging in again after
    /// a reconnect.
    pub(crate) async fn login(&self, credentials: &Credentials) -> Result<LoginInfo> {
        let conn = self.current();
        let info = self.login_on(&conn, credentials).await?;
        *lock(&self.credentials) = Some(credentials.clone());
        Ok(info)
    }

    async fn login_on(&self, conn: &Connection, credentials: &Credentials) -> Result<LoginInfo> {
        lock(&self.login_times).push_back(Instant::now());
        self.logins.fetch_add(1, Ordering::SeqCst);
        conn.login(credentials).await
    }

    /// How long until the login budget allows one more login (`None`: now).
    fn login_wait(&self, per_minute: u32) -> Option<Duration> {
        let window = Duration::from_secs(60);
        let mut times = lock(&self.login_times);
        while times.front().is_some_and(|t| t.elapsed() >= window) {
            times.pop_front();
        }
        if times.len() < per_minute.max(1) as usize {
            return None;
        }
        times.front().map(|t| window.saturating_sub(t.elapsed()))
    }

    /// A connection to send on, and its generation: the current one, unless it is
    /// `not_generation` (which failed the caller), in which case wait for the next one.
    pub(crate) async fn usable(
        &self,
        not_generation: Option<u64>,
    ) -> Result<(Arc<Connection>, u64)> {
        let mut rx = self.state.subscribe();
        loop {
            let state = rx.borrow_and_update().clone();
            match state {
                State::Up(g) if Some(g) != not_generation => return Ok((self.current(), g)),
                State::Gone(detail) => return Err(self.gone_error(detail.as_deref())),
                _ => {}
            }
            if rx.changed().await.is_err() {
                return Err(self.gone_error(None));
            }
        }
    }

    fn gone_error(&self, detail: Option<&str>) -> Error {
        match detail {
            Some(d) => Error::ReconnectFailed {
                url: self.url.clone(),
                detail: d.to_owned(),
            },
            None => self.current().closed_error(),
        }
    }

    /// Call `method`: through a reconnect when the connection drops, sending it again only
    /// when it never left or is a read. With `text`, the result comes as its JSON text where
    /// the dialect allows.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Option<Duration>,
        text: bool,
    ) -> Result<Payload> {
        if !self.reconnects() {
            return self
                .current()
                .call_tracked(method, params, timeout, text)
                .await
                .map_err(CallError::into_error);
        }
        let mut failed_generation = None;
        let mut resent_reads = 0;
        loop {
            let (conn, generation) = self.usable(failed_generation).await?;
            match conn
                .call_tracked(method, params.clone(), timeout, text)
                .await
            {
                Ok(v) => return Ok(v),
                Err(CallError::Failed(e)) => return Err(e),
                Err(CallError::NotSent(_)) => failed_generation = Some(generation),
                Err(CallError::Lost(e)) => {
                    if resent_reads < 3 && crate::catalog::is_read_method(method) {
                        resent_reads += 1;
                        failed_generation = Some(generation);
                    } else {
                        return Err(Error::OutcomeUnknown {
                            method: method.to_owned(),
                            cause: e.to_string(),
                        });
                    }
                }
            }
        }
    }

    /// The event router (subscribers and job waiters), shared by every connection of the link.
    pub(crate) fn router(&self) -> MutexGuard<'_, Router> {
        lock(&self.router)
    }

    /// Make the server subscription for `name`, which was just added to the router. When the
    /// connection drops meanwhile, the reconnect makes it (it subscribes every router entry).
    pub(crate) async fn subscribe(&self, name: &str) -> Result<()> {
        let conn = if self.reconnects() {
            self.usable(None).await?.0
        } else {
            self.current()
        };
        match conn.subscribe(name).await {
            Ok(id) => {
                lock(&self.router).set_server_id(name, id);
                Ok(())
            }
            Err(e)
                if self.reconnects()
                    && worth_retrying(&e)
                    && !self.closing.load(Ordering::SeqCst) =>
            {
                Ok(())
            }
            Err(e) => {
                lock(&self.router).remove(name);
                Err(e)
            }
        }
    }

    /// End the server subscription `server_id` on the current connection, if it is open.
    pub(crate) async fn unsubscribe(&self, server_id: &str) -> Result<()> {
        let conn = self.current();
        if conn.is_open() {
            conn.unsubscribe(server_id).await?;
        }
        Ok(())
    }

    /// The error for a job waiter whose watch ended: the connection ended, for good.
    pub(crate) fn ended_error(&self) -> Error {
        match &*self.state.borrow() {
            State::Gone(detail) => self.gone_error(detail.as_deref()),
            _ => self.current().closed_error(),
        }
    }

    /// Close the connection for good (a normal 1000 close); no reconnect follows.
    pub(crate) async fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        let conn = self.current();
        conn.close().await;
        if self.reconnects() {
            self.state.send_replace(State::Gone(None));
            let err = || conn.closed_error();
            lock(&self.router).close_all(err);
        }
    }

    fn observe(&self, event: &ReconnectEvent<'_>) {
        if let Some(o) = &self.options.on_reconnect {
            o(event);
        }
    }

    /// Reconnect after the connection of `generation` dropped: attempts with backoff until one
    /// succeeds, one fails for good (a refused login, a different certificate) or time is up.
    async fn reconnect(
        &self,
        generation: u64,
        policy: &ReconnectPolicy,
    ) -> Result<Arc<Connection>> {
        let started = Instant::now();
        let deadline = started + policy.give_up_after;
        let mut delay = policy.first_delay;
        let mut attempts = 0u32;
        let mut last: Option<Error> = None;
        loop {
            let wait = jitter(delay);
            let gave_up = |last: Option<Error>, attempts: u32| Error::ReconnectFailed {
                url: self.url.clone(),
                detail: format!(
                    "{} attempt(s) in {:.1}s, the last: {}",
                    attempts,
                    started.elapsed().as_secs_f64(),
                    last.map_or_else(|| "none".to_owned(), |e| e.to_string())
                ),
            };
            if Instant::now() + wait > deadline || self.closing.load(Ordering::SeqCst) {
                return Err(gave_up(last, attempts));
            }
            tokio::time::sleep(wait).await;
            delay = (delay * 2).min(policy.max_delay);
            attempts += 1;
            match self
                .attempt(generation + 1, attempts, policy, deadline)
                .await
            {
                Ok(conn) => return Ok(conn),
                Err(e) if worth_retrying(&e) => last = Some(e),
                Err(e) => return Err(e),
            }
        }
    }

    /// One reconnect attempt: connect, log in, subscribe again, switch over, update job waiters.
    async fn attempt(
        &self,
        generation: u64,
        attempts: u32,
        policy: &ReconnectPolicy,
        deadline: Instant,
    ) -> Result<Arc<Connection>> {
        let endpoint = Endpoint::parse(&self.url)?;
        let (conn, _) = connect_once(
            &self.options,
            &endpoint,
            self.dialect,
            &self.reconnect_trust,
            self.router.clone(),
            false,
        )
        .await?;
        let credentials = lock(&self.credentials).clone();
        if let Some(creds) = credentials {
            if let Some(wait) = self.login_wait(policy.logins_per_minute) {
                if Instant::now() + wait > deadline {
                    conn.close().await;
                    return Err(Error::ReconnectFailed {
                        url: self.url.clone(),
                        detail: format!(
                            "{} logins in the last minute already (the budget, to stay clear of the server's login rate limit)",
                            policy.logins_per_minute
                        ),
                    });
                }
                tokio::time::sleep(wait).await;
            }
            if let Err(e) = self.login_on(&conn, &creds).await {
                conn.close().await;
                return Err(e);
            }
        }
        let names = lock(&self.router).all_names();
        for name in names {
            match conn.subscribe(&name).await {
                Ok(id) => lock(&self.router).set_server_id(&name, id),
                Err(e) if worth_retrying(&e) => {
                    conn.close().await;
                    return Err(e);
                }
                // The server no longer offers it: its subscribers learn why.
                Err(e) => lock(&self.router).end(&name, e),
            }
        }
        if self.closing.load(Ordering::SeqCst) {
            conn.close().await;
            return Err(self.current().closed_error());
        }
        *lock(&self.current) = conn.clone();
        // Told before any waiting call goes on, so the report comes before their results.
        self.observe(&ReconnectEvent::Reconnected {
            attempts,
            logins: self.logins(),
        });
        self.state.send_replace(State::Up(generation));
        self.update_job_waiters(&conn).await;
        Ok(conn)
    }

    /// Job events sent while disconnected are lost: fetch the jobs waited on once, so a job
    /// that ended meanwhile is seen at once (the waiters poll anyway, later).
    async fn update_job_waiters(&self, conn: &Connection) {
        let ids = lock(&self.router).jobs.watched();
        if ids.is_empty() {
            return;
        }
        let filters = json!([["id", "in", ids]]);
        let options = json!({"extra": {"raw_result": true}});
        if let Ok(Value::Array(jobs)) = conn
            .call("core.get_jobs", vec![filters, options], None)
            .await
        {
            let mut router = lock(&self.router);
            for job in jobs {
                router.jobs.record(job);
            }
        }
    }

    /// Reconnecting gave up (or the link was closed): fail everything that waits.
    fn give_up(&self, error: Error) {
        if !self.closing.load(Ordering::SeqCst) {
            self.observe(&ReconnectEvent::GaveUp { error: &error });
        }
        let text = error.to_string();
        let detail = match &error {
            Error::ReconnectFailed { detail, .. } => detail.clone(),
            other => other.to_string(),
        };
        self.state.send_replace(State::Gone(Some(detail.into())));
        lock(&self.router).close_all(|| Error::ReconnectFailed {
            url: self.url.clone(),
            detail: text.clone(),
        });
    }
}

/// Is this failure of a reconnect attempt one that a later attempt may not have?
fn worth_retrying(e: &Error) -> bool {
    match e {
        Error::Tls { .. } | Error::InvalidUrl { .. } => false,
        Error::Timeout { .. } => true,
        e => e.is_connection(),
    }
}

/// A wait drawn from the upper half of `delay`, so clients that lost one server do not come
/// back in lock step.
fn jitter(delay: Duration) -> Duration {
    let mut bytes = [0u8; 4];
    let r = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes)
        .map(|_| u32::from_le_bytes(bytes))
        .unwrap_or(u32::MAX / 2);
    let half = delay / 2;
    half + half.mul_f64(f64::from(r) / f64::from(u32::MAX))
}

/// Open one connection (and do the legacy handshake). Its logins bind to the certificate it
/// saw (each connection of a link has its own TLS session); `trust` decides which certificates
/// it accepts, and the API-key rule follows the trust the user configured (`options.trust`),
/// so pinning an unverified certificate for reconnects does not make it verified.
async fn connect_once(
    options: &ConnectOptions,
    endpoint: &Endpoint,
    dialect: Dialect,
    trust: &Trust,
    router: Arc<Mutex<Router>>,
    close_subscribers_on_end: bool,
) -> Result<(Arc<Connection>, Option<Fingerprint>)> {
    let transport = TransportOptions {
        trust: trust.clone(),
        connect_timeout: options.connect_timeout,
        ..Default::default()
    };
    let opened = transport::open(endpoint, &transport).await?;
    let setup = Setup {
        url: endpoint.url.clone(),
        dialect,
        options: options.rpc.clone(),
        tracer: options.tracer.clone(),
        login: LoginContext {
            tls_certificate: opened.certificate.map(Arc::from),
            channel_binding: options.channel_binding,
            refuse_plain_key: options.trust == Trust::Insecure && !options.send_key_unverified,
        },
    };
    let conn = Connection::start(setup, opened.socket, router, close_subscribers_on_end);
    if dialect == Dialect::Legacy
        && let Err(e) = conn.handshake(options.connect_timeout).await
    {
        conn.close().await;
        return Err(e);
    }
    Ok((conn, opened.fingerprint))
}

/// Watch the connection; when it drops, reconnect (unless the link was closed).
async fn supervise(link: Weak<Link>, mut ended: watch::Receiver<bool>) {
    loop {
        while !*ended.borrow_and_update() {
            if ended.changed().await.is_err() {
                return; // the connection was dropped with the link
            }
        }
        let Some(link) = link.upgrade() else { return };
        if link.closing.load(Ordering::SeqCst) {
            return;
        }
        let Some(policy) = link.options.reconnect.clone() else {
            return;
        };
        let generation = match *link.state.borrow() {
            State::Up(g) => g,
            _ => return,
        };
        link.state.send_replace(State::Reconnecting);
        let cause = link.current().closed_error().to_string();
        link.observe(&ReconnectEvent::Lost { cause: &cause });
        match link.reconnect(generation, &policy).await {
            Ok(conn) => ended = conn.ended_watch(),
            Err(e) => return link.give_up(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jitter_stays_in_the_upper_half() {
        for _ in 0..100 {
            let d = jitter(Duration::from_millis(1000));
            assert!(d >= Duration::from_millis(500) && d <= Duration::from_millis(1000));
        }
    }

    #[test]
    fn only_connection_failures_are_retried() {
        assert!(worth_retrying(&Error::closed(None, "", "u")));
        assert!(worth_retrying(&Error::Connect {
            url: "u".into(),
            source: std::io::Error::from(std::io::ErrorKind::ConnectionRefused)
        }));
        assert!(!worth_retrying(&Error::Tls {
            message: "x".into(),
            fingerprint: None
        }));
        assert!(!worth_retrying(&Error::from(
            super::super::AuthError::Rejected
        )));
    }
}
