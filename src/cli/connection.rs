//! Connection options shared by every command, and opening a session from them.

use std::sync::Arc;

use clap::Args;

use super::prompt::{Prompter, Terminal};
use super::settings::Settings;
use super::{CliError, env, profile, trace, trust};
use crate::client::{
    Client, ConnectOptions, Credentials, Dialect, Endpoint, Fingerprint, OtpPrompt, ReconnectEvent,
    ReconnectPolicy, Secret, Trust,
};
use crate::dirs::{Dirs, warn_if_exposed};
use crate::mock::{MockConfig, MockServer};
use crate::output;

/// How to reach and log in to the server: the [`Settings`] given as flags (before or after
/// the command name), completed by the environment and a profile in [`ConnArgs::resolve`].
#[derive(Debug, Clone, Default, Args)]
pub struct ConnArgs {
    /// The settings.
    #[command(flatten)]
    pub settings: Settings,

    /// Say what happens while connecting (the global `-v/--verbose`, set by [`super::run`]).
    #[arg(skip)]
    pub verbose: bool,
}

/// An open, logged-in client, and the in-process mock behind it when `--mock` was given.
pub struct Session {
    /// The client.
    pub client: Client,
    mock: Option<MockServer>,
    /// How to open this connection again (same URL, credentials, and the certificate now
    /// trusted), for front ends that reconnect.
    reconnect: ConnectOptions,
}

impl Session {
    /// Run `work` on this session, then close it whether `work` succeeded or failed: the
    /// guard every command uses, so no error path leaves the connection (or the mock) open.
    pub async fn scoped<T>(
        self,
        work: impl AsyncFnOnce(&Session) -> Result<T, CliError>,
    ) -> Result<T, CliError> {
        let r = work(&self).await;
        self.finish().await;
        r
    }

    /// Options that open another connection like this one: same URL and login, and the
    /// server's certificate pinned as it was accepted now.
    pub fn reconnect_options(&self) -> ConnectOptions {
        self.reconnect.clone()
    }

    /// Is this the in-process mock of `--mock`?
    pub fn is_mock(&self) -> bool {
        self.mock.is_some()
    }

    /// Close the connection and stop the mock.
    pub async fn finish(self) {
        self.client.close().await;
        if let Some(m) = self.mock {
            m.shutdown().await;
        }
    }
}

impl ConnArgs {
    /// These options, with any left unset taken from `outer` (the ones given before the
    /// command name): `midscript --mock call x` and `midscript call --mock x` mean the same.
    pub fn or(self, outer: &ConnArgs) -> ConnArgs {
        ConnArgs {
            settings: self.settings.or(outer.settings.clone()),
            verbose: self.verbose || outer.verbose,
        }
    }

    /// Is any option set? (They mean nothing to `midscript mock`.)
    pub fn is_empty(&self) -> bool {
        self.settings.is_empty()
    }

    /// The deploy journal's name for the server when it is not the URL: `mock` for `--mock`
    /// (a new in-process mock on a new port each time: one name keeps `compose --mock` and
    /// `run --mock` entries together instead of a journal folder per port).
    pub(super) fn journal_server(&self) -> Option<String> {
        self.settings.mock.then(|| "mock".to_owned())
    }

    /// Is a server given (by a flag, the environment or the profile)? Ask after
    /// [`ConnArgs::resolve`].
    pub(super) fn names_a_server(&self) -> bool {
        self.settings.names_a_server()
    }

    /// These flags completed by the environment, then by the chosen profile (`--profile`,
    /// `MIDSCRIPT_PROFILE`): flag > environment > profile, merged here and nowhere else.
    pub(super) fn resolve(&self) -> Result<ConnArgs, CliError> {
        // Before anything is filled in: what is set now came from the command line.
        self.settings.warn_about_exposed_secrets();
        let mut environment = env::settings();
        if self.settings.names_a_server() {
            // MIDSCRIPT_FINGERPRINT pins the certificate of the environment's server only.
            environment.fingerprint = None;
        }
        let given = self.settings.clone().or(environment);
        let settings = match &given.profile {
            None => given,
            Some(name) => {
                let config_file = Dirs::from_env().config_file();
                let layer = profile::layer(name, config_file.as_deref(), &given)
                    .map_err(|e| CliError::File(e.to_string()))?;
                given.or(layer)
            }
        };
        let password_flag =
            self.settings.password.is_some() || self.settings.password_file.is_some();
        let key = settings.api_key.is_some() || settings.api_key_file.is_some();
        if password_flag && settings.username.is_none() && !key {
            return Err(CliError::Usage(
                "a password (-P, --password-file) needs -U/--username".into(),
            ));
        }
        Ok(ConnArgs {
            settings,
            verbose: self.verbose,
        })
    }

