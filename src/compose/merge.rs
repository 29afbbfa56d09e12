//! Merging override files (`-f a.yml -f b.yml`) with compose's rules (compose-spec "Merge"):
//!
//! - mappings merge recursively; a scalar, or a value of another type, replaces;
//! - `environment`, `labels`, `annotations`, `sysctls`, `build.args`, `extra_hosts`
//!   (mapping or `KEY=VALUE` list forms) merge by key (the result is a mapping);
//! - `volumes`, `devices`, `secrets`, `configs` of a service merge by target (an override
//!   entry replaces the one with the same container path; new ones are appended);
//! - `depends_on` and service `networks` (list or mapping forms) merge as mappings;
//! - `command`, `entrypoint`, `healthcheck.test` are replaced, never appended;
//! - every other sequence (`ports`, `expose`, `dns`, `cap_add`, `env_file`, …) is appended,
//!   dropping exact duplicates; `dns: 8.8.8.8` counts as `[8.8.8.8]` there.
//!
//! - a value tagged `!reset` in a file removes that path from the files before it (and is
//!   not in its own file); a value tagged `!override` replaces the value of the files before
//!   it instead of merging with it ([`clear_tagged`] runs before each merge).
//!
//! Not implemented: merging `ports` by their `{ip, target, published, protocol}` key (exact
//! duplicates are dropped, nothing else).

use serde_json::{Map, Value};

use super::load::MergeTag;

/// Remove from `base` (the files merged so far) every path the next file tags `!reset` or
/// `!override`, as compose does before merging that file.
pub fn clear_tagged(base: &mut Value, tagged: &[(String, MergeTag)]) {
    for (pointer, _) in tagged {
        remove_pointer(base, pointer);
    }
}

/// Remove the value at a JSON pointer (a mapping key or a sequence item), if it is there.
fn remove_pointer(v: &mut Value, pointer: &str) {
    let Some((parent, last)) = pointer.rsplit_once('/') else {
        return;
    };
    let last = last.replace("~1", "/").replace("~0", "~");
    let target = if parent.is_empty() {
        Some(v)
    } else {
        v.pointer_mut(parent)
    };
    match target {
        Some(Value::Object(m)) => {
            m.shift_remove(&last);
        }
        Some(Value::Array(items)) => {
            if let Ok(i) = last.parse::<usize>()
                && i < items.len()
            {
                items.remove(i);
            }
        }
        _ => {}
    }
}

/// Merge `over` into `base` (the later file wins).
pub fn merge_documents(base: &mut Value, over: Value) {
    merge_at(base, over, &[]);
}

fn merge_at(base: &mut Value, over: Value, path: &[&str]) {
    match (base, over) {
        (Value::Object(b), Value::Object(o)) => {
            for (k, v) in o {
                let mut child_path: Vec<&str> = path.to_vec();
                child_path.push(&k);
                match b.get_mut(&k) {
                    Some(existing) => merge_field(existing, v, &child_path),
                    None => {
                        b.insert(k.clone(), v);
                    }
                }
            }
        }
        (b, o) => *b = o,
    }
}

/// Is `path` a service attribute named `name` (`services.<svc>.<name>`)?
fn service_attr(path: &[&str], names: &[&str]) -> bool {
    path.len() == 3 && path[0] == "services" && names.contains(&path[2])
}

/// Service attributes that are a string or a list of strings (a string means a one-item list,
/// as compose reads each file before merging).
const STRING_OR_LIST: [&str; 5] = ["dns", "dns_search", "env_file", "tmpfs", "label_file"];

fn merge_field(base: &mut Value, over: Value, path: &[&str]) {
    let mut over = over;
    if service_attr(path, &STRING_OR_LIST) {
        for v in [&mut *base, &mut over] {
            if v.is_string() {
                *v = Value::Array(vec![v.take()]);
            }
        }
    }
    if service_attr(path, &["command", "entrypoint"])
        || (path.len() == 4
            && path[0] == "services"
            && path[2] == "healthcheck"
            && path[3] == "test")
    {
        *base = over;
        return;
    }
    if service_attr(
        path,
        &[
            "environment",
            "labels",
            "annotations",
            "sysctls",
            "extra_hosts",
        ],
    ) || (path.len() == 4 && path[0] == "services" && path[2] == "build" && path[3] == "args")
    {
        let sep = if path[2] == "extra_hosts" { ':' } else { '=' };
        let mut m = to_map(base, sep);
        for (k, v) in to_map(&over, sep) {
            m.insert(k, v);
        }
        *base = Value::Object(m);
        return;
    }
    if service_attr(path, &["depends_on", "networks"]) {
        let default = if path[2] == "depends_on" {
            serde_json::json!({"condition": "service_started"})
        } else {
            Value::Null
        };
        let mut m = names_to_map(base, &default);
        let o = names_to_map(&over, &default);
        let mut mv = Value::Object(std::mem::take(&mut m));
        merge_at(&mut mv, Value::Object(o), path);
        *base = mv;
        return;
    }
    if service_attr(path, &["volumes", "devices", "secrets", "configs"])
        && let (Value::Array(b), Value::Array(o)) = (&mut *base, &over)
    {
        let kind = path[2];
        for item in o {
            let key = target_of(kind, item);
            match key.as_ref().and_then(|k| {
                b.iter()
                    .position(|x| target_of(kind, x).as_ref() == Some(k))
            }) {
                Some(i) => b[i] = item.clone(),
                None => b.push(item.clone()),
            }
        }
        return;
    }
    match (&mut *base, over) {
        (Value::Array(b), Value::Array(o)) => {
            for item in o {
                if !b.contains(&item) {
                    b.push(item);
                }
            }
        }
        (b @ Value::Object(_), o @ Value::Object(_)) => merge_at(b, o, path),
        (b, o) => *b = o,
    }
}

