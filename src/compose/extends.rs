//! `extends:` resolved locally, as docker compose resolves it (compose-spec "Extends"): a
//! service that extends another (in the same file, or in another local file) starts from a
//! copy of that service, and its own attributes are merged on top with the override rules
//! ([`super::merge`]). Extends are resolved per file, before the file is merged with the next.
//!
//! A service taken from another file keeps the meaning of its relative paths: its bind mount
//! sources and `env_file:` paths, relative to that file's folder, are rewritten relative to the
//! project folder (so `./data` in `base/common.yaml` becomes `./base/data`).

use std::path::{Component, Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{ComposeError, Place};
use super::interpolate::{Lookup, Report, interpolate_file};
use super::load::{self, SourceFile};
use super::merge::{clear_tagged, merge_documents};
use super::paths::{is_relative, is_relative_path};

/// Resolve every `extends:` of the services of `file` (already interpolated as `doc`).
pub fn apply_extends(
    doc: &mut Value,
    file: &SourceFile,
    project_dir: &Path,
    lookup: &dyn Lookup,
    report: &mut Report,
) -> Result<(), ComposeError> {
    let Some(services) = doc.get("services").and_then(Value::as_object) else {
        return Ok(());
    };
    if !services.values().any(|s| s.get("extends").is_some()) {
        return Ok(());
    }
    let ctx = Context {
        project_dir,
        lookup,
    };
    let names: Vec<String> = services.keys().cloned().collect();
    let mut resolved = services.clone();
    for name in names {
        let mut stack = Vec::new();
        let svc = ctx.resolve(&name, services, file, &mut stack, report)?;
        resolved.insert(name, svc);
    }
    doc["services"] = Value::Object(resolved);
    Ok(())
}

struct Context<'a> {
    project_dir: &'a Path,
    lookup: &'a dyn Lookup,
}

impl Context<'_> {
    /// The service `name` of `services` (from `file`) with its extends resolved.
    fn resolve(
        &self,
        name: &str,
        services: &Map<String, Value>,
        file: &SourceFile,
        stack: &mut Vec<(PathBuf, String)>,
        report: &mut Report,
    ) -> Result<Value, ComposeError> {
        let pointer = load::pointer_key("/services", name);
        let invalid = |pointer: &str, message: String| ComposeError::Invalid {
            place: file.place(pointer, true),
            message,
        };
        let svc = services.get(name).cloned().unwrap_or(Value::Null);
        let Some(extends) = svc.get("extends").cloned() else {
            return Ok(svc);
        };
        let ext_pointer = load::pointer_key(&pointer, "extends");
        let (base_name, base_file) = match &extends {
            Value::String(s) => (s.clone(), None),
            Value::Object(m) => {
                let Some(s) = m.get("service").and_then(Value::as_str) else {
                    return Err(invalid(
                        &ext_pointer,
                        format!("services.{name}.extends needs service:"),
                    ));
                };
                (
                    s.to_owned(),
                    m.get("file").and_then(Value::as_str).map(str::to_owned),
                )
            }
            _ => {
                return Err(invalid(
                    &ext_pointer,
                    format!("services.{name}.extends must be a service name or {{service, file}}"),
                ));
            }
        };
        let key = (file.path.clone(), name.to_owned());
        if stack.contains(&key) {
            return Err(invalid(
                &ext_pointer,
                format!(
                    "services.{name}.extends makes a cycle: {}",
                    stack
                        .iter()
                        .map(|(f, s)| format!("{s} ({})", f.display()))
                        .collect::<Vec<_>>()
                        .join(" → ")
                ),
            ));
        }
        stack.push(key);
        let base = match base_file {
            None => {
                if !services.contains_key(&base_name) {
                    return Err(invalid(
                        &ext_pointer,
                        format!(
                            "services.{name} extends service {base_name:?}, which is not defined in {}",
                            file.path.display()
                        ),
                    ));
                }
                self.resolve(&base_name, services, file, stack, report)?
            }
            Some(f) => {
                let dir = file.path.parent().unwrap_or(Path::new("."));
                let other_path = dir.join(&f);
                let other = load::load_file(&other_path)?;
                let value = interpolate_file(&other, self.lookup, report)?;
                let Some(other_services) = value.get("services").and_then(Value::as_object) else {
                    return Err(invalid(
                        &ext_pointer,
                        format!("{} has no services:", other_path.display()),
                    ));
                };
                if !other_services.contains_key(&base_name) {
                    return Err(invalid(
                        &ext_pointer,
                        format!(
                            "services.{name} extends service {base_name:?}, which is not defined in {}",
                            other_path.display()
                        ),
                    ));
                }
                let mut base = self.resolve(&base_name, other_services, &other, stack, report)?;
                rebase_paths(
                    &mut base,
                    other_path.parent().unwrap_or(Path::new(".")),
                    self.project_dir,
                )
                .map_err(|message| ComposeError::Invalid {
                    place: Place::file(&other_path),
                    message,
                })?;
                base
            }
        };
        stack.pop();
        let mut merged = serde_json::json!({"services": {name: base}});
        // The file's !reset / !override tags apply to the copy of the base service too.
        clear_tagged(&mut merged, &file.tagged);
        let mut own = svc;
        if let Some(m) = own.as_object_mut() {
            m.shift_remove("extends");
        }
        merge_documents(&mut merged, serde_json::json!({"services": {name: own}}));
        Ok(merged["services"][name].take())
    }
}