    /// Connect and log in as these arguments say (and the chosen profile), settling trust in
    /// the server's certificate first and asking at the terminal for what is missing.
    pub async fn connect(&self) -> Result<Session, CliError> {
        self.connect_with(Arc::new(Terminal)).await
    }

    /// [`ConnArgs::connect`], with questions going to `prompter`.
    pub async fn connect_with(&self, prompter: Arc<dyn Prompter>) -> Result<Session, CliError> {
        self.resolve()?.open(&Dirs::from_env(), prompter).await
    }

    /// [`ConnArgs::connect`] for arguments that [`ConnArgs::resolve`] already completed.
    pub(super) async fn connect_resolved(&self) -> Result<Session, CliError> {
        self.open(&Dirs::from_env(), Arc::new(Terminal)).await
    }

    async fn open(&self, dirs: &Dirs, prompter: Arc<dyn Prompter>) -> Result<Session, CliError> {
        let s = &self.settings;
        let mut credentials = s.login(&prompter)?;
        let mut mock = None;
        let (url, trust) = if s.mock {
            let config = MockConfig {
                demo: !s.empty,
                ..MockConfig::default()
            };
            let server = MockServer::start(config)
                .await
                .map_err(|e| CliError::Startup(format!("cannot start the built-in mock: {e}")))?;
            if credentials.is_none() {
                let key = &server.config().api_keys[0];
                credentials = Some(Login::Ready(Credentials::ApiKey {
                    username: Some(key.owner.clone()),
                    key: Secret::new(key.key.clone()),
                }));
            }
            let trust = server
                .fingerprint()
                .and_then(|f| f.parse().ok())
                .map_or(Trust::Insecure, Trust::Pinned);
            let url = server.url();
            mock = Some(server);
            (url, trust)
        } else {
            (s.url()?, s.trust()?)
        };
        let mut options = ConnectOptions::new(url);
        // `--host` names a box, not an endpoint: a 24.10 one answers /api/current with HTTP 404
        // and speaks only the legacy /websocket (docs/middleware.md §0.1, §1.2).
        options.legacy_fallback = s.host.is_some() && s.url.is_none() && !s.mock;
        if trust == Trust::Insecure && !s.mock {
            output::warn(
                "midscript: warning: --insecure: the server's certificate is not checked, so anyone in between can read and change this session; pin it with --fingerprint instead",
            );
        }
        options.trust = trust;
        options.send_key_unverified = s.send_key_unverified;
        options.channel_binding = !s.no_channel_binding;
        if let Some(t) = s.timeout {
            let t =
                super::seconds::check(t).map_err(|e| CliError::Usage(format!("--timeout: {e}")))?;
            options.rpc.call_timeout = super::seconds::duration(t);
            options.connect_timeout = super::seconds::duration(t);
        }
        if let Some(path) = &s.trace {
            options.tracer = Some(trace::to_file(path)?);
        }
        if !s.no_reconnect {
            options.reconnect = Some(ReconnectPolicy::default());
            options.on_reconnect = Some(Arc::new(report_reconnect));
        }
        let ask = match credentials {
            // The client logs in once the handshake has settled trust (and refuses, before
            // connecting, to send an API key where the server would revoke it).
            Some(Login::Ready(c)) => {
                options.credentials = Some(c);
                None
            }
            ask => ask,
        };
        let fallback = options.legacy_fallback;
        let mut reconnect = options.clone();
        let client = trust::open(options, dirs.known_hosts().as_deref(), prompter.as_ref()).await?;
        if self.verbose && fallback && client.dialect() == Dialect::Legacy {
            output::warn(&format!(
                "midscript: {} has no /api/current (HTTP 404, TrueNAS 24.10?); using the legacy /websocket protocol at {}",
                s.host.as_deref().unwrap_or_default(),
                client.url()
            ));
        }
        // Like ssh, ask for the password only once the server is trusted (this login is not
        // recorded in `Client::login_info`).
        if let Some(login) = ask {
            let result = match login.credentials(prompter.as_ref(), client.url()) {
                Ok(c) => {
                    let r = client.login(&c).await.map_err(CliError::from);
                    reconnect.credentials = Some(c);
                    r
                }
                Err(e) => Err(e),
            };
            if let Err(e) = result {
                client.close().await;
                return Err(e);
            }
        }
        reconnect.url = client.url().to_owned();
        reconnect.legacy_fallback = false;
        if let Some(fp) = client.fingerprint() {
            reconnect.trust = Trust::Pinned(fp);
        }
        Ok(Session {
            client,
            mock,
            reconnect,
        })
    }
}

