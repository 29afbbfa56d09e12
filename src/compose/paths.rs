//! Relative host paths → absolute paths on a dataset.
//!
//! On the server, compose runs in a hidden directory
//! (`/mnt/.ix-apps/app_configs/<app>/versions/1.0.0/templates/rendered`), so `./data` would
//! land there and be deleted by `app.delete` (docs/apps.md §1.12). Every relative bind
//! mount (short `./x:/y` and long `{type: bind, source: ./x}` syntax, directories and single
//! files) and every relative `file:` of top-level `secrets:`/`configs:` is rewritten to
//! `<dataset root>/<app>/<path relative to the project directory>`. Without a dataset root such
//! paths are refused, with that reason.

use std::path::{Component, Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

use super::error::{Place, Problem};
use super::load::{pointer_index, pointer_key};

/// What a rewritten host path is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum MountKind {
    /// A directory (also when it does not exist locally: docker would create a directory).
    Directory,
    /// A single file (it exists locally as a file): it must be copied to the NAS.
    File,
    /// A file made from a value (a secret or config with `environment: VAR`): compose on the
    /// NAS would read VAR from its own environment, where it is not set, so the value is
    /// written to `remote` (see [`BindMount::content`]) and the document points there.
    Value,
}

/// One rewritten host path.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BindMount {
    /// The service (or `secrets.<name>` / `configs.<name>`).
    pub owner: String,
    /// The path as written, e.g. `./data/postgres`.
    pub written: String,
    /// The local path it means (empty for [`MountKind::Value`]).
    pub local: PathBuf,
    /// The absolute path on the NAS.
    pub remote: String,
    /// Directory, file or value.
    pub kind: MountKind,
    /// For [`MountKind::Value`]: the file's content (a secret: never printed or serialized).
    #[serde(skip)]
    pub content: Option<String>,
}

/// Is this short-syntax volume source a path relative to the project directory (as compose
/// reads it)? Without `./` or `../` it is a named volume.
pub fn is_relative(source: &str) -> bool {
    source == "." || source == ".." || source.starts_with("./") || source.starts_with("../")
}

/// Is this path (a long-syntax bind `source:` or a secret/config `file:`, where compose reads
/// every non-absolute path as relative to the project directory) relative?
pub fn is_relative_path(source: &str) -> bool {
    !source.is_empty() && !source.starts_with('/') && !source.starts_with('~')
}

/// `C:\x` or `C:/x`: compose reads it as an absolute Windows path.
fn is_windows_path(p: &str) -> bool {
    let b = p.as_bytes();
    b.len() >= 3 && b[0].is_ascii_alphabetic() && b[1] == b':' && (b[2] == b'\\' || b[2] == b'/')
}

/// `a/./b/../c` → `a/c`; `None` when it climbs out of the project directory.
fn normalize(rel: &str) -> Option<String> {
    let mut parts: Vec<String> = Vec::new();
    for c in Path::new(rel).components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::Normal(s) => parts.push(s.to_string_lossy().into_owned()),
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    Some(parts.join("/"))
}

/// Where a host path is written, which decides what "relative" means and what it points at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    /// A short-syntax volume `SRC:DST`: relative only with `./` or `../` (else a named volume).
    ShortVolume,
    /// A long-syntax bind `source:`: every non-absolute path is relative.
    LongBind,
    /// A secret's or config's `file:`: every non-absolute path is relative; always a file.
    File,
}

/// The rewriting context.
pub struct Rewriter<'a> {
    /// The project directory (relative paths are relative to it).
    pub project_dir: &'a Path,
    /// The app name.
    pub app: &'a str,
    /// The dataset root, e.g. `/mnt/tank/apps`.
    pub root: Option<&'a str>,
    /// Where a compose path is, for messages.
    pub place: &'a dyn Fn(&str) -> Place,
}

