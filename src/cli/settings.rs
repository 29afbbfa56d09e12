//! The connection settings, each declared once: as a flag (clap) and, when a profile may
//! hold it, as a profile key of the config file (serde). Every source of settings (the flags
//! after the command name, those before it, the environment, a profile) is a [`Settings`], and
//! [`Settings::or`] layers one over another.

use std::path::PathBuf;

use clap::Args;
use serde::Deserialize;

use crate::client::ConnectOptions;

/// How to reach and log in to the server. Every setting is optional: unset means "from a lower
/// layer, or the default". Fields marked `#[serde(skip)]` are flags only, never profile keys.
///
/// The profile keys are declared in the order the config file's error messages list them.
#[derive(Clone, Default, PartialEq, Args, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
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
    #[serde(skip)]
    pub mock: bool,

    /// With --mock: start the mock empty instead of from its demo state (apps, a pool,
    /// alerts, a recurring job).
    #[arg(long)]
    #[serde(skip)]
    pub empty: bool,

    /// Username (for a password login, or the owner of an API key, which enables SCRAM on 26+).
    #[arg(long, short = 'U', value_name = "NAME")]
    pub username: Option<String>,

    /// Password; asked for on a terminal when -U comes without a password or a key. -P shows
    /// in the process list: prefer --password-file, or MIDSCRIPT_PASSWORD.
    #[arg(long, short = 'P', value_name = "PASSWORD", hide_default_value = true)]
    #[serde(skip)]
    pub password: Option<String>,

    /// Read the password from this file (its first line; keep it chmod 600). The safest way
    /// to give a password without a terminal [env: MIDSCRIPT_PASSWORD holds the password itself]
    #[arg(long, value_name = "FILE", conflicts_with = "password")]
    #[serde(skip)]
    pub password_file: Option<PathBuf>,

    /// API key `<id>-<key>`; -K shows in the process list: prefer --api-key-file [env:
    /// MIDSCRIPT_API_KEY, TRUENAS_API_KEY]
    #[arg(long, short = 'K', value_name = "KEY")]
    pub api_key: Option<String>,

    /// Read the API key from this file.
    #[arg(long, value_name = "FILE", conflicts_with = "api_key")]
    pub api_key_file: Option<PathBuf>,

    /// One-time password for two-factor accounts (asked for on a terminal when needed).
    #[arg(long, value_name = "CODE")]
    #[serde(skip)]
    pub otp: Option<String>,

    /// Trust exactly the certificate with this SHA-256 fingerprint (as openssl prints it);
    /// otherwise an untrusted certificate is offered on a terminal and remembered on a yes
    /// [env: MIDSCRIPT_FINGERPRINT, for the server of MIDSCRIPT_URL]
    #[arg(long, value_name = "SHA256", conflicts_with = "insecure")]
    pub fingerprint: Option<String>,

    /// Seconds to wait for the connection and for each reply (more than 0, at most a year).
    #[arg(long, short = 't', value_name = "SECONDS", value_parser = super::seconds::parse)]
    pub timeout: Option<f64>,

    /// Do not check the server's certificate at all (warned about; an API key is then not
    /// sent in plain unless --send-key-unverified).
    #[arg(long, short = 'k')]
    pub insecure: bool,

    /// With --insecure: send an API key itself (API_KEY_PLAIN) to the unverified server
    /// anyway. Whoever sits in between gets the key.
    #[arg(long)]
    #[serde(skip)]
    pub send_key_unverified: bool,

    /// Do not bind SCRAM API-key logins over wss:// to the server's certificate (midclt's flag);
    /// only for servers from before binding existed (26.0.0-BETA.1/2).
    #[arg(long)]
    pub no_channel_binding: bool,

    /// Use this profile of the config file [env: MIDSCRIPT_PROFILE]
    #[arg(long, value_name = "NAME")]
    #[serde(skip)]
    pub profile: Option<String>,

    /// Write what is sent and received to FILE, secrets redacted.
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub trace: Option<PathBuf>,

    /// End at once when the connection drops, instead of reconnecting (up to 60 s, logging in
    /// again, subscribing again and carrying on waiting for jobs).
    #[arg(long)]
    #[serde(skip)]
    pub no_reconnect: bool,
}

