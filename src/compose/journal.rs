//! The local deploy journal: the last documents deployed per server and app, so a custom app
//! can be rolled back (the server keeps no history: custom apps are always version 1.0.0).
//!
//! Layout: `$XDG_STATE_HOME/midscript/journal/<server>/<app>/<seq>.json` (on Linux;
//! `~/.local/state/…` by default), one entry per create/update, the newest [`KEEP`] kept.
//! Each entry also keeps the files uploaded with its document (secrets, configs, single-file
//! mounts), so a rollback puts them back as they were. Documents and files hold secrets
//! (inlined `.env` values, secret files), so directories are created 0700 and files 0600,
//! written atomically.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;

use super::canonical::semantic_eq;
use super::error::ComposeError;
use super::uploads::Upload;

/// Entries kept per server and app.
pub const KEEP: usize = 20;

/// One deployed document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// 1, 2, 3… per server and app.
    pub seq: u64,
    /// When it was deployed (UTC, ISO 8601).
    pub time: String,
    /// `created`, `updated` or `rolled_back`.
    pub action: String,
    /// The `custom_compose_config` sent.
    pub document: Value,
    /// The files on the NAS that document points at.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<File>,
}

/// A file deployed with a document.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct File {
    /// What it is for (`secrets.<name>`, `configs.<name>`, a service).
    pub owner: String,
    /// Its path on the NAS.
    pub path: String,
    /// Its permission bits.
    pub mode: u32,
    /// A secret.
    pub secret: bool,
    /// The content, base64.
    pub content: String,
}

impl Entry {
    /// The files of this entry, to upload again; an entry that cannot be decoded is an error
    /// (the journal was edited or damaged).
    pub fn uploads(
        &self,
        journal: &Journal,
        server: &str,
        app: &str,
    ) -> Result<Vec<Upload>, ComposeError> {
        self.files
            .iter()
            .map(|f| {
                let content = B64.decode(&f.content).map_err(|e| {
                    jerr(
                        &journal
                            .app_dir(server, app)
                            .join(format!("{:06}.json", self.seq)),
                        format!("the file {} does not decode: {e}", f.path),
                    )
                })?;
                Ok(Upload {
                    owner: f.owner.clone(),
                    source: format!("deploy journal entry {}", self.seq),
                    remote: f.path.clone(),
                    secret: f.secret,
                    size: content.len(),
                    mode: f.mode,
                    content,
                })
            })
            .collect()
    }
}

/// A journal rooted at a directory.
#[derive(Debug, Clone)]
pub struct Journal {
    root: PathBuf,
}

