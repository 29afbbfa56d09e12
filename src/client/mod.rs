//! A tokio client for the TrueNAS middleware JSON-RPC 2.0 WebSocket API.
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
//! One [`Client`] is one connection and one login; clone it freely (handles share the socket).

mod auth;
mod error;
mod events;
mod jobs;
mod rpc;
mod transport;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

pub use auth::{Credentials, LoginInfo, Mechanism, OtpPrompt, Secret, check_key_safety};
pub use error::{AuthError, Error, Result, ServerError};
pub use events::{Event, Subscription};
pub use jobs::{JobHandle, JobProgress};
pub use rpc::{Direction, RpcOptions, Tracer};
pub use transport::{Endpoint, Fingerprint, Trust};

use rpc::Connection;
use transport::TransportOptions;

/// Everything needed to open a connection and log in.
#[derive(Clone)]
pub struct ConnectOptions {
    /// `wss://HOST/api/current` (or `ws://` on a trusted network without API keys).
    pub url: String,
    /// How to check the server's certificate.
    pub trust: Trust,
    /// How to log in; `None` stays anonymous.
    pub credentials: Option<Credentials>,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// Per-call timeout, in-flight cap and keepalive.
    pub rpc: RpcOptions,
    /// Receives every frame, redacted, for transcripts.
    pub tracer: Option<Tracer>,
}

impl ConnectOptions {
    /// Defaults for `url`: system trust, no login, 10 s connect, 60 s calls, 20 in flight.
    pub fn new(url: impl Into<String>) -> ConnectOptions {
        ConnectOptions {
            url: url.into(),
            trust: Trust::System,
            credentials: None,
            connect_timeout: Duration::from_secs(10),
            rpc: RpcOptions::default(),
            tracer: None,
        }
    }
}

impl std::fmt::Debug for ConnectOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConnectOptions")
            .field("url", &self.url)
            .field("trust", &self.trust)
            .field("credentials", &self.credentials)
            .finish_non_exhaustive()
    }
}

/// A connection to the middleware. Cheap to clone; all clones share one socket and one login.
#[derive(Clone)]
pub struct Client {
    conn: Arc<Connection>,
    fingerprint: Option<Fingerprint>,
    login: Option<Arc<LoginInfo>>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("url", &self.conn.url)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// Connect and, when credentials are given, log in. An API key bound for a plain `ws://`
    /// non-loopback URL is refused before any connection is made (`protocol.md` §1.5).
    pub async fn connect(options: ConnectOptions) -> Result<Client> {
        let endpoint = Endpoint::parse(&options.url)?;
        check_key_safety(&endpoint, options.credentials.as_ref())?;
        if endpoint.is_legacy() {
            return Err(Error::InvalidUrl {
                url: options.url.clone(),
                reason: "the legacy /websocket (DDP) dialect of TrueNAS 24.10 is not supported yet; servers from 25.04 on serve /api/current".into(),
            });
        }
        let transport = TransportOptions {
            trust: options.trust.clone(),
            connect_timeout: options.connect_timeout,
            ..Default::default()
        };
        let opened = transport::open(&endpoint, &transport).await?;
        let conn = Connection::start(
            options.url.clone(),
            opened.socket,
            options.rpc.clone(),
            options.tracer.clone(),
        );
        let mut client = Client {
            conn,
            fingerprint: opened.fingerprint,
            login: None,
        };
        if let Some(creds) = &options.credentials {
            let info = client.login(creds).await;
            match info {
                Ok(info) => client.login = Some(Arc::new(info)),
                Err(e) => {
                    client.close().await;
                    return Err(e);
                }
            }
        }
        Ok(client)
    }

    /// Call a method and return its result. Job methods return their job id here; use
    /// [`Client::job`] to wait for the outcome.
    pub async fn call(&self, method: &str, params: Vec<Value>) -> Result<Value> {
        self.conn.call(method, params, None).await
    }

    /// [`Client::call`] with its own timeout.
    pub async fn call_with_timeout(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Duration,
    ) -> Result<Value> {
        self.conn.call(method, params, Some(timeout)).await
    }

    /// The URL this client is connected to.
    pub fn url(&self) -> &str {
        &self.conn.url
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
        self.conn.is_authenticated()
    }

    /// Is the connection still open?
    pub fn is_open(&self) -> bool {
        self.conn.is_open()
    }

    /// Close the connection (a normal 1000 close).
    pub async fn close(&self) {
        self.conn.close().await;
    }

    fn conn_error(&self) -> Error {
        Error::closed(None, "", &self.conn.url)
    }
}