impl Settings {
    /// These settings over `under`: each one from `self` when set here, else from `under`.
    /// Settings that exclude each other are one choice, taken whole from the upper layer that
    /// makes it: the server (`url`, `host`, `mock`), the API key (`api_key`, `api_key_file`),
    /// and trust (`insecure`, `fingerprint`). So `--host` given here beats a lower `--url`,
    /// and a key file given here beats a lower inline key.
    pub fn or(self, under: Settings) -> Settings {
        let mut under = under;
        if self.names_a_server() {
            (under.url, under.host, under.mock) = (None, None, false);
        }
        if self.api_key.is_some() || self.api_key_file.is_some() {
            (under.api_key, under.api_key_file) = (None, None);
        }
        if self.password.is_some() || self.password_file.is_some() {
            (under.password, under.password_file) = (None, None);
        }
        if self.insecure || self.fingerprint.is_some() {
            (under.insecure, under.fingerprint) = (false, None);
        }
        // Spelled out without `..`, so a new setting cannot be left out of the merge.
        let Settings {
            url,
            host,
            mock,
            empty,
            username,
            password,
            password_file,
            api_key,
            api_key_file,
            otp,
            fingerprint,
            timeout,
            insecure,
            send_key_unverified,
            no_channel_binding,
            profile,
            trace,
            no_reconnect,
        } = self;
        Settings {
            url: url.or(under.url),
            host: host.or(under.host),
            mock: mock || under.mock,
            empty: empty || under.empty,
            username: username.or(under.username),
            password: password.or(under.password),
            password_file: password_file.or(under.password_file),
            api_key: api_key.or(under.api_key),
            api_key_file: api_key_file.or(under.api_key_file),
            otp: otp.or(under.otp),
            fingerprint: fingerprint.or(under.fingerprint),
            timeout: timeout.or(under.timeout),
            insecure: insecure || under.insecure,
            send_key_unverified: send_key_unverified || under.send_key_unverified,
            no_channel_binding: no_channel_binding || under.no_channel_binding,
            profile: profile.or(under.profile),
            trace: trace.or(under.trace),
            no_reconnect: no_reconnect || under.no_reconnect,
        }
    }

    /// Is no setting given?
    pub fn is_empty(&self) -> bool {
        *self == Settings::default()
    }

    /// Do these settings name a server (`--url`, `--host` or `--mock`)?
    pub fn names_a_server(&self) -> bool {
        self.mock || self.url.is_some() || self.host.is_some()
    }

    /// The URL of the server these settings name (`--host` as `wss://HOST/api/current`);
    /// `None` for none, or for the mock.
    pub fn server_url(&self) -> Option<String> {
        self.url
            .clone()
            .or_else(|| self.host.as_ref().map(|h| ConnectOptions::for_host(h).url))
    }
}

impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "********");
        f.debug_struct("Settings")
            .field("url", &self.url)
            .field("host", &self.host)
            .field("mock", &self.mock)
            .field("empty", &self.empty)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("password_file", &self.password_file)
            .field("api_key", &hidden(&self.api_key))
            .field("api_key_file", &self.api_key_file)
            .field("otp", &hidden(&self.otp))
            .field("fingerprint", &self.fingerprint)
            .field("timeout", &self.timeout)
            .field("insecure", &self.insecure)
            .field("send_key_unverified", &self.send_key_unverified)
            .field("no_channel_binding", &self.no_channel_binding)
            .field("profile", &self.profile)
            .field("trace", &self.trace)
            .field("no_reconnect", &self.no_reconnect)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_upper_layer_wins_setting_by_setting() {
        let upper = Settings {
            username: Some("root".into()),
            ..Settings::default()
        };
        let under = Settings {
            username: Some("admin".into()),
            timeout: Some(30.0),
            url: Some("wss://a/api/current".into()),
            ..Settings::default()
        };
        let merged = upper.or(under);
        assert_eq!(merged.username.as_deref(), Some("root"));
        assert_eq!(merged.timeout, Some(30.0));
        assert_eq!(merged.url.as_deref(), Some("wss://a/api/current"));
    }

    #[test]
    fn choices_that_exclude_each_other_come_whole_from_one_layer() {
        let upper = Settings {
            host: Some("b".into()),
            api_key_file: Some("k".into()),
            insecure: true,
            ..Settings::default()
        };
        let under = Settings {
            url: Some("wss://a/api/current".into()),
            mock: true,
            api_key: Some("1-x".into()),
            fingerprint: Some("AB".into()),
            ..Settings::default()
        };
        let merged = upper.clone().or(under);
        assert_eq!(merged, upper);
    }

    #[test]
    fn empty_means_nothing_given_and_debug_hides_secrets() {
        assert!(Settings::default().is_empty());
        let s = Settings {
            password: Some("hunter2".into()),
            api_key: Some("1-secret".into()),
            otp: Some("123456".into()),
            ..Settings::default()
        };
        assert!(!s.is_empty());
        let shown = format!("{s:?}");
        for secret in ["hunter2", "1-secret", "123456"] {
            assert!(!shown.contains(secret), "{shown}");
        }
    }
}
