//! Connection options shared by every command, and opening a session from them.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::CliError;
use crate::client::{Client, ConnectOptions, Credentials, Dialect, Fingerprint, Secret, Trust};
use crate::mock::{MockConfig, MockServer};

/// How to reach and log in to the server. Flags win over the environment.
#[derive(Debug, Clone, Default, Args)]
pub struct ConnArgs {
    /// Server URL, e.g. wss://nas.local/api/current, or wss://nas.local/websocket for the legacy
    /// protocol of TrueNAS 24.10 [env: MIDSCRIPT_URL, TRUENAS_URL]
    #[arg(long, value_name = "URL")]
    pub url: Option<String>,

    /// Server host name or address; means wss://HOST/api/current, or wss://HOST/websocket
    /// when /api/current does not exist (TrueNAS 24.10).
    #[arg(long, value_name = "HOST", conflicts_with = "url")]
    pub host: Option<String>,

    /// Run against a built-in mock NAS in this process instead of a server.
    #[arg(long, conflicts_with_all = ["url", "host"])]
    pub mock: bool,

    /// Username (for a password login, or the owner of an API key, which enables SCRAM on 26+).
    #[arg(long, short = 'U', value_name = "NAME")]
    pub username: Option<String>,

    /// Password (visible to other users in the process list: prefer a key file).
    #[arg(long, short = 'P', value_name = "PASSWORD", hide_default_value = true)]
    pub password: Option<String>,

    /// API key `<id>-<key>` [env: MIDSCRIPT_API_KEY, TRUENAS_API_KEY]
    #[arg(long, short = 'K', value_name = "KEY")]
    pub api_key: Option<String>,

    /// Read the API key from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,

    /// One-time password for two-factor accounts.
    #[arg(long, value_name = "CODE")]
    pub otp: Option<String>,

    /// Seconds to wait for each reply.
    #[arg(long, short = 't', value_name = "SECONDS")]
    pub timeout: Option<f64>,

    /// Do not check the server's certificate at all.
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// Trust exactly the certificate with this SHA-256 fingerprint (as openssl prints it).
    #[arg(long, value_name = "SHA256", conflicts_with = "insecure")]
    pub fingerprint: Option<String>,

    /// Say what happens while connecting (the global `-v/--verbose`, set by [`super::run`]).
    #[arg(skip)]
    pub verbose: bool,
}

/// An open, logged-in client, and the in-process mock behind it when `--mock` was given.
pub struct Session {
    /// The client.
    pub client: Client,
    mock: Option<MockServer>,
}

impl Session {
    /// Close the connection and stop the mock.
    pub async fn finish(self) {
        self.client.close().await;
        if let Some(m) = self.mock {
            m.shutdown().await;
        }
    }
}

fn env_any(names: &[&str]) -> Option<String> {
    names
        .iter()
        .find_map(|n| std::env::var(n).ok().filter(|v| !v.is_empty()))
}

impl ConnArgs {
    /// These options, with any left unset taken from `outer` (the ones given before the
    /// command name): `midscript --mock call x` and `midscript call --mock x` mean the same.
    pub fn or(self, outer: &ConnArgs) -> ConnArgs {
        ConnArgs {
            url: self.url.or_else(|| outer.url.clone()),
            host: self.host.or_else(|| outer.host.clone()),
            mock: self.mock || outer.mock,
            username: self.username.or_else(|| outer.username.clone()),
            password: self.password.or_else(|| outer.password.clone()),
            api_key: self.api_key.or_else(|| outer.api_key.clone()),
            api_key_file: self.api_key_file.or_else(|| outer.api_key_file.clone()),
            otp: self.otp.or_else(|| outer.otp.clone()),
            timeout: self.timeout.or(outer.timeout),
            insecure: self.insecure || outer.insecure,
            fingerprint: self.fingerprint.or_else(|| outer.fingerprint.clone()),
            verbose: self.verbose || outer.verbose,
        }
    }

    /// Is any option set? (They mean nothing to `midscript mock`.)
    pub fn is_empty(&self) -> bool {
        self.url.is_none()
            && self.host.is_none()
            && !self.mock
            && self.username.is_none()
            && self.password.is_none()
            && self.api_key.is_none()
            && self.api_key_file.is_none()
            && self.otp.is_none()
            && self.timeout.is_none()
            && !self.insecure
            && self.fingerprint.is_none()
    }

