//! The cache of servers' method catalogs: one gzip-compressed `core.get_methods` result per
//! server (`host:port`) and TrueNAS version, under the user's cache folder
//! (`$XDG_CACHE_HOME/midscript/methods/<host_port>/<version>.json.gz`).

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde_json::Value;

use super::Catalog;
use crate::dirs::{Dirs, create_parent};

/// Where a catalog came from, for messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// The bundled TrueNAS 25.04 catalog.
    Bundled,
    /// A server's own catalog.
    Server {
        /// `host:port`.
        host: String,
        /// `system.version` as the server reported it.
        version: String,
    },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Bundled => f.write_str("the bundled TrueNAS 25.04 catalog"),
            Source::Server { host, version } => write!(f, "{host} (TrueNAS {version})"),
        }
    }
}

/// A file name made of `s`: letters, digits, `.`, `-` and `_` kept, anything else `_`.
fn file_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.trim_matches('.') {
        "" => "_".to_owned(),
        n => n.to_owned(),
    }
}

/// The cache file for `host` (`host:port`) at `version`, inside `cache_dir`.
pub fn cache_path(cache_dir: &Path, host: &str, version: &str) -> PathBuf {
    cache_dir
        .join(file_name(host))
        .join(format!("{}.json.gz", file_name(version)))
}

/// The cache file for `host` at `version` in the user's cache folder (`None` without a home).
pub fn user_cache_path(host: &str, version: &str) -> Option<PathBuf> {
    Dirs::from_env()
        .methods_cache()
        .map(|d| cache_path(&d, host, version))
}

/// The most recently written catalog under `cache_dir` (of any server and version), for
/// work that must not connect (shell completion); `None` when there is none that reads.
pub fn newest_cache(cache_dir: &Path) -> Option<Catalog> {
    let mut files: Vec<(std::time::SystemTime, PathBuf)> = std::fs::read_dir(cache_dir)
        .ok()?
        .flatten()
        .filter_map(|host| std::fs::read_dir(host.path()).ok())
        .flat_map(|versions| versions.flatten())
        .map(|f| f.path())
        .filter(|p| p.to_string_lossy().ends_with(".json.gz"))
        .filter_map(|p| Some((std::fs::metadata(&p).ok()?.modified().ok()?, p)))
        .collect();
    files.sort();
    files.iter().rev().find_map(|(_, p)| read_cache(p))
}

/// The catalog cached at `path`; `None` when missing, unreadable, corrupt or empty.
pub fn read_cache(path: &Path) -> Option<Catalog> {
    let mut gz = Vec::new();
    std::fs::File::open(path).ok()?.read_to_end(&mut gz).ok()?;
    Catalog::from_gzip(&gz).ok().filter(|c| !c.is_empty())
}

/// Cache `methods` (a `core.get_methods` result) at `path`, atomically (a temporary file
/// renamed into place), in folders private to the user.
pub fn write_cache(path: &Path, methods: &Value) -> std::io::Result<()> {
    create_parent(path)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&tmp)?, flate2::Compression::default());
    enc.write_all(methods.to_string().as_bytes())?;
    enc.finish()?.sync_all()?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn cache_files_are_named_by_host_and_version() {
        let p = cache_path(Path::new("/c"), "[::1]:443", "25.10.1");
        assert_eq!(p, Path::new("/c/___1__443/25.10.1.json.gz"));
        assert_eq!(
            cache_path(Path::new("/c"), "nas:443", "../x"),
            Path::new("/c/nas_443/_x.json.gz")
        );
    }

    #[test]
    fn the_cache_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "nas:443", "25.04.2");
        let small = json!({"core.ping": {"description": "Ping.", "job": false, "accepts": [], "returns": []}});
        write_cache(&path, &small).unwrap();
        let c = read_cache(&path).unwrap();
        assert_eq!(c.len(), 1);
        std::fs::write(&path, b"not gzip").unwrap();
        assert!(read_cache(&path).is_none());
    }
}
