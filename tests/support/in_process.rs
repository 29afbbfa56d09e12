//! Helpers for the tests that drive the client library against an in-process mock
//! (`tests/traffic.rs`, `tests/legacy.rs`): mock set-up, credentials, connecting on either
//! wire dialect, and the transcript checks.

use midscript::client::{Client, ConnectOptions, Credentials, Dialect, Error, Secret, Trust};
use midscript::mock::{MockConfig, MockServer, ServerVersion};
use serde_json::{Value, json};

/// Snapshot settings that change nothing in the value: snapshots are named as given, without
/// the module in front. For snapshots whose every byte is deterministic (the mock's fixed app
/// ports, such as a portal on 127.0.0.1:8081, included).
pub fn plain_settings() -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.set_prepend_module_to_snapshot(false);
    s
}

/// [`plain_settings`] that also hide what is random by design in traffic (SCRAM nonces and
/// salts, listening ports) and nothing else. SCRAM proofs and server signatures never reach a
/// transcript (they are `********` there).
pub fn settings() -> insta::Settings {
    let mut s = plain_settings();
    // SCRAM messages (`rfc_str`): comma-separated `k=v` attributes, RFC 5802.
    s.add_filter(r#"([,"]r=)[A-Za-z0-9+/=]+"#, "${1}[nonce]");
    s.add_filter(r#"([,"]s=)[A-Za-z0-9+/=]+"#, "${1}[salt]");
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    s
}

/// A deterministic test mock (`MockConfig::for_tests`), edited by `edit`.
pub async fn mock(edit: impl FnOnce(&mut MockConfig)) -> MockServer {
    let mut config = MockConfig::for_tests();
    edit(&mut config);
    MockServer::start(config).await.expect("mock starts")
}

/// The mock's first user, with its password.
pub fn password(server: &MockServer) -> Credentials {
    let u = &server.config().users[0];
    Credentials::Password {
        username: u.username.clone(),
        password: Secret::new(u.password.clone()),
        otp: None,
        otp_prompt: None,
    }
}

/// The mock's first API key, with or without its owner's name.
pub fn api_key(server: &MockServer, with_username: bool) -> Credentials {
    let k = &server.config().api_keys[0];
    Credentials::ApiKey {
        username: with_username.then(|| k.owner.clone()),
        key: Secret::new(k.key.clone()),
    }
}

/// Connect to `url` on `server`, pinned to its certificate when it has one.
pub async fn connect_to(
    url: String,
    server: &MockServer,
    credentials: Option<Credentials>,
) -> Result<Client, Error> {
    let mut options = ConnectOptions::new(url);
    options.credentials = credentials;
    if let Some(fp) = server.fingerprint() {
        options.trust = Trust::Pinned(fp.parse().expect("the mock's fingerprint parses"));
    }
    Client::connect(options).await
}

/// Connect to the server's own URL.
pub async fn connect(
    server: &MockServer,
    credentials: Option<Credentials>,
) -> Result<Client, Error> {
    connect_to(server.url(), server, credentials).await
}

/// The wire dialect a scenario runs on: the same scenario, once per dialect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wire {
    /// JSON-RPC 2.0 on `/api/current`, against the test mock's own version (25.10).
    JsonRpc,
    /// The DDP-style dialect on `/websocket`, against the mock's 24.10 profile.
    Legacy,
}

impl Wire {
    /// A deterministic test mock for this dialect (24.10 for the legacy one), edited by `edit`.
    pub async fn mock(self, edit: impl FnOnce(&mut MockConfig)) -> MockServer {
        mock(|c| {
            if self == Wire::Legacy {
                c.version = ServerVersion::V24_10;
            }
            edit(c);
        })
        .await
    }

    /// Connect to `server` on this dialect's endpoint, whatever the server's version.
    pub async fn connect(
        self,
        server: &MockServer,
        credentials: Option<Credentials>,
    ) -> Result<Client, Error> {
        let url = match self {
            Wire::JsonRpc => server.url(),
            Wire::Legacy => server.legacy_url(),
        };
        connect_to(url, server, credentials).await
    }

    /// The client's dialect on this wire.
    pub fn dialect(self) -> Dialect {
        match self {
            Wire::JsonRpc => Dialect::JsonRpc,
            Wire::Legacy => Dialect::Legacy,
        }
    }

    /// The snapshot called `name` for this dialect (`legacy_` in front for the legacy one).
    pub fn snapshot(self, name: &str) -> String {
        match self {
            Wire::JsonRpc => name.to_owned(),
            Wire::Legacy => format!("legacy_{name}"),
        }
    }
}

/// Define `#[tokio::test]`s `NAME::jsonrpc` and `NAME::legacy` for each scenario
/// `async fn NAME(wire: Wire)` of the calling module.
#[macro_export]
macro_rules! per_wire {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use $crate::support::in_process::Wire;

            #[tokio::test]
            async fn jsonrpc() {
                super::$name(Wire::JsonRpc).await
            }

            #[tokio::test]
            async fn legacy() {
                super::$name(Wire::Legacy).await
            }
        }
    )*};
}

/// The transcript as text, one line per frame.
pub fn transcript(server: &MockServer) -> String {
    server.transcript().to_string()
}

/// The transcript holds no password or API key of the mock's accounts.
pub fn assert_no_secrets(server: &MockServer) {
    let t = transcript(server);
    for u in &server.config().users {
        assert!(
            !t.contains(&u.password),
            "password leaked into the transcript:\n{t}"
        );
    }
    for k in &server.config().api_keys {
        assert!(
            !t.contains(&k.key),
            "API key leaked into the transcript:\n{t}"
        );
    }
}

/// The `app.create` argument of the whoami sample app.
pub fn whoami() -> Value {
    json!({"app_name": "whoami", "custom_app": true, "custom_compose_config": {
        "services": {"web": {"image": "traefik/whoami:v1.10", "ports": ["8081:80"]}}}})
}