impl Rewriter<'_> {
    fn rewrite(
        &self,
        written: &str,
        owner: &str,
        pointer: &str,
        role: Role,
        mounts: &mut Vec<BindMount>,
        problems: &mut Vec<Problem>,
    ) -> Option<String> {
        let problem = |reason: String| Problem {
            place: (self.place)(pointer),
            path: super::load::dotted(pointer),
            reason,
        };
        if written.starts_with('~') {
            problems.push(problem(format!(
                "{written:?}: ~ would be the home directory of the middleware on the NAS; use a path relative to the project (with --dataset-root) or an absolute path"
            )));
            return None;
        }
        if is_windows_path(written) {
            problems.push(problem(format!(
                "{written:?} is a Windows path (compose keeps it as it is); the NAS has no drive letters: use a path relative to the project (with --dataset-root) or an absolute path on the NAS"
            )));
            return None;
        }
        let relative = if role == Role::ShortVolume {
            is_relative(written)
        } else {
            is_relative_path(written)
        };
        if !relative {
            return None;
        }
        let Some(root) = self.root else {
            problems.push(problem(format!(
                "{written:?} is relative: on TrueNAS it would resolve inside the app's hidden directory under /mnt/.ix-apps and be deleted with the app; pass --dataset-root /mnt/POOL/DATASET to keep it at /mnt/POOL/DATASET/{}/…, or write an absolute path",
                self.app
            )));
            return None;
        };
        let Some(rel) = normalize(written) else {
            problems.push(problem(format!(
                "{written:?} leaves the project directory; only paths inside it can be placed on the dataset"
            )));
            return None;
        };
        let remote = if rel.is_empty() {
            format!("{}/{}", root.trim_end_matches('/'), self.app)
        } else {
            format!("{}/{}/{rel}", root.trim_end_matches('/'), self.app)
        };
        let local = self.project_dir.join(&rel);
        let kind = if role == Role::File || local.is_file() {
            MountKind::File
        } else {
            MountKind::Directory
        };
        if !mounts.iter().any(|m| m.remote == remote) {
            mounts.push(BindMount {
                owner: owner.to_owned(),
                written: written.to_owned(),
                local,
                remote: remote.clone(),
                kind,
                content: None,
            });
        }
        Some(remote)
    }
}

/// Rewrite relative host paths in place; returns the mounts, and pushes problems for paths
/// that cannot be rewritten.
pub fn rewrite_paths(
    doc: &mut Value,
    rw: &Rewriter<'_>,
    problems: &mut Vec<Problem>,
) -> Vec<BindMount> {
    let mut mounts = Vec::new();
    if let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) {
        for (name, svc) in services.iter_mut() {
            let Some(vols) = svc.get_mut("volumes").and_then(Value::as_array_mut) else {
                continue;
            };
            let base = pointer_key(&pointer_key("/services", name), "volumes");
            for (i, v) in vols.iter_mut().enumerate() {
                let pointer = pointer_index(&base, i);
                match v {
                    Value::String(s) => {
                        let Some((source, rest)) = s.split_once(':') else {
                            continue;
                        };
                        if let Some(remote) = rw.rewrite(
                            source,
                            name,
                            &pointer,
                            Role::ShortVolume,
                            &mut mounts,
                            problems,
                        ) {
                            *s = format!("{remote}:{rest}");
                        }
                    }
                    Value::Object(m) => {
                        let ty = m.get("type").and_then(Value::as_str);
                        if !matches!(ty, Some("bind") | None) {
                            continue;
                        }
                        let Some(source) = m.get("source").and_then(Value::as_str) else {
                            continue;
                        };
                        let source = source.to_owned();
                        if let Some(remote) = rw.rewrite(
                            &source,
                            name,
                            &pointer,
                            Role::LongBind,
                            &mut mounts,
                            problems,
                        ) {
                            m.insert("source".into(), Value::String(remote));
                        }
                    }
                    _ => {}
                }
            }
        }
    }
    for section in ["secrets", "configs"] {
        let Some(entries) = doc.get_mut(section).and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, entry) in entries.iter_mut() {
            let Some(m) = entry.as_object_mut() else {
                continue;
            };
            let Some(file) = m.get("file").and_then(Value::as_str).map(str::to_owned) else {
                continue;
            };
            let pointer = pointer_key(&pointer_key(&format!("/{section}"), name), "file");
            let owner = format!("{section}.{name}");
            if let Some(remote) =
                rw.rewrite(&file, &owner, &pointer, Role::File, &mut mounts, problems)
            {
                m.insert("file".into(), Value::String(remote));
            }
        }
    }
    mounts
}

