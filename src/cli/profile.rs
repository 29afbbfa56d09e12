//! Named connection profiles in `$XDG_CONFIG_HOME/midscript/config.toml`:
//!
//! ```toml
//! [profiles.nas1]
//! url = "wss://nas1.local/api/current"   # or: host = "nas1.local"
//! username = "admin"
//! api_key_file = "~/.config/midscript/nas1.key"
//! fingerprint = "AB:CD:…"                # pins the certificate
//! timeout = 30
//! ```
//!
//! A profile is chosen with `--profile NAME` or `MIDSCRIPT_PROFILE`. Each setting yields to the
//! same setting given as a flag or in the environment (flag > env > profile > default). The
//! profile's credentials and fingerprint belong to its server: when a flag or the environment
//! points at another server, they are left out, so a key never goes where it was not meant to.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::ConnArgs;
use super::env::{KEY_VARS, URL_VARS, env_any};
use crate::client::ConnectOptions;
use crate::dirs::warn_if_exposed;
use crate::output;

/// The environment variable that names a profile.
pub const PROFILE_VAR: &str = "MIDSCRIPT_PROFILE";

/// One named profile. Every setting is optional.
#[derive(Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Server URL (`wss://HOST/api/current`).
    pub url: Option<String>,
    /// Server host; means `wss://HOST/api/current`.
    pub host: Option<String>,
    /// The account (password login, or the API key's owner).
    pub username: Option<String>,
    /// An API key inline (the file must then be private: prefer `api_key_file`).
    pub api_key: Option<String>,
    /// A file holding the API key; `~/` is the home folder, a relative path is relative to the
    /// config file's folder.
    pub api_key_file: Option<PathBuf>,
    /// The certificate's SHA-256 fingerprint to pin.
    pub fingerprint: Option<String>,
    /// Seconds to wait for each reply.
    pub timeout: Option<f64>,
    /// Do not check the certificate at all.
    pub insecure: Option<bool>,
}

impl std::fmt::Debug for Profile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Profile")
            .field("url", &self.url)
            .field("host", &self.host)
            .field("username", &self.username)
            .field("api_key", &self.api_key.as_ref().map(|_| "********"))
            .field("api_key_file", &self.api_key_file)
            .field("fingerprint", &self.fingerprint)
            .field("timeout", &self.timeout)
            .field("insecure", &self.insecure)
            .finish()
    }
}

impl Profile {
    /// The server URL this profile names, if any.
    fn server(&self) -> Option<String> {
        self.url
            .clone()
            .or_else(|| self.host.as_ref().map(|h| ConnectOptions::for_host(h).url))
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    #[serde(default)]
    profiles: BTreeMap<String, Profile>,
}

/// The config file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Profile>,
}

/// Why a profile could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The config file exists but cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML, or holds settings midscript does not know.
    #[error("{}:{line}:{column}: {message}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// A profile was asked for but there is no config file.
    #[error("profile {name:?} was asked for, but there is no config file {}", path.as_deref().map_or("(no config folder on this system)".into(), |p| p.display().to_string()))]
    NoConfig {
        /// The profile asked for.
        name: String,
        /// Where the file was looked for.
        path: Option<PathBuf>,
    },
    /// No profile of that name.
    #[error("no profile {name:?} in {}{}", path.display(), if known.is_empty() { " (it defines none)".to_owned() } else { format!("; it defines: {}", known.join(", ")) })]
    Unknown {
        /// The profile asked for.
        name: String,
        /// The config file.
        path: PathBuf,
        /// The profiles it defines.
        known: Vec<String>,
    },
    /// A profile's settings contradict each other.
    #[error("{}: profile {name:?}: {reason}", path.display())]
    Invalid {
        /// The config file.
        path: PathBuf,
        /// The profile.
        name: String,
        /// What is wrong.
        reason: String,
    },
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, column)
}

