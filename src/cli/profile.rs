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

use super::settings::Settings;
use crate::dirs::warn_if_exposed;
use crate::output;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ConfigFile {
    /// Each holds the [`Settings`] that may be profile keys (the others are flags only).
    #[serde(default)]
    profiles: BTreeMap<String, Settings>,
}

/// The config file, read.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Where it was read from.
    pub path: PathBuf,
    /// Profiles by name.
    pub profiles: BTreeMap<String, Settings>,
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
            if p.insecure && p.fingerprint.is_some() {
                return Err(invalid("give fingerprint or insecure, not both"));
            }
            if let Some(t) = p.timeout
                && let Err(e) = super::seconds::check(t)
            {
                return Err(invalid(&format!("timeout: {e}")));
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
    pub fn profile(&self, name: &str) -> Result<&Settings, ProfileError> {
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

/// What profile `name` of `config_file` adds under the settings `given` by the flags and the
/// environment. The profile's credentials and trust belong to its server: when `given` names
/// another server (or the mock), only its other settings (the timeout) are used, with a note.
pub fn layer(
    name: &str,
    config_file: Option<&Path>,
    given: &Settings,
) -> Result<Settings, ProfileError> {
    let no_config = || ProfileError::NoConfig {
        name: name.to_owned(),
        path: config_file.map(Path::to_owned),
    };
    let path = config_file.ok_or_else(no_config)?;
    let config = Config::load(path)?.ok_or_else(no_config)?;
    config.layer(name, given)
}

impl Config {
    /// [`layer`] for this config file's profile `name`.
    fn layer(&self, name: &str, given: &Settings) -> Result<Settings, ProfileError> {
        let p = self.profile(name)?;
        let unbound = Settings {
            timeout: p.timeout,
            ..Settings::default()
        };
        if given.mock {
            return Ok(unbound);
        }
        if let (Some(g), Some(o)) = (given.server_url(), p.server_url())
            && g != o
        {
            output::warn(&format!(
                "midscript: note: using {g} instead of profile {name:?}'s {o}: \
                 the profile's credentials and fingerprint are left out"
            ));
            return Ok(unbound);
        }
        let mut layer = p.clone();
        if given.api_key.is_none() && given.api_key_file.is_none() && p.api_key.is_some() {
            warn_if_exposed(&self.path, "an API key");
        }
        let base = self.path.parent().unwrap_or(Path::new("."));
        layer.api_key_file = layer.api_key_file.map(|f| expand(&f, base));
        Ok(layer)
    }
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

    /// `given` with profile `name` of [`SAMPLE`] layered under it.
    fn merge(given: Settings, name: &str) -> Settings {
        let layer = cfg().layer(name, &given).unwrap();
        given.or(layer)
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
        let merged = merge(Settings::default(), "nas1");
        assert_eq!(merged.url.as_deref(), Some("wss://nas1.local/api/current"));
        assert_eq!(merged.username.as_deref(), Some("admin"));
        assert_eq!(
            merged.api_key_file.as_deref(),
            Some(Path::new("/c/keys/nas1.key"))
        );
        assert!(merged.fingerprint.is_some());
        assert_eq!(merged.timeout, Some(30.0));

        let flags = Settings {
            username: Some("root".into()),
            timeout: Some(5.0),
            ..Default::default()
        };
        let merged = merge(flags, "nas1");
        assert_eq!(merged.username.as_deref(), Some("root"));
        assert_eq!(merged.timeout, Some(5.0));

        // Another server: the profile's key and pin are not sent there.
        let elsewhere = Settings {
            host: Some("other.local".into()),
            ..Default::default()
        };
        let merged = merge(elsewhere, "nas1");
        assert!(merged.api_key_file.is_none() && merged.fingerprint.is_none());
        assert!(merged.username.is_none() && merged.url.is_none());
        assert_eq!(merged.timeout, Some(30.0));

        // The same server named by its host: the profile's credentials go with it.
        let same = Settings {
            host: Some("nas1.local".into()),
            ..Default::default()
        };
        let merged = merge(same, "nas1");
        assert_eq!(merged.host.as_deref(), Some("nas1.local"));
        assert!(merged.url.is_none() && merged.api_key_file.is_some());

        // The mock: nothing of the profile's server goes there either.
        let mock = Settings {
            mock: true,
            ..Default::default()
        };
        let merged = merge(mock, "nas1");
        assert!(merged.username.is_none() && merged.fingerprint.is_none());
        assert_eq!(merged.timeout, Some(30.0));

        // --insecure on the command line beats the profile's pin; a key given beats its file.
        let insecure = Settings {
            insecure: true,
            api_key: Some("1-k".into()),
            ..Default::default()
        };
        let merged = merge(insecure, "nas1");
        assert!(merged.insecure && merged.fingerprint.is_none());
        assert!(merged.api_key.is_some() && merged.api_key_file.is_none());

        let lab = merge(Settings::default(), "lab");
        assert_eq!(lab.host.as_deref(), Some("lab.local"));
        assert!(lab.insecure);
    }

    #[test]
    fn settings_that_are_flags_only_are_not_profile_keys() {
        let err = Config::parse(
            "[profiles.a]\npassword = \"x\"\n",
            Path::new("/c/config.toml"),
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "/c/config.toml:2:1: unknown field `password`, expected one of `url`, `host`, \
             `username`, `api_key`, `api_key_file`, `fingerprint`, `timeout`, `insecure`, \
             `no_channel_binding`"
        );
    }

    #[test]
    fn a_profile_without_a_config_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let err = layer(
            "nas1",
            Some(&dir.path().join("config.toml")),
            &Settings::default(),
        )
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
