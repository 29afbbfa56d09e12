//! Files the NAS needs: the files of `secrets:` and `configs:` (`file:`, and `environment:`
//! turned into a file) and single-file bind mounts are uploaded to the app's folder under the
//! dataset root, and the document points at them (docs/apps.md §1.13).
//!
//! Whether a file on the NAS is up to date is told by a fingerprint kept in the document itself,
//! under `x-midscript: {files: {<path on the NAS>: <fingerprint>}}` (TrueNAS keeps `x-*` keys):
//! a changed file is a changed document, which `diff` shows and `up` applies, and an unchanged
//! one is not sent again. Anyone who may read the app's configuration (`APPS_READ`) can read
//! these fingerprints, so a secret's is a salted PBKDF2 hash (like a stored password), never a
//! bare digest; other files get a SHA-256. Fingerprints of secrets are masked in diffs.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use ring::{digest, pbkdf2, rand::SecureRandom};
use serde::Serialize;
use serde_json::{Map, Value, json};

use super::error::ComposeError;
use super::paths::{BindMount, MountKind};

/// The top-level extension key that holds the fingerprints.
pub const EXTENSION: &str = "x-midscript";

/// The biggest file sent in one `filesystem.file_receive` message: the message may hold
/// 2 097 152 characters, and base64 makes 4 characters of 3 bytes (the rest is headroom for
/// the path and the frame).
pub const MAX_FILE: usize = 1_500_000;

/// How a secret's fingerprint starts.
pub const SECRET_PREFIX: &str = "pbkdf2-sha256:";
const PBKDF2_ROUNDS: u32 = 100_000;

/// One file to put on the NAS.
#[derive(Debug, Clone, Serialize)]
pub struct Upload {
    /// The service, or `secrets.<name>` / `configs.<name>`.
    pub owner: String,
    /// Where it comes from: the local file, or `environment: VAR` for a secret or config made
    /// from a variable.
    pub source: String,
    /// The absolute path on the NAS.
    pub remote: String,
    /// A secret: its content and fingerprint are never shown.
    pub secret: bool,
    /// Bytes.
    pub size: usize,
    /// Permission bits to give it on the NAS: the local file's, without write access for group
    /// and others (0444 for values from the environment).
    pub mode: u32,
    /// The content.
    #[serde(skip)]
    pub content: Vec<u8>,
}

impl Upload {
    /// Does `fingerprint` describe this file's content?
    pub fn matches(&self, fingerprint: &str) -> bool {
        if let Some(rest) = fingerprint.strip_prefix(SECRET_PREFIX) {
            let parts: Vec<&str> = rest.split(':').collect();
            let [rounds, salt, hash] = parts[..] else {
                return false;
            };
            let (Ok(rounds), Ok(salt), Ok(hash)) =
                (rounds.parse::<u32>(), B64.decode(salt), B64.decode(hash))
            else {
                return false;
            };
            let Some(rounds) = std::num::NonZeroU32::new(rounds) else {
                return false;
            };
            return pbkdf2::verify(
                pbkdf2::PBKDF2_HMAC_SHA256,
                rounds,
                &salt,
                &self.content,
                &hash,
            )
            .is_ok();
        }
        !self.secret && fingerprint == self.digest()
    }

    fn digest(&self) -> String {
        let d = digest::digest(&digest::SHA256, &self.content);
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("sha256:{hex}")
    }

    /// A new fingerprint: SHA-256 for a plain file, salted PBKDF2 for a secret.
    pub fn fingerprint(&self) -> String {
        if !self.secret {
            return self.digest();
        }
        let mut salt = [0u8; 16];
        // SystemRandom only fails when the OS has no randomness; a zero salt is still a
        // correct (if weaker) fingerprint.
        let _ = ring::rand::SystemRandom::new().fill(&mut salt);
        let rounds = std::num::NonZeroU32::new(PBKDF2_ROUNDS).expect("non-zero");
        let mut hash = [0u8; 32];
        pbkdf2::derive(
            pbkdf2::PBKDF2_HMAC_SHA256,
            rounds,
            &salt,
            &self.content,
            &mut hash,
        );
        format!(
            "{SECRET_PREFIX}{PBKDF2_ROUNDS}:{}:{}",
            B64.encode(salt),
            B64.encode(hash)
        )
    }
}

/// The fingerprints a document carries, by path on the NAS.
pub fn fingerprints(doc: &Value) -> BTreeMap<String, String> {
    doc.get(EXTENSION)
        .and_then(|x| x.get("files"))
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .filter_map(|(k, v)| v.as_str().map(|s| (k.clone(), s.to_owned())))
                .collect()
        })
        .unwrap_or_default()
}

