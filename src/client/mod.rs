//! A tokio client for the TrueNAS middleware WebSocket API.
//!
//! It speaks both wire dialects behind one API (`docs/middleware.md` §1.2): JSON-RPC 2.0 on
//! `/api/current` (TrueNAS 25.04 and later), and the legacy DDP-like protocol on `/websocket`
//! (§1.4), the only one TrueNAS 24.10 "Electric Eel" has. The URL picks the dialect: a path
//! ending in `/websocket` is legacy, anything else JSON-RPC. With
//! [`ConnectOptions::legacy_fallback`] (what `--host` uses), an HTTP 404 on `/api/current`
//! retries once on `/websocket`. `call`, `job` and `subscribe` behave the same on both.
//!
//! ```no_run
//! # async fn demo() -> Result<(), midscript::client::Error> {
//! use midscript::client::{Client, ConnectOptions, Credentials, Secret};
//! let mut options = ConnectOptions::new("wss://nas.local/api/current");
//! options.credentials = Some(Credentials::ApiKey { username: Some("admin".into()), key: Secret::new("1-…") });
//! let client = Client::connect(options).await?;
//! let info = client.call("system.info", vec![]).await?;
//! let app = client.job("app.start", vec!["plex".into()], |p| println!("{:?}% {:?}", p.percent, p.description)).await?;
//! # let _ = (info, app); Ok(()) }
//! ```
//!
//! One [`Client`] is one session: one connection and one login, replaced by a new connection and
//! login when [`ConnectOptions::reconnect`] is set and the old one drops. Clone it freely
//! (clones share the session).

mod auth;
mod error;
mod events;
mod jobs;
mod link;
mod rpc;
mod scram;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use auth::{Credentials, LoginInfo, Mechanism, OtpPrompt, Secret, check_key_safety};
pub use error::{AuthError, Error, Result, ServerError};
pub use events::{Event, Subscription};
pub use jobs::{JobHandle, JobProgress};
pub use link::{ReconnectEvent, ReconnectObserver, ReconnectPolicy};
pub use rpc::{Direction, RpcOptions, Tracer};
pub use transport::{Dialect, Endpoint, Fingerprint, Trust};

use link::Link;
use rpc::Connection;
pub(crate) use transport::{TransportOptions, open as open_socket};

/// Everything needed to open a connection and log in.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `wss://HOST/api/current` (or `ws://` on a trusted network without API keys);
    /// `wss://HOST/websocket` for the legacy dialect of TrueNAS 24.10.
    pub url: String,
    /// Force a dialect; `None` (the default) picks it from the URL: legacy for a path ending
    /// in `/websocket`, JSON-RPC otherwise.
    pub dialect: Option<Dialect>,
    /// When the URL is `…/api/current` and the server answers its handshake with HTTP 404
    /// (TrueNAS 24.10 has no JSON-RPC endpoint, `docs/middleware.md` §0.1), connect once more to
    /// `/websocket` on the same host with the legacy dialect. Off by default; see
    /// [`ConnectOptions::for_host`].
    pub legacy_fallback: bool,
    /// How to check the server's certificate.
    pub trust: Trust,
    /// How to log in; `None` stays anonymous.
    pub credentials: Option<Credentials>,
    /// Send an API key itself (the API_KEY_PLAIN login) even when [`Trust::Insecure`] leaves
    /// the server unverified. Off by default: whoever sits in between would get the key. SCRAM
    /// (TrueNAS 26+, with a username) never sends it and is not affected.
    pub send_key_unverified: bool,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Per-call timeout, in-flight cap and keepalive.
    pub rpc: RpcOptions,
    /// Receives every frame, redacted, for transcripts.
    pub tracer: Option<Tracer>,
    /// Bind SCRAM API-key logins over `wss://` to the server's certificate (RFC 5929
    /// `tls-server-end-point`), as the official client does; default on. Turn it off only for
    /// servers from before binding existed (26.0.0-BETA.1/2). Logins over `ws://` are never
    /// bound.
    pub channel_binding: bool,
    /// Reconnect when the connection drops (log in again, subscribe again, carry on waiting
    /// for jobs); `None` (the default) ends everything with the connection.
    pub reconnect: Option<ReconnectPolicy>,
    /// Told when the connection drops and when it is back.
    pub on_reconnect: Option<ReconnectObserver>,
}