impl Config {
    /// Parse config text read from `path`.
    pub fn parse(text: &str, path: &Path) -> Result<Config, ProfileError> {
        let file: ConfigFile = toml::from_str(text).map_err(|e| {
            let (line, column) = e.span().map_or((1, 1), |s| line_col(text, s.start));
            ProfileError::Parse {
                path: path.to_owned(),
                line,
                column,
                message: e.message().trim().to_owned(),
            }
        })?;
        for (name, p) in &file.profiles {
            let invalid = |reason: &str| ProfileError::Invalid {
                path: path.to_owned(),
                name: name.clone(),
                reason: reason.to_owned(),
            };
            if p.url.is_some() && p.host.is_some() {
                return Err(invalid("give url or host, not both"));
            }
            if p.api_key.is_some() && p.api_key_file.is_some() {
                return Err(invalid("give api_key or api_key_file, not both"));
            }
            if p.insecure == Some(true) && p.fingerprint.is_some() {
                return Err(invalid("give fingerprint or insecure, not both"));
            }
            if let Some(t) = p.timeout
                && !(t.is_finite() && t > 0.0)
            {
                return Err(invalid("timeout must be a positive number of seconds"));
            }
            if let Some(f) = &p.fingerprint
                && let Err(e) = f.parse::<crate::client::Fingerprint>()
            {
                return Err(invalid(&format!("fingerprint: {e}")));
            }
        }
        Ok(Config {
            path: path.to_owned(),
            profiles: file.profiles,
        })
    }

    /// Read the config file; `Ok(None)` when there is none.
    pub fn load(path: &Path) -> Result<Option<Config>, ProfileError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Config::parse(&text, path).map(Some),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(source) => Err(ProfileError::Read {
                path: path.to_owned(),
                source,
            }),
        }
    }

    /// The profile called `name`.
    pub fn profile(&self, name: &str) -> Result<&Profile, ProfileError> {
        self.profiles
            .get(name)
            .ok_or_else(|| ProfileError::Unknown {
                name: name.to_owned(),
                path: self.path.clone(),
                known: self.profiles.keys().cloned().collect(),
            })
    }
}

/// `~/x` in the home folder, a relative path relative to `base`.
fn expand(path: &Path, base: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = directories::BaseDirs::new()
    {
        return home.home_dir().join(rest);
    }
    if path.is_relative() {
        base.join(path)
    } else {
        path.to_owned()
    }
}

/// The profile name asked for: `--profile`, else `MIDSCRIPT_PROFILE`.
fn requested(args: &ConnArgs) -> Option<String> {
    args.profile.clone().or_else(|| env_any(&[PROFILE_VAR]))
}

/// `args` with the chosen profile's settings filled in where neither a flag nor the
/// environment gave one. Without a chosen profile, `args` unchanged.
pub fn apply(args: &ConnArgs, config_file: Option<&Path>) -> Result<ConnArgs, ProfileError> {
    let Some(name) = requested(args) else {
        return Ok(args.clone());
    };
    let no_config = || ProfileError::NoConfig {
        name: name.clone(),
        path: config_file.map(Path::to_owned),
    };
    let path = config_file.ok_or_else(no_config)?;
    let config = Config::load(path)?.ok_or_else(no_config)?;
    let profile = config.profile(&name)?;
    let base = path.parent().unwrap_or(Path::new("."));
    Ok(merge(args.clone(), profile, &name, path, base, env_any))
}

