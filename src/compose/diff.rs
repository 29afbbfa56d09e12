//! A per-service semantic diff between what runs on the NAS (`app.config`) and the resolved
//! project, with secrets masked.
//!
//! Masked unless asked otherwise, by the one rule every output uses
//! ([`redact::looks_secret`]): values under keys that look secret (PASSWORD, PASS, SECRET,
//! TOKEN, KEY, …), values of variables with such names wherever they were interpolated, and
//! passwords inside URLs. Harmless `.env` values (an image tag) show as they are. When one side
//! of a change is masked the other side is too, so an old password never shows next to a
//! masked new one.

use std::collections::BTreeSet;

use serde::Serialize;
use serde_json::Value;

use super::canonical::semantic_eq;
use crate::protocol::redact;

/// What a masked value is shown as.
pub const MASK: &str = redact::REDACTED;

/// Values to mask: the resolved strings that contain values of secret-named variables, and
/// any string containing one of those raw values (so an old value on the NAS that embeds a
/// secret is masked too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Secrets {
    values: BTreeSet<String>,
    raw: BTreeSet<String>,
}

/// Raw values shorter than this are matched whole only (`1`, `on` would mask everything).
const MIN_RAW: usize = 4;

impl Secrets {
    /// From the (escaped) resolved strings and the (escaped) raw variable values.
    pub fn new(values: BTreeSet<String>, raw: BTreeSet<String>) -> Secrets {
        Secrets { values, raw }
    }

    /// Is this string secret-sourced (or a secret file's fingerprint)?
    pub fn contains(&self, s: &str) -> bool {
        s.starts_with(super::uploads::SECRET_PREFIX)
            || self.values.contains(s)
            || self.raw.contains(s)
            || self
                .raw
                .iter()
                .any(|r| r.chars().count() >= MIN_RAW && s.contains(r.as_str()))
    }

    /// A copy of `doc` with every secret masked: strings that hold values of secret-named
    /// variables, and what [`redact::redact_keys`] masks (string values of secret-looking
    /// keys, `NAME=value` entries with such names, passwords inside URLs).
    pub fn mask_document(&self, doc: &Value) -> Value {
        let mut out = self.mask_tainted(doc);
        redact::redact_keys(&mut out);
        out
    }

    fn mask_tainted(&self, doc: &Value) -> Value {
        match doc {
            Value::String(s) if self.contains(s) => Value::String(MASK.into()),
            Value::Array(a) => Value::Array(a.iter().map(|v| self.mask_tainted(v)).collect()),
            Value::Object(m) => Value::Object(
                m.iter()
                    .map(|(k, v)| (k.clone(), self.mask_tainted(v)))
                    .collect(),
            ),
            other => other.clone(),
        }
    }

    fn tainted(&self, v: &Value) -> bool {
        match v {
            Value::String(s) => self.contains(s),
            Value::Array(a) => a.iter().any(|x| self.tainted(x)),
            Value::Object(m) => m.values().any(|x| self.tainted(x)),
            _ => false,
        }
    }
}

/// One changed value. `None` means absent on that side.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    /// Dotted path inside the service (or the document for top-level keys).
    pub path: String,
    /// On the NAS.
    pub old: Option<Value>,
    /// In the project.
    pub new: Option<Value>,
}

/// How a service changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ServiceStatus {
    /// New service.
    Added,
    /// Gone from the project.
    Removed,
    /// Present on both sides with differences.
    Changed,
}

/// The changes of one service.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ServiceDiff {
    /// The service name.
    pub service: String,
    /// Added, removed or changed.
    pub status: ServiceStatus,
    /// Its image (new side, or old side when removed).
    pub image: Option<String>,
    /// Value changes (for changed services).
    pub changes: Vec<Change>,
}

/// The whole diff.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diff {
    /// Whether the app exists on the NAS.
    pub exists: bool,
    /// Per-service changes, in project order (removed services last).
    pub services: Vec<ServiceDiff>,
    /// Changes outside `services` (volumes, networks, x-portals, …).
    pub other: Vec<Change>,
    /// Things to know about these changes.
    pub notes: Vec<String>,
}

impl Diff {
    /// Nothing differs.
    pub fn is_empty(&self) -> bool {
        self.exists && self.services.is_empty() && self.other.is_empty()
    }

    /// Number of changed values (added/removed services count one each).
    pub fn len(&self) -> usize {
        self.other.len()
            + self
                .services
                .iter()
                .map(|s| s.changes.len().max(1))
                .sum::<usize>()
    }