/// Secrets and configs with `environment: VAR`: the value of VAR (read here, with the
/// project's variables) becomes a file at `<root>/<app>/.<secrets|configs>/<name>`, and the
/// entry points at it with `file:`. Without a dataset root, or with VAR unset, it is refused.
pub fn environment_sources(
    doc: &mut Value,
    rw: &Rewriter<'_>,
    lookup: &dyn super::interpolate::Lookup,
    mounts: &mut Vec<BindMount>,
    problems: &mut Vec<Problem>,
) {
    for section in ["secrets", "configs"] {
        let Some(entries) = doc.get_mut(section).and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, entry) in entries.iter_mut() {
            let Some(m) = entry.as_object_mut() else {
                continue;
            };
            let Some(var) = m
                .get("environment")
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                continue;
            };
            let pointer = pointer_key(&pointer_key(&format!("/{section}"), name), "environment");
            let problem = |reason: String| Problem {
                place: (rw.place)(&pointer),
                path: super::load::dotted(&pointer),
                reason,
            };
            let Some((value, _)) = lookup.get(&var) else {
                problems.push(problem(format!(
                    "variable {var} is not set here; compose on the NAS reads it from the middleware's environment, where it is not set either"
                )));
                continue;
            };
            let Some(root) = rw.root else {
                problems.push(problem(format!(
                    "compose on the NAS would read {var} from the middleware's environment, where it is not set; pass --dataset-root /mnt/POOL/DATASET so its value is written to a file there"
                )));
                continue;
            };
            let remote = format!(
                "{}/{}/.{section}/{name}",
                root.trim_end_matches('/'),
                rw.app
            );
            m.shift_remove("environment");
            m.insert("file".into(), Value::String(remote.clone()));
            mounts.push(BindMount {
                owner: format!("{section}.{name}"),
                written: format!("environment: {var}"),
                local: PathBuf::new(),
                remote,
                kind: MountKind::Value,
                content: Some(value),
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(doc: Value, root: Option<&str>) -> (Value, Vec<BindMount>, Vec<Problem>) {
        let mut doc = doc;
        let place = |_: &str| Place::file(Path::new("compose.yaml"));
        let rw = Rewriter {
            project_dir: Path::new("/nonexistent/project"),
            app: "inv",
            root,
            place: &place,
        };
        let mut problems = Vec::new();
        let m = rewrite_paths(&mut doc, &rw, &mut problems);
        (doc, m, problems)
    }

    #[test]
    fn short_and_long_syntax_are_rewritten() {
        let (doc, mounts, problems) = run(
            json!({"services": {"db": {"volumes": [
                "./data/postgres:/var/lib/postgresql/data",
                "./a/../b/./c:/c:ro",
                "named:/n",
                "/abs:/abs",
                {"type": "bind", "source": "./cfg", "target": "/cfg"},
                {"type": "volume", "source": "named", "target": "/v"},
                "/only-target"
            ]}}, "secrets": {"s": {"file": "./secret.txt"}}}),
            Some("/mnt/tank/apps/"),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            doc,
            json!({"services": {"db": {"volumes": [
                "/mnt/tank/apps/inv/data/postgres:/var/lib/postgresql/data",
                "/mnt/tank/apps/inv/b/c:/c:ro",
                "named:/n",
                "/abs:/abs",
                {"type": "bind", "source": "/mnt/tank/apps/inv/cfg", "target": "/cfg"},
                {"type": "volume", "source": "named", "target": "/v"},
                "/only-target"
            ]}}, "secrets": {"s": {"file": "/mnt/tank/apps/inv/secret.txt"}}})
        );
        assert_eq!(mounts.len(), 4);
        assert_eq!(mounts[3].kind, MountKind::File);
    }

    #[test]
    fn paths_without_dot_slash_are_relative_where_compose_says_so() {
        let (doc, mounts, problems) = run(
            json!({"services": {"db": {"volumes": [
                "named:/n",
                {"type": "bind", "source": "data", "target": "/data"}
            ]}}, "secrets": {"s": {"file": "my-secret.txt"}}, "configs": {"c": {"file": "conf/my-config.txt"}}}),
            Some("/mnt/tank/apps"),
        );
        assert!(problems.is_empty(), "{problems:?}");
        assert_eq!(
            doc,
            json!({"services": {"db": {"volumes": [
                "named:/n",
                {"type": "bind", "source": "/mnt/tank/apps/inv/data", "target": "/data"}
            ]}}, "secrets": {"s": {"file": "/mnt/tank/apps/inv/my-secret.txt"}},
            "configs": {"c": {"file": "/mnt/tank/apps/inv/conf/my-config.txt"}}})
        );
        assert_eq!(mounts.len(), 3);
        let (_, _, problems) = run(
            json!({"services": {"db": {"volumes": [{"type": "bind", "source": "data", "target": "/d"}]}},
                "secrets": {"s": {"file": "s.txt"}}}),
            None,
        );
        assert_eq!(problems.len(), 2, "{problems:?}");
    }

    #[test]
    fn secrets_from_the_environment_become_files() {
        use crate::compose::interpolate::Variables;
        let vars = Variables {
            environment: Some([("TOKEN".to_owned(), "s3cret".to_owned())].into()),
            ..Variables::default()
        };
        let place = |_: &str| Place::file(Path::new("compose.yaml"));
        let mut doc = json!({"secrets": {"token": {"environment": "TOKEN"}, "gone": {"environment": "UNSET"}},
            "configs": {"c": {"environment": "TOKEN"}}});
        let (mut mounts, mut problems) = (Vec::new(), Vec::new());
        let rw = Rewriter {
            project_dir: Path::new("/p"),
            app: "inv",
            root: Some("/mnt/t"),
            place: &place,
        };
        environment_sources(&mut doc, &rw, &vars, &mut mounts, &mut problems);
        assert_eq!(
            doc["secrets"]["token"],
            json!({"file": "/mnt/t/inv/.secrets/token"})
        );
        assert_eq!(
            doc["configs"]["c"],
            json!({"file": "/mnt/t/inv/.configs/c"})
        );
        assert_eq!(mounts.len(), 2);
        assert_eq!(mounts[0].kind, MountKind::Value);
        assert_eq!(mounts[0].content.as_deref(), Some("s3cret"));
        assert!(!serde_json::to_string(&mounts).unwrap().contains("s3cret"));
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].reason.contains("UNSET is not set"),
            "{}",
            problems[0]
        );
        let rw = Rewriter { root: None, ..rw };
        let mut doc = json!({"secrets": {"token": {"environment": "TOKEN"}}});
        let mut problems = Vec::new();
        environment_sources(&mut doc, &rw, &vars, &mut Vec::new(), &mut problems);
        assert!(
            problems[0].reason.contains("--dataset-root"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn windows_paths_are_refused() {
        let (_, _, problems) = run(
            json!({"services": {"t": {"volumes": [{"type": "bind", "source": "C:\\docker\\project", "target": "/t"}]}}}),
            Some("/mnt/t"),
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].reason.contains("Windows path"),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn relative_paths_need_a_dataset_root() {
        let (_, _, problems) = run(
            json!({"services": {"db": {"volumes": ["./data:/d"]}}}),
            None,
        );
        assert_eq!(problems.len(), 1);
        assert!(
            problems[0].reason.contains("--dataset-root"),
            "{}",
            problems[0]
        );
        assert!(problems[0].reason.contains("deleted with the app"));
        let (_, _, problems) = run(
            json!({"services": {"db": {"volumes": ["../outside:/d", "~/x:/y"]}}}),
            Some("/mnt/t"),
        );
        assert_eq!(problems.len(), 2);
        assert!(problems[0].reason.contains("leaves the project directory"));
    }
}
