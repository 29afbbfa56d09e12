//! Where midscript keeps its files, following the XDG base directories on Linux
//! (`directories` picks the platform's equivalents elsewhere). This is the one place that
//! works the folders out; every other module asks it.
//!
//! - config: `$XDG_CONFIG_HOME/midscript/config.toml` (profiles) and `lib/` (the user's
//!   script modules);
//! - state: `$XDG_STATE_HOME/midscript/known_hosts` (certificates accepted on first use),
//!   `history` (the REPL's) and `journal/` (documents deployed by `compose up`, per server
//!   and app, for rollback);
//! - cache: `$XDG_CACHE_HOME/midscript/methods/` (`core.get_methods` per server and version).

use std::path::{Path, PathBuf};

/// The three base directories; each is `None` when the platform has no home to put it in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirs {
    /// Configuration (profiles).
    pub config: Option<PathBuf>,
    /// State that should survive (known hosts).
    pub state: Option<PathBuf>,
    /// Data that can be rebuilt (the methods cache).
    pub cache: Option<PathBuf>,
}

impl Dirs {
    /// The directories for this user, read from the environment now.
    pub fn from_env() -> Dirs {
        let Some(p) = directories::ProjectDirs::from("", "", "midscript") else {
            return Dirs::default();
        };
        Dirs {
            config: Some(p.config_dir().to_path_buf()),
            // Not every platform has a state directory; the local data directory stands in.
            state: Some(
                p.state_dir()
                    .unwrap_or_else(|| p.data_local_dir())
                    .to_path_buf(),
            ),
            cache: Some(p.cache_dir().to_path_buf()),
        }
    }

    /// `config.toml`, where profiles live.
    pub fn config_file(&self) -> Option<PathBuf> {
        self.config.as_deref().map(|d| d.join("config.toml"))
    }

    /// `known_hosts`, where certificates accepted on first use are kept.
    pub fn known_hosts(&self) -> Option<PathBuf> {
        self.state.as_deref().map(|d| d.join("known_hosts"))
    }

    /// The folder of cached method catalogs.
    pub fn methods_cache(&self) -> Option<PathBuf> {
        self.cache.as_deref().map(|d| d.join("methods"))
    }

    /// The user's script modules (`import "name"` looks here after the script's folder).
    pub fn script_lib(&self) -> Option<PathBuf> {
        self.config.as_deref().map(|d| d.join("lib"))
    }

    /// The REPL's history file.
    pub fn history(&self) -> Option<PathBuf> {
        self.state.as_deref().map(|d| d.join("history"))
    }

    /// The compose deploy journal's folder.
    pub fn journal(&self) -> Option<PathBuf> {
        self.state.as_deref().map(|d| d.join("journal"))
    }
}

/// Warn on stderr, as ssh does, when a file holding a secret can be read by group or others.
/// Returns whether it warned.
pub fn warn_if_exposed(path: &Path, what: &str) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        if let Ok(meta) = std::fs::metadata(path) {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                crate::output::warn(&format!(
                    "midscript: warning: {} holds {what} and is readable by others (mode {mode:04o}); \
                     restrict it with: chmod 600 {}",
                    path.display(),
                    path.display()
                ));
                return true;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = (path, what);
    false
}

/// Create `path`'s parent folders, private to this user where the platform allows.
pub fn create_parent(path: &Path) -> std::io::Result<()> {
    let Some(parent) = path.parent() else {
        return Ok(());
    };
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(parent)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn exposed_secrets_are_reported() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("key");
        std::fs::write(&f, "1-abc").unwrap();
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(!warn_if_exposed(&f, "an API key"));
        std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o640)).unwrap();
        assert!(warn_if_exposed(&f, "an API key"));
    }
}