fn jerr(path: &Path, e: impl std::fmt::Display) -> ComposeError {
    ComposeError::Journal {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// A file-name-safe key for a server URL: `wss://nas.local:443/api/current` → `nas.local_443`.
pub fn server_key(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let host = rest.split(['/', '?', '#']).next().unwrap_or(rest);
    let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
    let key: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    if key.is_empty() || key.chars().all(|c| c == '.') {
        "server".into()
    } else {
        key
    }
}

impl Journal {
    /// A journal in `root` (tests, scripts).
    pub fn at(root: impl Into<PathBuf>) -> Journal {
        Journal { root: root.into() }
    }

    /// The journal in the user's state directory.
    pub fn default_location() -> Result<Journal, ComposeError> {
        let root = crate::dirs::Dirs::from_env().journal().ok_or_else(|| {
            jerr(
                Path::new("~"),
                "no home directory to keep the deploy journal in",
            )
        })?;
        Ok(Journal::at(root))
    }

    /// The directory of one server and app.
    pub fn app_dir(&self, server: &str, app: &str) -> PathBuf {
        self.root.join(server_key(server)).join(app)
    }

    /// Every entry, oldest first.
    pub fn entries(&self, server: &str, app: &str) -> Result<Vec<Entry>, ComposeError> {
        let dir = self.app_dir(server, app);
        let read = match std::fs::read_dir(&dir) {
            Ok(r) => r,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(jerr(&dir, e)),
        };
        let mut out = Vec::new();
        for item in read {
            let path = item.map_err(|e| jerr(&dir, e))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            let text = std::fs::read_to_string(&path).map_err(|e| jerr(&path, e))?;
            let entry: Entry = serde_json::from_str(&text).map_err(|e| jerr(&path, e))?;
            out.push(entry);
        }
        out.sort_by_key(|e| e.seq);
        Ok(out)
    }

    /// Append a deployed document and its files; prunes to [`KEEP`] entries.
    pub fn record(
        &self,
        server: &str,
        app: &str,
        action: &str,
        document: &Value,
        files: &[Upload],
    ) -> Result<Entry, ComposeError> {
        let dir = self.app_dir(server, app);
        create_private_dir(&dir)?;
        let entries = self.entries(server, app)?;
        let seq = entries.last().map_or(1, |e| e.seq + 1);
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let entry = Entry {
            seq,
            time: crate::protocol::ejson::iso8601_utc(now_ms),
            action: action.to_owned(),
            document: document.clone(),
            files: files
                .iter()
                .map(|u| File {
                    owner: u.owner.clone(),
                    path: u.remote.clone(),
                    mode: u.mode,
                    secret: u.secret,
                    content: B64.encode(&u.content),
                })
                .collect(),
        };
        let path = dir.join(format!("{seq:06}.json"));
        let text = serde_json::to_string_pretty(&entry).map_err(|e| jerr(&path, e))?;
        write_private(&path, text.as_bytes())?;
        let excess = (entries.len() + 1).saturating_sub(KEEP);
        for old in entries.iter().take(excess) {
            let _ = std::fs::remove_file(dir.join(format!("{:06}.json", old.seq)));
        }
        Ok(entry)
    }

    /// The newest entry whose document differs from `current` (what runs now): the one a
    /// rollback restores. Rolling back twice therefore swaps back, like `cd -`.
    pub fn previous(
        &self,
        server: &str,
        app: &str,
        current: Option<&Value>,
    ) -> Result<Option<Entry>, ComposeError> {
        Ok(self
            .entries(server, app)?
            .into_iter()
            .rev()
            .find(|e| current.is_none_or(|c| !semantic_eq(c, &e.document))))
    }
}

fn create_private_dir(dir: &Path) -> Result<(), ComposeError> {
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| jerr(dir, e))
}

fn write_private(path: &Path, data: &[u8]) -> Result<(), ComposeError> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(&tmp).map_err(|e| jerr(&tmp, e))?;
    f.write_all(data).map_err(|e| jerr(&tmp, e))?;
    f.sync_all().map_err(|e| jerr(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| jerr(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn server_keys() {
        assert_eq!(server_key("wss://nas.local/api/current"), "nas.local");
        assert_eq!(
            server_key("ws://127.0.0.1:8080/api/current"),
            "127.0.0.1_8080"
        );
        assert_eq!(server_key("wss://[::1]:443/x"), "___1__443");
        assert_eq!(server_key("mock"), "mock");
        assert_eq!(server_key("ws://../x"), "server");
    }

    #[test]
    fn record_prune_and_previous() {
        let tmp = tempfile::tempdir().unwrap();
        let j = Journal::at(tmp.path());
        assert!(j.entries("s", "a").unwrap().is_empty());
        for i in 0..(KEEP + 3) {
            j.record("s", "a", "updated", &json!({"n": i}), &[])
                .unwrap();
        }
        let all = j.entries("s", "a").unwrap();
        assert_eq!(all.len(), KEEP);
        assert_eq!(all.last().unwrap().seq, (KEEP + 3) as u64);
        let prev = j
            .previous("s", "a", Some(&json!({"n": KEEP + 2})))
            .unwrap()
            .unwrap();
        assert_eq!(prev.document, json!({"n": KEEP + 1}));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let dir = j.app_dir("s", "a");
            let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o700);
            let f = dir.join(format!("{:06}.json", KEEP + 3));
            let mode = std::fs::metadata(f).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600);
        }
    }
}