/// `KEY=VALUE` list or mapping → mapping (`KEY` alone → null).
fn to_map(v: &Value, sep: char) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| match s.split_once(sep) {
                Some((k, v)) => (k.to_owned(), Value::String(v.to_owned())),
                None => (s.to_owned(), Value::Null),
            })
            .collect(),
        _ => Map::new(),
    }
}

/// `[a, b]` or `{a: …}` → mapping (`depends_on: [db]` means `{db: {condition: service_started}}`).
fn names_to_map(v: &Value, default: &Value) -> Map<String, Value> {
    match v {
        Value::Object(m) => m.clone(),
        Value::Array(items) => items
            .iter()
            .filter_map(|i| i.as_str())
            .map(|s| (s.to_owned(), default.clone()))
            .collect(),
        _ => Map::new(),
    }
}

/// The container-side key of a volume/device/secret/config entry.
pub fn target_of(kind: &str, item: &Value) -> Option<String> {
    match item {
        Value::String(s) => match kind {
            "volumes" | "devices" => {
                let parts = split_volume(s);
                match parts.as_slice() {
                    [only] => Some((*only).to_owned()),
                    [_, target, ..] => Some((*target).to_owned()),
                    [] => None,
                }
            }
            // Short secret/config syntax: the name, mounted at /run/secrets/<name>.
            _ => Some(s.clone()),
        },
        Value::Object(m) => m
            .get("target")
            .and_then(Value::as_str)
            .or_else(|| m.get("source").and_then(Value::as_str))
            .map(str::to_owned),
        _ => None,
    }
}

/// Split a short volume spec `SRC:DST[:MODE]` on `:` (a Windows drive letter is not expected
/// on TrueNAS and is not special-cased).
pub fn split_volume(s: &str) -> Vec<&str> {
    s.split(':').collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn merged(a: Value, b: Value) -> Value {
        let mut a = a;
        merge_documents(&mut a, b);
        a
    }

    #[test]
    fn compose_merge_rules() {
        let base = json!({"services": {"web": {
            "image": "nginx:1", "command": ["a", "b"], "environment": ["A=1", "B=2"],
            "ports": ["80:80"], "volumes": ["./data:/data", "logs:/logs"],
            "healthcheck": {"test": ["CMD", "x"], "interval": "10s"},
            "depends_on": ["db"], "labels": {"x": "1"}}}});
        let over = json!({"services": {"web": {
            "image": "nginx:2", "command": ["c"], "environment": {"B": "3", "C": "4"},
            "ports": ["80:80", "443:443"], "volumes": ["/mnt/tank/data:/data", "./new:/new"],
            "healthcheck": {"test": ["CMD", "y"]},
            "depends_on": {"cache": {"condition": "service_healthy"}}, "labels": ["y=2"]},
            "db": {"image": "postgres"}}});
        assert_eq!(
            merged(base, over),
            json!({"services": {"web": {
                "image": "nginx:2", "command": ["c"],
                "environment": {"A": "1", "B": "3", "C": "4"},
                "ports": ["80:80", "443:443"],
                "volumes": ["/mnt/tank/data:/data", "logs:/logs", "./new:/new"],
                "healthcheck": {"test": ["CMD", "y"], "interval": "10s"},
                "depends_on": {"db": {"condition": "service_started"}, "cache": {"condition": "service_healthy"}},
                "labels": {"x": "1", "y": "2"}},
                "db": {"image": "postgres"}}})
        );
    }

    #[test]
    fn a_string_is_a_one_item_list_when_merging_lists() {
        let m = merged(
            json!({"services": {"a": {"dns": ["1.1.1.1"], "env_file": "a.env"}}}),
            json!({"services": {"a": {"dns": "8.8.8.8", "env_file": ["b.env"]}}}),
        );
        assert_eq!(
            m,
            json!({"services": {"a": {"dns": ["1.1.1.1", "8.8.8.8"], "env_file": ["a.env", "b.env"]}}})
        );
    }

    #[test]
    fn reset_and_override_tags() {
        use crate::compose::load::parse;
        use std::path::Path;
        let base = parse(
            Path::new("compose.yaml"),
            "services:\n  a:\n    image: i\n    ports: [\"80:80\"]\n    volumes: [\"/a:/a\", \"/b:/b\"]\n    environment: {KEY: v, OTHER: o}\n".into(),
        )
        .unwrap();
        let over = parse(
            Path::new("compose.override.yaml"),
            "services:\n  a:\n    ports: !reset []\n    volumes: !override [\"/c:/c\"]\n    environment:\n      KEY: !reset null\n".into(),
        )
        .unwrap();
        let mut doc = base.value;
        clear_tagged(&mut doc, &over.tagged);
        merge_documents(&mut doc, over.value);
        assert_eq!(
            doc,
            json!({"services": {"a": {"image": "i", "volumes": ["/c:/c"], "environment": {"OTHER": "o"}}}})
        );
    }

    #[test]
    fn long_syntax_volumes_merge_by_target_and_top_level_maps_merge() {
        let base = json!({"services": {"a": {"volumes": [{"type": "bind", "source": "./x", "target": "/x"}]}},
            "volumes": {"v1": null}, "x-notes": "a"});
        let over = json!({"services": {"a": {"volumes": ["/mnt/p/x:/x:ro"]}}, "volumes": {"v2": {}}, "x-notes": "b"});
        assert_eq!(
            merged(base, over),
            json!({"services": {"a": {"volumes": ["/mnt/p/x:/x:ro"]}}, "volumes": {"v1": null, "v2": {}}, "x-notes": "b"})
        );
    }
}