    /// Human-readable lines.
    pub fn render(&self) -> String {
        let mut out = Vec::new();
        if !self.exists {
            out.push("(the app does not exist on the NAS: it will be created)".to_owned());
        }
        for s in &self.services {
            let image = s
                .image
                .as_deref()
                .map(|i| format!(" (image {i})"))
                .unwrap_or_default();
            match s.status {
                ServiceStatus::Added => out.push(format!("+ {}{image}", s.service)),
                ServiceStatus::Removed => out.push(format!("- {}{image}", s.service)),
                ServiceStatus::Changed => {
                    out.push(format!("~ {}", s.service));
                    for c in &s.changes {
                        out.push(format!("    {}", render_change(c)));
                    }
                }
            }
        }
        for c in &self.other {
            out.push(format!("~ {}", render_change(c)));
        }
        for n in &self.notes {
            out.push(format!("note: {n}"));
        }
        if self.is_empty() {
            out.push("no changes".to_owned());
        }
        out.join("\n")
    }
}

fn show(v: &Option<Value>) -> String {
    match v {
        None => "(unset)".to_owned(),
        Some(v) => v.to_string(),
    }
}

fn render_change(c: &Change) -> String {
    format!("{}: {} -> {}", c.path, show(&c.old), show(&c.new))
}

/// Compare what runs (`current`, from `app.config`; `None` when the app does not exist) with
/// the desired document.
pub fn diff(
    current: Option<&Value>,
    desired: &Value,
    secrets: &Secrets,
    show_secrets: bool,
) -> Diff {
    let mask = |path_key: &str, old: Option<&Value>, new: Option<&Value>| -> Mask {
        if show_secrets {
            Mask::Nothing
        } else if redact::looks_secret(path_key)
            || old.is_some_and(|v| secrets.tainted(v))
            || new.is_some_and(|v| secrets.tainted(v))
        {
            Mask::Whole
        } else {
            Mask::Parts
        }
    };
    let empty = serde_json::Map::new();
    let cur = current.and_then(Value::as_object).unwrap_or(&empty);
    let new = desired.as_object().unwrap_or(&empty);
    let cur_services = cur
        .get("services")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let new_services = new
        .get("services")
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let image = |v: &Value| {
        v.get("image").map(|i| {
            if !show_secrets && secrets.tainted(i) {
                MASK.to_owned()
            } else {
                let shown = i.as_str().map_or_else(|| i.to_string(), str::to_owned);
                match redact::redact_url_passwords(&shown) {
                    Some(clean) if !show_secrets => clean,
                    _ => shown,
                }
            }
        })
    };
    let mut services = Vec::new();
    for (name, svc) in new_services {
        match cur_services.get(name) {
            None => services.push(ServiceDiff {
                service: name.clone(),
                status: ServiceStatus::Added,
                image: image(svc),
                changes: Vec::new(),
            }),
            Some(old) => {
                let mut changes = Vec::new();
                leaf_changes("", Some(old), Some(svc), &mask, &mut changes);
                if !changes.is_empty() {
                    services.push(ServiceDiff {
                        service: name.clone(),
                        status: ServiceStatus::Changed,
                        image: image(svc),
                        changes,
                    });
                }
            }
        }
    }
    for (name, old) in cur_services {
        if !new_services.contains_key(name) {
            services.push(ServiceDiff {
                service: name.clone(),
                status: ServiceStatus::Removed,
                image: image(old),
                changes: Vec::new(),
            });
        }
    }
    let mut other = Vec::new();
    let keys: Vec<&String> = cur
        .keys()
        .chain(new.keys().filter(|k| !cur.contains_key(*k)))
        .filter(|k| *k != "services")
        .collect();
    for k in keys {
        let (o, n) = (cur.get(k), new.get(k));
        if o.is_some()
            && n.is_some()
            && semantic_eq(o.unwrap_or(&Value::Null), n.unwrap_or(&Value::Null))
        {
            continue;
        }
        if k == super::uploads::EXTENSION {
            // One change per uploaded file.
            leaf_changes(k, o, n, &mask, &mut other);
            continue;
        }
        let m = mask(k, o, n);
        other.push(masked_change(k.clone(), o, n, m));
    }
    let mut notes = Vec::new();
    if current.is_some()
        && other
            .iter()
            .any(|c| c.path == "x-portals" || c.path == "x-notes")
    {
        notes.push("x-portals and x-notes are read only when an app is created: TrueNAS stores the change but keeps showing the old portals/notes until the app is deleted and created again (compose down --delete, then up)".into());
    }
    Diff {
        exists: current.is_some(),
        services,
        other,
        notes,
    }
}

/// How a change is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mask {
    /// Both sides masked entirely.
    Whole,
    /// The secrets inside masked ([`redact::redact_keys`]: secret keys, URL passwords).
    Parts,
    /// As it is (`--show-secrets`).
    Nothing,
}

fn masked_change(path: String, old: Option<&Value>, new: Option<&Value>, mask: Mask) -> Change {
    let m = |v: Option<&Value>| {
        v.map(|v| match mask {
            Mask::Whole => Value::String(MASK.into()),
            Mask::Parts => {
                let mut v = v.clone();
                redact::redact_keys(&mut v);
                v
            }
            Mask::Nothing => v.clone(),
        })
    };
    Change {
        path,
        old: m(old),
        new: m(new),
    }
}