/// Fill `a` from `p`; `env` reads the first set variable of a list.
fn merge(
    mut a: ConnArgs,
    p: &Profile,
    name: &str,
    config: &Path,
    base: &Path,
    env: impl Fn(&[&str]) -> Option<String>,
) -> ConnArgs {
    a.timeout = a.timeout.or(p.timeout);
    if a.mock {
        return a;
    }
    let given = a
        .url
        .clone()
        .or_else(|| a.host.as_ref().map(|h| ConnectOptions::for_host(h).url));
    let given = given.or_else(|| env(URL_VARS));
    let ours = p.server();
    match (&given, &ours) {
        (None, Some(_)) => {
            a.url = p.url.clone();
            a.host = p.host.clone();
        }
        (Some(g), Some(o)) if g != o => {
            output::warn(&format!(
                "midscript: note: using {g} instead of profile {name:?}'s {o}: \
                 the profile's credentials and fingerprint are left out"
            ));
            return a;
        }
        _ => {}
    }
    a.username = a.username.or_else(|| p.username.clone());
    if a.api_key.is_none() && a.api_key_file.is_none() && env(KEY_VARS).is_none() {
        if let Some(k) = &p.api_key {
            warn_if_exposed(config, "an API key");
            a.api_key = Some(k.clone());
        } else if let Some(f) = &p.api_key_file {
            a.api_key_file = Some(expand(f, base));
        }
    }
    if a.fingerprint.is_none() && !a.insecure {
        a.fingerprint = p.fingerprint.clone();
        a.insecure = p.insecure.unwrap_or(false);
    }
    a
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
[profiles.nas1]
url = "wss://nas1.local/api/current"
username = "admin"
api_key_file = "keys/nas1.key"
fingerprint = "AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB:AB"
timeout = 30

[profiles.lab]
host = "lab.local"
insecure = true
"#;

    fn no_env(_: &[&str]) -> Option<String> {
        None
    }

    fn cfg() -> Config {
        Config::parse(SAMPLE, Path::new("/c/config.toml")).unwrap()
    }

    #[test]
    fn profiles_parse_and_unknown_names_list_the_known() {
        let c = cfg();
        assert_eq!(c.profiles.len(), 2);
        assert_eq!(c.profile("nas1").unwrap().timeout, Some(30.0));
        let err = c.profile("nas9").unwrap_err().to_string();
        assert_eq!(
            err,
            "no profile \"nas9\" in /c/config.toml; it defines: lab, nas1"
        );
    }

    #[test]
    fn malformed_files_name_file_line_and_column() {
        let err = Config::parse(
            "[profiles.a]\nurl = \"x\"\ntimout = 3\n",
            Path::new("/c/config.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.starts_with("/c/config.toml:3:1: unknown field `timout`"),
            "{err}"
        );
        let err = Config::parse("[profiles.a]\nurl = \n", Path::new("/c/config.toml"))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("/c/config.toml:2:7: "), "{err}");
        let err = Config::parse(
            "[profiles.a]\ntimeout = \"30\"\n",
            Path::new("/c/config.toml"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("/c/config.toml:2:11: "), "{err}");
        let err = Config::parse(
            "[profiles.a]\nurl = \"wss://a/api/current\"\nhost = \"a\"\n",
            Path::new("/c/config.toml"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "/c/config.toml: profile \"a\": give url or host, not both"
        );
    }

    #[test]
    fn flags_win_and_credentials_stay_with_their_server() {
        let c = cfg();
        let p = c.profile("nas1").unwrap();
        let base = Path::new("/c");
        let merged = merge(ConnArgs::default(), p, "nas1", &c.path, base, no_env);
        assert_eq!(merged.url.as_deref(), Some("wss://nas1.local/api/current"));
        assert_eq!(merged.username.as_deref(), Some("admin"));
        assert_eq!(
            merged.api_key_file.as_deref(),
            Some(Path::new("/c/keys/nas1.key"))
        );
        assert!(merged.fingerprint.is_some());
        assert_eq!(merged.timeout, Some(30.0));

        let flags = ConnArgs {
            username: Some("root".into()),
            timeout: Some(5.0),
            ..Default::default()
        };
        let merged = merge(flags, p, "nas1", &c.path, base, no_env);
        assert_eq!(merged.username.as_deref(), Some("root"));
        assert_eq!(merged.timeout, Some(5.0));

        // Another server: the profile's key and pin are not sent there.
        let elsewhere = ConnArgs {
            host: Some("other.local".into()),
            ..Default::default()
        };
        let merged = merge(elsewhere, p, "nas1", &c.path, base, no_env);
        assert!(merged.api_key_file.is_none() && merged.fingerprint.is_none());
        assert!(merged.username.is_none() && merged.url.is_none());
        assert_eq!(merged.timeout, Some(30.0));

        // --insecure on the command line beats the profile's pin.
        let insecure = ConnArgs {
            insecure: true,
            ..Default::default()
        };
        let merged = merge(insecure, p, "nas1", &c.path, base, no_env);
        assert!(merged.insecure && merged.fingerprint.is_none());

        let lab = merge(
            ConnArgs::default(),
            c.profile("lab").unwrap(),
            "lab",
            &c.path,
            base,
            no_env,
        );
        assert_eq!(lab.host.as_deref(), Some("lab.local"));
        assert!(lab.insecure);
    }

    #[test]
    fn a_profile_without_a_config_file_is_an_error() {
        let args = ConnArgs {
            profile: Some("nas1".into()),
            ..Default::default()
        };
        let dir = tempfile::tempdir().unwrap();
        let err = apply(&args, Some(&dir.path().join("config.toml")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("there is no config file"), "{err}");
    }

    #[test]
    fn line_col_counts_characters() {
        assert_eq!(line_col("ab\ncdé f", 7), (2, 4));
        assert_eq!(line_col("", 3), (1, 1));
    }
}