impl ConnectOptions {
    /// Defaults for `url`: system trust, no login, 10 s connect, 60 s calls, 20 in flight.
    pub fn new(url: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            dialect: None,
            legacy_fallback: false,
            trust: Trust::System,
            credentials: None,
            send_key_unverified: false,
            connect_timeout: Duration::from_secs(10),
            rpc: RpcOptions::default(),
            tracer: None,
            channel_binding: true,
            reconnect: None,
            on_reconnect: None,
        }
    }

    /// Defaults for `wss://HOST/api/current` with [`ConnectOptions::legacy_fallback`] on, so a
    /// TrueNAS 24.10 host ends up on its legacy `/websocket`. `host` may carry a port.
    pub fn for_host(host: &str) -> ConnectOptions {
        ConnectOptions {
            legacy_fallback: true,
            ..ConnectOptions::new(format!("wss://{host}/api/current"))
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &self.url)
            .field("dialect", &self.dialect)
            .field("legacy_fallback", &self.legacy_fallback)
            .field("trust", &self.trust)
            .field("credentials", &self.credentials)
            .field("channel_binding", &self.channel_binding)
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

/// A connection to the middleware. Cheap to clone; all clones share one socket and one login
/// (and, with [`ConnectOptions::reconnect`], whatever connection replaces it).
#[derive(Clone)]
pub struct Client {
    link: Arc<Link>,
    fingerprint: Option<Fingerprint>,
    login: Option<Arc<LoginInfo>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.link.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect and, when credentials are given, log in. An API key bound for a plain `ws://`
    /// non-loopback URL is refused before any connection is made (`docs/middleware.md` §1.5), on both
    /// dialects.
    ///
    /// On the legacy dialect the client first sends `connect` and waits for `connected`
    /// (`failed` gives a [`Error::Protocol`] naming the unsupported protocol version).
    ///
    /// A URL pinned to an API version (`…/api/v25.10.5`) that the server answers with HTTP 404
    /// is retried once on `/api/current` of the same host: releases do not serve every version
    /// one would expect (26.0.0-BETA.1–3 lack `v25.10.5`).
    pub async fn connect(options: ConnectOptions) -> Result<Client> {
        let first = Self::connect_to(&options).await;
        if let Err(Error::Handshake { status: 404, .. }) = &first
            && let Some(url) = Endpoint::parse(&options.url)?.current_fallback()
        {
            let retry = ConnectOptions {
                url,
                ..options.clone()
            };
            return Self::connect_to(&retry).await;
        }
        if let Err(Error::Handshake { status: 404, .. }) = &first
            && options.legacy_fallback
            && options.dialect != Some(Dialect::JsonRpc)
            && let Some(url) = Endpoint::parse(&options.url)?.legacy_fallback()
        {
            let retry = ConnectOptions {
                url,
                dialect: Some(Dialect::Legacy),
                legacy_fallback: false,
                ..options.clone()
            };
            return Self::connect_to(&retry).await;
        }
        first
    }

    async fn connect_to(options: &ConnectOptions) -> Result<Client> {
        let opened = Link::open(options).await?;
        Ok(Client {
            link: opened.link,
            fingerprint: opened.fingerprint,
            login: opened.login.map(Arc::new),
        })
    }

    /// The connection in use now.
    pub(crate) fn conn(&self) -> Arc<Connection> {
        self.link.current()
    }

    /// Log in with `credentials` (kept, to log in again after a reconnect).
    pub async fn login(&self, credentials: &Credentials) -> Result<LoginInfo> {
        self.link.login(credentials).await
    }

    /// How many times this client has logged in: 1 after a login, one more per reconnect.
    pub fn logins(&self) -> u64 {
        self.link.logins()
    }

    /// Call a method and return its result. Job methods return their job id here; use
    /// [`Client::job`] to wait for the outcome.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value> {
        self.link
            .call(method, params, None, false)
            .await?
            .into_value()
    }

    /// [`Client::call`], returning the result's JSON text as the server sent it instead of a
    /// parsed value: for a result that is only passed on (printed, saved), which then never
    /// takes the memory of a parsed value. (On the legacy dialect, the parsed result is
    /// serialized again.)
    pub async fn call_text(&self, method: &str, params: Vec<Value>) -> Result<String> {
        Ok(self
            .link
            .call(method, params, None, true)
            .await?
            .into_text())
    }

    /// [`Client::call`] with its own timeout.
    pub async fn call_with_timeout(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        self.link
            .call(method, params, Some(timeout), false)
            .await?
            .into_value()
    }

    /// The URL this client is connected to.
    pub fn url(&self) -> &str {
        &self.link.url
    }

    /// The wire dialect of this connection: [`Dialect::Legacy`] on a `/websocket` URL
    /// (TrueNAS 24.10, or after [`ConnectOptions::legacy_fallback`]), else JSON-RPC.
    pub fn dialect(&self) -> Dialect {
        self.link.dialect
    }

    /// The SHA-256 fingerprint of the server's certificate (`wss://` only).
    pub fn fingerprint(&self) -> Option<Fingerprint> {
        self.fingerprint
    }

    /// How this client logged in, if it did during [`Client::connect`].
    pub fn login_info(&self) -> Option<&LoginInfo> {
        self.login.as_deref()
    }

    /// Is the session logged in?
    pub fn is_authenticated(&self) -> bool {
        self.conn().is_authenticated()
    }

    /// Is the connection still open?
    pub fn is_open(&self) -> bool {
        self.conn().is_open()
    }

    /// Close the connection (a normal 1000 close); no reconnect follows.
    pub async fn close(&self) {
        self.link.close().await;
    }
}