/// Decides whether a change (key, old, new) is shown masked.
type MaskFn<'a> = dyn Fn(&str, Option<&Value>, Option<&Value>) -> Mask + 'a;

fn leaf_changes(
    path: &str,
    old: Option<&Value>,
    new: Option<&Value>,
    mask: &MaskFn<'_>,
    out: &mut Vec<Change>,
) {
    if let (Some(Value::Object(o)), Some(Value::Object(n))) = (old, new) {
        let keys: Vec<&String> = o
            .keys()
            .chain(n.keys().filter(|k| !o.contains_key(*k)))
            .collect();
        for k in keys {
            let p = if path.is_empty() {
                k.clone()
            } else {
                format!("{path}.{k}")
            };
            leaf_changes(&p, o.get(k), n.get(k), mask, out);
        }
        return;
    }
    let same = match (old, new) {
        (Some(a), Some(b)) => semantic_eq(a, b),
        (None, None) => true,
        _ => false,
    };
    if !same {
        let key = path.rsplit('.').next().unwrap_or(path);
        out.push(masked_change(
            path.to_owned(),
            old,
            new,
            mask(key, old, new),
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn per_service_changes_with_masking() {
        let old = json!({"services": {
            "api": {"image": "a:1", "environment": {"LOG_LEVEL": "info", "DB_PASSWORD": "old", "URL": "pg://u:old@db"}},
            "gone": {"image": "g:1"}}, "volumes": {"v": null}});
        let new = json!({"services": {
            "api": {"image": "a:2", "environment": {"LOG_LEVEL": "debug", "DB_PASSWORD": "new", "URL": "pg://u:new@db"}},
            "web": {"image": "w:1"}}, "volumes": {"v": null}});
        let secrets = Secrets::new(
            BTreeSet::from(["pg://u:new@db".to_owned()]),
            BTreeSet::new(),
        );
        let d = diff(Some(&old), &new, &secrets, false);
        assert_eq!(
            d.render(),
            [
                "~ api",
                "    image: \"a:1\" -> \"a:2\"",
                "    environment.LOG_LEVEL: \"info\" -> \"debug\"",
                "    environment.DB_PASSWORD: \"********\" -> \"********\"",
                "    environment.URL: \"********\" -> \"********\"",
                "+ web (image w:1)",
                "- gone (image g:1)",
            ]
            .join("\n")
        );
        assert!(!d.render().contains("old@"));
        let shown = diff(Some(&old), &new, &secrets, true).render();
        assert!(
            shown.contains("\"pg://u:old@db\" -> \"pg://u:new@db\""),
            "{shown}"
        );
    }

    /// The one rule: a literal password inside a URL is masked even when nothing marks the
    /// value as a secret's; a harmless value shows; secret names are masked.
    #[test]
    fn url_passwords_and_secret_names_are_masked_harmless_values_show() {
        let old = json!({"services": {"api": {"image": "a:1.26", "environment": {
            "DATABASE_URL": "postgres://app:old-pw@db/app", "JWT_KEY": "k1"}}}});
        let new = json!({"services": {"api": {"image": "a:1.27", "environment": {
            "DATABASE_URL": "postgres://app:new-pw@db/app", "JWT_KEY": "k2"}}}});
        let d = diff(Some(&old), &new, &Secrets::default(), false).render();
        assert_eq!(
            d,
            [
                "~ api",
                "    image: \"a:1.26\" -> \"a:1.27\"",
                "    environment.DATABASE_URL: \"postgres://app:********@db/app\" -> \"postgres://app:********@db/app\"",
                "    environment.JWT_KEY: \"********\" -> \"********\"",
            ]
            .join("\n")
        );
        let doc = Secrets::default().mask_document(&new);
        assert_eq!(
            doc["services"]["api"]["environment"]["DATABASE_URL"],
            "postgres://app:********@db/app"
        );
        assert_eq!(doc["services"]["api"]["image"], "a:1.27");
    }

    #[test]
    fn equal_documents_and_new_apps() {
        let doc = json!({"services": {"a": {"image": "x", "n": 1}}});
        let d = diff(
            Some(&json!({"services": {"a": {"n": 1.0, "image": "x"}}})),
            &doc,
            &Secrets::default(),
            false,
        );
        assert!(d.is_empty());
        assert_eq!(d.render(), "no changes");
        let d = diff(None, &doc, &Secrets::default(), false);
        assert!(!d.is_empty());
        assert!(d.render().starts_with("(the app does not exist"));
    }

    #[test]
    fn portal_changes_get_a_note() {
        let d = diff(
            Some(&json!({"services": {}, "x-portals": [{"port": 1}]})),
            &json!({"services": {}, "x-portals": [{"port": 2}]}),
            &Secrets::default(),
            false,
        );
        assert_eq!(d.other.len(), 1);
        assert!(d.notes[0].contains("only when an app is created"));
    }
}