/// Write `files` as the document's fingerprints (removing the key when there are none).
pub fn set_fingerprints(doc: &mut Value, files: &BTreeMap<String, String>) {
    let Some(m) = doc.as_object_mut() else {
        return;
    };
    if files.is_empty() {
        m.remove(EXTENSION);
        return;
    }
    let files: Map<String, Value> = files
        .iter()
        .map(|(k, v)| (k.clone(), Value::String(v.clone())))
        .collect();
    m.insert(EXTENSION.into(), json!({ "files": files }));
}

/// The uploads of the single-file mounts, `file:` secrets and configs (each local file read)
/// and of the values of `environment:` secrets and configs ([`MountKind::Value`]). A secret or
/// config file that does not exist here is not an error (`docker compose config` does not
/// need it either): it gets a warning in `warnings`, and nothing is uploaded for it.
pub fn file_uploads(
    mounts: &[BindMount],
    warnings: &mut Vec<String>,
) -> Result<Vec<Upload>, ComposeError> {
    let mut out = Vec::new();
    for m in mounts {
        let (source, content, mode) = match m.kind {
            MountKind::Directory => continue,
            MountKind::Value => {
                let value = m.content.clone().unwrap_or_default();
                (m.written.clone(), value.into_bytes(), 0o444)
            }
            MountKind::File => {
                let read = |e: std::io::Error| ComposeError::Read {
                    path: m.local.clone(),
                    source: e,
                };
                let meta = match std::fs::metadata(&m.local) {
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                        warnings.push(format!(
                            "{} ({}) does not exist here, so it is not uploaded: the app needs it at {} on the NAS",
                            m.written, m.owner, m.remote
                        ));
                        continue;
                    }
                    meta => meta.map_err(read)?,
                };
                if !meta.is_file() {
                    return Err(ComposeError::Options(format!(
                        "{} ({}, for {}) is not a file",
                        m.local.display(),
                        m.written,
                        m.owner
                    )));
                }
                let content = std::fs::read(&m.local).map_err(read)?;
                (m.local.display().to_string(), content, local_mode(&meta))
            }
        };
        if content.len() > MAX_FILE {
            return Err(ComposeError::UploadTooLarge {
                path: m.local.clone(),
                size: content.len(),
                limit: MAX_FILE,
                remote: m.remote.clone(),
            });
        }
        out.push(Upload {
            owner: m.owner.clone(),
            source,
            remote: m.remote.clone(),
            secret: m.owner.starts_with("secrets."),
            size: content.len(),
            mode,
            content,
        });
    }
    Ok(out)
}

fn local_mode(meta: &std::fs::Metadata) -> u32 {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        meta.permissions().mode() & 0o755
    }
    #[cfg(not(unix))]
    {
        if meta.permissions().readonly() {
            0o444
        } else {
            0o644
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(secret: bool, content: &[u8]) -> Upload {
        Upload {
            owner: "secrets.s".into(),
            source: "./s.txt".into(),
            remote: "/mnt/tank/apps/a/s.txt".into(),
            secret,
            size: content.len(),
            mode: 0o644,
            content: content.to_vec(),
        }
    }

    #[test]
    fn secret_fingerprints_are_salted_and_verify() {
        let u = upload(true, b"hunter2");
        let a = u.fingerprint();
        let b = u.fingerprint();
        assert!(a.starts_with(SECRET_PREFIX), "{a}");
        assert_ne!(a, b, "a fresh salt each time");
        assert!(!a.contains("hunter2"));
        assert!(u.matches(&a) && u.matches(&b));
        assert!(!upload(true, b"hunter3").matches(&a));
        for broken in [
            "pbkdf2-sha256:0:AA==:AA==",
            "pbkdf2-sha256:x",
            "pbkdf2-sha256:1:!:!",
        ] {
            assert!(!u.matches(broken), "{broken}");
        }
        // A plain digest never stands for a secret (it could be guessed offline).
        let plain = upload(false, b"hunter2").fingerprint();
        assert!(!u.matches(&plain));
    }

    #[test]
    fn plain_fingerprints_are_sha256() {
        let u = upload(false, b"abc");
        assert_eq!(
            u.fingerprint(),
            "sha256:ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        assert!(u.matches(&u.fingerprint()));
        assert!(!upload(false, b"abd").matches(&u.fingerprint()));
    }

    #[test]
    fn fingerprints_round_trip_through_the_document() {
        let mut doc = json!({"services": {}});
        let files = BTreeMap::from([("/a".to_owned(), "sha256:00".to_owned())]);
        set_fingerprints(&mut doc, &files);
        assert_eq!(doc[EXTENSION]["files"]["/a"], "sha256:00");
        assert_eq!(fingerprints(&doc), files);
        set_fingerprints(&mut doc, &BTreeMap::new());
        assert_eq!(doc, json!({"services": {}}));
    }
}