    fn api_key(&self) -> Result<Option<Secret>, CliError> {
        if let Some(k) = &self.api_key {
            return Ok(Some(Secret::new(k.trim())));
        }
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::Usage(format!(
                    "cannot read the API key file {}: {e}",
                    path.display()
                ))
            })?;
            let key = text.trim();
            if key.is_empty() {
                return Err(CliError::Usage(format!(
                    "the API key file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(Secret::new(key)));
        }
        Ok(env_any(&["MIDSCRIPT_API_KEY", "TRUENAS_API_KEY"]).map(Secret::new))
    }

    fn credentials(&self) -> Result<Option<Credentials>, CliError> {
        if let Some(key) = self.api_key()? {
            return Ok(Some(Credentials::ApiKey {
                username: self.username.clone(),
                key,
            }));
        }
        match (&self.username, &self.password) {
            (Some(u), Some(p)) => Ok(Some(Credentials::Password {
                username: u.clone(),
                password: Secret::new(p.clone()),
                otp: self.otp.clone().map(Secret::new),
                otp_prompt: None,
            })),
            (Some(u), None) => Err(CliError::Usage(format!(
                "a password login as {u} needs -P/--password (or use an API key: -K/--api-key-file)"
            ))),
            (None, Some(_)) => Err(CliError::Usage("-P/--password needs -U/--username".into())),
            (None, None) => Ok(None),
        }
    }

    fn trust(&self) -> Result<Trust, CliError> {
        if self.insecure {
            return Ok(Trust::Insecure);
        }
        match &self.fingerprint {
            Some(f) => f
                .parse::<Fingerprint>()
                .map(Trust::Pinned)
                .map_err(CliError::Usage),
            None => Ok(Trust::System),
        }
    }

    fn url(&self) -> Result<String, CliError> {
        if let Some(u) = &self.url {
            return Ok(u.clone());
        }
        if let Some(h) = &self.host {
            return Ok(format!("wss://{h}/api/current"));
        }
        env_any(&["MIDSCRIPT_URL", "TRUENAS_URL"])
            .ok_or_else(|| CliError::Usage("no server given: pass --host HOST, --url URL (or set MIDSCRIPT_URL), or --mock to try the built-in mock".into()))
    }

    /// Connect and log in as these arguments say.
    pub async fn connect(&self) -> Result<Session, CliError> {
        let mut credentials = self.credentials()?;
        let mut mock = None;
        let (url, trust) = if self.mock {
            let server = MockServer::start(MockConfig::default())
                .await
                .map_err(|e| CliError::Usage(format!("cannot start the built-in mock: {e}")))?;
            if credentials.is_none() {
                let key = &server.config().api_keys[0];
                credentials = Some(Credentials::ApiKey {
                    username: Some(key.owner.clone()),
                    key: Secret::new(key.key.clone()),
                });
            }
            let trust = server
                .fingerprint()
                .and_then(|f| f.parse().ok())
                .map_or(Trust::Insecure, Trust::Pinned);
            let url = server.url();
            mock = Some(server);
            (url, trust)
        } else {
            (self.url()?, self.trust()?)
        };
        let mut options = ConnectOptions::new(url);
        // `--host` names a box, not an endpoint: a 24.10 one answers /api/current with HTTP 404
        // and speaks only the legacy /websocket (`protocol.md` §0.1, §1.2).
        options.legacy_fallback = self.host.is_some() && self.url.is_none() && !self.mock;
        options.trust = trust;
        options.credentials = credentials;
        if let Some(t) = self.timeout {
            if !(t.is_finite() && t > 0.0) {
                return Err(CliError::Usage(format!(
                    "--timeout must be a positive number of seconds, not {t}"
                )));
            }
            options.rpc.call_timeout = Duration::from_secs_f64(t);
        }
        let fallback = options.legacy_fallback;
        let client = Client::connect(options).await?;
        if self.verbose && fallback && client.dialect() == Dialect::Legacy {
            eprintln!(
                "midscript: {} has no /api/current (HTTP 404, TrueNAS 24.10?); using the legacy /websocket protocol at {}",
                self.host.as_deref().unwrap_or_default(),
                client.url()
            );
        }
        Ok(Session { client, mock })
    }
}