/// `a/./b/../c` → `a/c` (lexically).
fn lexical(p: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// `path` relative to `base` as `./…` or `../…` (both made absolute first).
fn relative_to(path: &Path, base: &Path) -> Result<String, String> {
    let abs = |p: &Path| -> Result<PathBuf, String> {
        if p.is_absolute() {
            Ok(lexical(p))
        } else {
            std::env::current_dir()
                .map(|d| lexical(&d.join(p)))
                .map_err(|e| format!("no current directory: {e}"))
        }
    };
    let (path, base) = (abs(path)?, abs(base)?);
    let p: Vec<_> = path.components().collect();
    let b: Vec<_> = base.components().collect();
    let common = p.iter().zip(&b).take_while(|(x, y)| x == y).count();
    let mut out = String::from(".");
    for _ in common..b.len() {
        out.push_str("/..");
    }
    for c in &p[common..] {
        out.push('/');
        out.push_str(&c.as_os_str().to_string_lossy());
    }
    Ok(out.replacen("./..", "..", 1))
}

/// Rewrite the relative bind sources and `env_file:` paths of a service taken from a file in
/// `from` so they mean the same from `project_dir`.
fn rebase_paths(svc: &mut Value, from: &Path, project_dir: &Path) -> Result<(), String> {
    let rebase = |p: &str| relative_to(&from.join(p), project_dir);
    if let Some(vols) = svc.get_mut("volumes").and_then(Value::as_array_mut) {
        for v in vols {
            match v {
                Value::String(s) => {
                    if let Some((src, rest)) = s.split_once(':')
                        && is_relative(src)
                    {
                        *s = format!("{}:{rest}", rebase(src)?);
                    }
                }
                Value::Object(m) => {
                    let bind = matches!(m.get("type").and_then(Value::as_str), Some("bind") | None);
                    if bind
                        && let Some(src) = m.get("source").and_then(Value::as_str)
                        && is_relative_path(src)
                    {
                        let r = rebase(src)?;
                        m.insert("source".into(), Value::String(r));
                    }
                }
                _ => {}
            }
        }
    }
    if let Some(env_file) = svc.get_mut("env_file") {
        let items: Vec<&mut Value> = match env_file {
            Value::Array(a) => a.iter_mut().collect(),
            other => vec![other],
        };
        for item in items {
            match item {
                Value::String(s) if is_relative_path(s) => *s = rebase(s)?,
                Value::Object(m) => {
                    if let Some(p) = m.get("path").and_then(Value::as_str)
                        && is_relative_path(p)
                    {
                        let r = rebase(p)?;
                        m.insert("path".into(), Value::String(r));
                    }
                }
                _ => {}
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::interpolate::Variables;
    use serde_json::json;

    fn resolve_in(dir: &Path, main: &str) -> Result<Value, ComposeError> {
        let src = load::parse(&dir.join("compose.yaml"), main.to_owned())?;
        let vars = Variables {
            environment: Some(Default::default()),
            ..Default::default()
        };
        let mut report = Report::default();
        let mut doc = interpolate_file(&src, &vars, &mut report)?;
        apply_extends(&mut doc, &src, dir, &vars, &mut report)?;
        Ok(doc)
    }

    #[test]
    fn same_file_and_other_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("base")).unwrap();
        std::fs::write(
            dir.path().join("base/common.yaml"),
            "services:\n  web:\n    image: nginx\n    environment: {A: '1'}\n    volumes: ['./html:/usr/share/nginx/html', {type: bind, source: conf, target: /c}]\n    env_file: web.env\n",
        )
        .unwrap();
        let doc = resolve_in(
            dir.path(),
            "services:\n  base:\n    image: i\n    ports: ['80:80']\n    environment: {X: x}\n  child:\n    extends: base\n    environment: {Y: y}\n  grandchild:\n    extends: {service: child}\n    ports: ['81:81']\n  web:\n    extends: {file: base/common.yaml, service: web}\n    environment: {B: '2'}\n",
        )
        .unwrap();
        assert_eq!(
            doc["services"]["child"],
            json!({"image": "i", "ports": ["80:80"], "environment": {"X": "x", "Y": "y"}})
        );
        assert_eq!(
            doc["services"]["grandchild"],
            json!({"image": "i", "ports": ["80:80", "81:81"], "environment": {"X": "x", "Y": "y"}})
        );
        assert_eq!(
            doc["services"]["web"],
            json!({"image": "nginx", "environment": {"A": "1", "B": "2"},
                "volumes": ["./base/html:/usr/share/nginx/html", {"type": "bind", "source": "./base/conf", "target": "/c"}],
                "env_file": "./base/web.env"})
        );
    }

    #[test]
    fn errors_name_the_place() {
        let dir = tempfile::tempdir().unwrap();
        let e = resolve_in(dir.path(), "services:\n  a:\n    extends: nope\n")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("compose.yaml:3:") && e.contains("\"nope\", which is not defined"),
            "{e}"
        );
        let e = resolve_in(
            dir.path(),
            "services:\n  a:\n    extends: b\n  b:\n    extends: a\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("cycle"), "{e}");
        let e = resolve_in(
            dir.path(),
            "services:\n  a:\n    extends: {file: missing.yaml, service: x}\n",
        )
        .unwrap_err()
        .to_string();
        assert!(e.contains("missing.yaml"), "{e}");
    }
}