/// Reading the settings for a connection. They come [`ConnArgs::resolve`]d: the environment's
/// server and key are already in them.
impl Settings {
    fn api_key(&self) -> Result<Option<Secret>, CliError> {
        if let Some(k) = &self.api_key {
            return Ok(Some(Secret::new(k.trim())));
        }
        if let Some(path) = &self.api_key_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::File(format!(
                    "cannot read the API key file {}: {e}",
                    path.display()
                ))
            })?;
            warn_if_exposed(path, "an API key");
            let key = text.trim();
            if key.is_empty() {
                return Err(CliError::File(format!(
                    "the API key file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(Secret::new(key)));
        }
        Ok(None)
    }

    /// The password: -P, --password-file (its first line), or MIDSCRIPT_PASSWORD.
    fn password(&self) -> Result<Option<String>, CliError> {
        if let Some(path) = &self.password_file {
            let text = std::fs::read_to_string(path).map_err(|e| {
                CliError::File(format!(
                    "cannot read the password file {}: {e}",
                    path.display()
                ))
            })?;
            warn_if_exposed(path, "a password");
            let password = text.lines().next().unwrap_or_default();
            if password.is_empty() {
                return Err(CliError::File(format!(
                    "the password file {} is empty",
                    path.display()
                )));
            }
            return Ok(Some(password.to_owned()));
        }
        Ok(self.password.clone())
    }

    /// Warn about secrets given where other users of this machine can read them: -P and -K
    /// show in the process list (`ps`) for as long as the command runs. Call it on the flags
    /// alone, before the environment is layered in.
    fn warn_about_exposed_secrets(&self) {
        if self.password.is_some() {
            output::warn(
                "midscript: warning: -P/--password shows in the process list to every user of this machine; use --password-file FILE (or MIDSCRIPT_PASSWORD)",
            );
        }
        if self.api_key.is_some() {
            output::warn(
                "midscript: warning: -K/--api-key shows in the process list to every user of this machine; use --api-key-file FILE (or MIDSCRIPT_API_KEY)",
            );
        }
    }

    /// How to log in; a missing password is asked for (after trust is settled) on a terminal.
    fn login(&self, prompter: &Arc<dyn Prompter>) -> Result<Option<Login>, CliError> {
        if let Some(key) = self.api_key()? {
            return Ok(Some(Login::Ready(Credentials::ApiKey {
                username: self.username.clone(),
                key,
            })));
        }
        let otp_prompt: Option<OtpPrompt> = match (&self.otp, prompter.interactive()) {
            (None, true) => {
                let p = prompter.clone();
                Some(Arc::new(move || {
                    p.secret("One-time password (2FA): ")
                        .filter(|s| !s.trim().is_empty())
                }))
            }
            _ => None,
        };
        let otp = self.otp.clone().map(Secret::new);
        match (&self.username, self.password()?) {
            (Some(u), Some(p)) => Ok(Some(Login::Ready(Credentials::Password {
                username: u.clone(),
                password: Secret::new(p),
                otp,
                otp_prompt,
            }))),
            (Some(u), None) if prompter.interactive() => Ok(Some(Login::AskPassword {
                username: u.clone(),
                otp,
                otp_prompt,
            })),
            (Some(u), None) => Err(CliError::Usage(format!(
                "a password login as {u} needs a password, and there is no terminal to ask for it: \
                 give --password-file FILE or MIDSCRIPT_PASSWORD (or use an API key: --api-key-file)"
            ))),
            // MIDSCRIPT_PASSWORD alone means nothing without a user (a password flag without
            // one is refused in `ConnArgs::resolve`).
            (None, Some(_)) => Ok(None),
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
            return Ok(ConnectOptions::for_host(h).url);
        }
        Err(CliError::Usage("no server given: pass --host HOST, --url URL (or set MIDSCRIPT_URL), or --mock to try the built-in mock".into()))
    }
}

/// Say on stderr that the connection dropped and came back (giving up is reported as the
/// command's error).
fn report_reconnect(event: &ReconnectEvent<'_>) {
    match event {
        ReconnectEvent::Lost { cause } => {
            output::warn(&format!(
                "midscript: connection lost ({cause}); reconnecting"
            ));
        }
        ReconnectEvent::Reconnected { attempts, logins } => {
            output::warn(&format!(
                "midscript: reconnected after {attempts} attempt(s); logins so far: {logins}"
            ));
        }
        ReconnectEvent::GaveUp { .. } => {}
    }
}

/// How the session will log in, once trust in the server is settled.
enum Login {
    /// Everything is known.
    Ready(Credentials),
    /// The password is asked for at the terminal.
    AskPassword {
        username: String,
        otp: Option<Secret>,
        otp_prompt: Option<OtpPrompt>,
    },
}

impl Login {
    fn credentials(self, prompter: &dyn Prompter, url: &str) -> Result<Credentials, CliError> {
        match self {
            Login::Ready(c) => Ok(c),
            Login::AskPassword {
                username,
                otp,
                otp_prompt,
            } => {
                let host = Endpoint::parse(url).map_or_else(|_| url.to_owned(), |e| e.host);
                let password = prompter
                    .secret(&format!("Password for {username}@{host}: "))
                    .ok_or_else(|| CliError::NoInput("no password was entered".into()))?;
                Ok(Credentials::Password {
                    username,
                    password: Secret::new(password),
                    otp,
                    otp_prompt,
                })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::prompt::Scripted;
    use crate::mock::TEST_PASSWORD;

    /// ssh's order: the certificate first, then the password, then the one-time password.
    #[tokio::test]
    async fn missing_password_and_otp_are_asked_after_trust_is_settled() {
        let mut config = MockConfig::for_tests();
        config.tls = true;
        config.users[0].otp_code = Some("246810".into());
        let server = MockServer::start(config).await.unwrap();
        let state = tempfile::tempdir().unwrap();
        let dirs = Dirs {
            state: Some(state.path().to_owned()),
            ..Dirs::default()
        };
        let args = ConnArgs {
            settings: Settings {
                url: Some(server.url()),
                username: Some("truenas_admin".into()),
                ..Settings::default()
            },
            verbose: false,
        };
        let prompter = Arc::new(Scripted::new(&["yes", TEST_PASSWORD, "246810"]));
        let session = args.open(&dirs, prompter.clone()).await.unwrap();
        assert!(session.client.is_authenticated());
        let shown = prompter.shown.lock().unwrap().clone();
        assert_eq!(shown.len(), 3, "{shown:?}");
        assert!(
            shown[0].starts_with("The authenticity of 127.0.0.1:"),
            "{shown:?}"
        );
        assert_eq!(shown[1], "Password for truenas_admin@127.0.0.1: ");
        assert_eq!(shown[2], "One-time password (2FA): ");
        session.finish().await;
        server.shutdown().await;
    }

    #[tokio::test]
    async fn a_scoped_session_is_closed_even_when_its_work_fails() {
        let args = ConnArgs {
            settings: Settings {
                mock: true,
                ..Settings::default()
            },
            verbose: false,
        };
        let session = args
            .open(&Dirs::default(), Arc::new(Scripted::new(&[])))
            .await
            .unwrap();
        let client = session.client.clone();
        let r: Result<(), CliError> = session
            .scoped(async |s| {
                s.client.call("core.ping", vec![]).await?;
                Err(CliError::Refused("stop here".into()))
            })
            .await;
        assert!(matches!(r, Err(CliError::Refused(m)) if m == "stop here"));
        let after = client.call("core.ping", vec![]).await;
        assert!(
            after.as_ref().is_err_and(|e| e.is_connection()),
            "the session is still open: {after:?}"
        );
    }
}
