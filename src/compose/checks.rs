//! What the server cannot run is refused before anything is sent; what it runs differently
//! from a local `docker compose up` is warned about; what compose itself would reject on the
//! NAS (an unknown key, a `depends_on` naming no service, an undeclared named volume, network,
//! secret or config) is refused here, with its place.

use serde_json::Value;

use super::error::{Place, Problem};
use super::load::{dotted, pointer_index, pointer_key};

/// The top-level keys of the compose specification (plus `x-*` extensions).
const TOP_LEVEL_KEYS: [&str; 9] = [
    "version", "name", "include", "services", "networks", "volumes", "secrets", "configs", "models",
];

/// The service keys of the compose specification (plus `x-*` extensions).
const SERVICE_KEYS: [&str; 93] = [
    "annotations",
    "attach",
    "blkio_config",
    "build",
    "cap_add",
    "cap_drop",
    "cgroup",
    "cgroup_parent",
    "command",
    "configs",
    "container_name",
    "cpu_count",
    "cpu_percent",
    "cpu_period",
    "cpu_quota",
    "cpu_rt_period",
    "cpu_rt_runtime",
    "cpu_shares",
    "cpus",
    "cpuset",
    "credential_spec",
    "depends_on",
    "deploy",
    "develop",
    "device_cgroup_rules",
    "devices",
    "dns",
    "dns_opt",
    "dns_search",
    "domainname",
    "entrypoint",
    "env_file",
    "environment",
    "expose",
    "extends",
    "external_links",
    "extra_hosts",
    "gpus",
    "group_add",
    "healthcheck",
    "hostname",
    "image",
    "init",
    "ipc",
    "isolation",
    "label_file",
    "labels",
    "links",
    "logging",
    "mac_address",
    "mem_limit",
    "mem_reservation",
    "mem_swappiness",
    "memswap_limit",
    "models",
    "network_mode",
    "networks",
    "oom_kill_disable",
    "oom_score_adj",
    "pid",
    "pids_limit",
    "platform",
    "ports",
    "post_start",
    "pre_start",
    "pre_stop",
    "privileged",
    "profiles",
    "provider",
    "pull_policy",
    "pull_refresh_after",
    "read_only",
    "restart",
    "runtime",
    "scale",
    "secrets",
    "security_opt",
    "shm_size",
    "stdin_open",
    "stop_grace_period",
    "stop_signal",
    "storage_opt",
    "sysctls",
    "tmpfs",
    "tty",
    "ulimits",
    "use_api_socket",
    "user",
    "userns_mode",
    "uts",
    "volumes",
    "volumes_from",
    "working_dir",
];

/// ` (did you mean "x"?)` for the closest known key, when one is close.
fn did_you_mean(key: &str, known: &[&str]) -> String {
    known
        .iter()
        .map(|k| (strsim::normalized_damerau_levenshtein(key, k), k))
        .filter(|(score, _)| *score >= 0.6)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, k)| format!(" (did you mean {k:?}?)"))
        .unwrap_or_default()
}

fn unknown_keys(
    m: &serde_json::Map<String, Value>,
    base: &str,
    known: &[&str],
    what: &str,
    problem: &mut dyn FnMut(&str, String),
) {
    for k in m.keys() {
        if !k.starts_with("x-") && !known.contains(&k.as_str()) {
            problem(
                &pointer_key(base, k),
                format!(
                    "{k:?} is not a {what} key of the compose specification; docker compose on the NAS would reject the file{}",
                    did_you_mean(k, known)
                ),
            );
        }
    }
}

/// The names a service refers to in `depends_on`, `networks`, `secrets` or `configs`, with
/// the pointer of each (list or mapping forms).
fn references(svc: &serde_json::Map<String, Value>, sp: &str, key: &str) -> Vec<(String, String)> {
    let base = pointer_key(sp, key);
    match svc.get(key) {
        Some(Value::Array(items)) => items
            .iter()
            .enumerate()
            .filter_map(|(i, x)| {
                let name = match x {
                    Value::String(s) => Some(s.clone()),
                    Value::Object(m) => m.get("source").and_then(Value::as_str).map(str::to_owned),
                    _ => None,
                }?;
                Some((name, pointer_index(&base, i)))
            })
            .collect(),
        Some(Value::Object(m)) => m
            .iter()
            .filter(|(_, v)| {
                // `depends_on: {x: {required: false}}` may name a service that is not there.
                key != "depends_on" || v.get("required").and_then(Value::as_bool) != Some(false)
            })
            .map(|(k, _)| (k.clone(), pointer_key(&base, k)))
            .collect(),
        _ => Vec::new(),
    }
}

/// The named volumes a service mounts (short `name:/path` and long `type: volume` forms).
fn named_volumes(svc: &serde_json::Map<String, Value>, sp: &str) -> Vec<(String, String)> {
    let base = pointer_key(sp, "volumes");
    let Some(Value::Array(items)) = svc.get("volumes") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, v) in items.iter().enumerate() {
        let source = match v {
            Value::String(s) => s.split_once(':').map(|(src, _)| src.to_owned()),
            Value::Object(m) if m.get("type").and_then(Value::as_str) == Some("volume") => {
                m.get("source").and_then(Value::as_str).map(str::to_owned)
            }
            _ => None,
        };
        if let Some(src) = source
            && !src.is_empty()
            && !src.starts_with(['/', '.', '~', '$'])
        {
            out.push((src, pointer_index(&base, i)));
        }
    }
    out
}

/// Check the merged, interpolated document. Removes `build:` from services that also name an
/// `image:` (the server would try to build it in the hidden app directory). Pushes problems
/// and warnings.
///
/// `profiles` are the active profiles (`COMPOSE_PROFILES`; `*` = all): services of an active
/// profile lose their `profiles:` (TrueNAS starts no profile, so they would not run), the
/// others are removed, with a warning. `app` is the app name, for the `name:` warning.
pub fn check(
    doc: &mut Value,
    app: &str,
    profiles: &[String],
    place: &dyn Fn(&str) -> Place,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) {
    let mut problem = |pointer: &str, reason: String| {
        problems.push(Problem {
            place: place(pointer),
            path: dotted(pointer),
            reason,
        })
    };
    if let Some(n) = doc.get("name").and_then(Value::as_str)
        && n != app
    {
        warnings.push(format!(
            "{}: the top-level name: {n:?} is not used: the app is {app}, and its compose project on TrueNAS is ix-{app}",
            place("/name")
        ));
    }
    if let Some(m) = doc.as_object() {
        unknown_keys(m, "", &TOP_LEVEL_KEYS, "top-level", &mut problem);
    }
    if let Some(include) = doc.get("include") {
        let paths: Vec<String> = match include {
            Value::Array(items) => items
                .iter()
                .flat_map(|i| match i {
                    Value::String(s) => vec![s.clone()],
                    Value::Object(m) => match m.get("path") {
                        Some(Value::String(s)) => vec![s.clone()],
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect(),
                        _ => vec![],
                    },
                    _ => vec![],
                })
                .collect(),
            _ => vec![],
        };
        for p in paths {
            if p.starts_with('/') {
                warnings.push(format!(
                    "{}: include {p:?} is read on the NAS: the file must exist there",
                    place("/include")
                ));
            } else {
                problem(
                    "/include",
                    format!(
                        "{p:?} is relative: on TrueNAS it would be looked up in the app's hidden directory, where it does not exist; merge it with -f {p} instead, or use an absolute path on the NAS"
                    ),
                );
            }
        }
    }
    let services = match doc.get_mut("services") {
        Some(Value::Object(s)) if !s.is_empty() => s,
        Some(Value::Object(_)) | None => {
            problem(
                "/services",
                "a compose project needs at least one service".into(),
            );
            return;
        }
        Some(_) => {
            problem(
                "/services",
                "services: must be a mapping of service names".into(),
            );
            return;
        }
    };
    for (name, svc) in services.iter_mut() {
        let sp = pointer_key("/services", name);
        let Some(s) = svc.as_object_mut() else {
            problem(&sp, "a service must be a mapping".into());
            continue;
        };
        let image = s
            .get("image")
            .and_then(Value::as_str)
            .filter(|i| !i.trim().is_empty());
        if s.contains_key("build") {
            match image {
                None => problem(
                    &pointer_key(&sp, "build"),
                    "build: without image: cannot work: TrueNAS cannot build images (there is no way to send it a build context); build and push the image elsewhere and set image:".into(),
                ),
                Some(i) => {
                    warnings.push(format!(
                        "{}: build: is dropped: TrueNAS cannot build images, so {i} is pulled",
                        place(&pointer_key(&sp, "build"))
                    ));
                    s.shift_remove("build");
                }
            }
        } else if image.is_none() {
            problem(&sp, "the service has no image:".into());
        }
        unknown_keys(s, &sp, &SERVICE_KEYS, "service", &mut problem);
    }
    // Profiles: keep the services of active profiles (without `profiles:`), drop the others.
    let mut inactive = Vec::new();
    for (name, svc) in services.iter_mut() {
        let Some(s) = svc.as_object_mut() else {
            continue;
        };
        let Some(list) = s.get("profiles") else {
            continue;
        };
        let names: Vec<&str> = list
            .as_array()
            .map(|a| a.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        let active = names.is_empty()
            || profiles
                .iter()
                .any(|p| p == "*" || names.contains(&p.as_str()));
        if active {
            s.shift_remove("profiles");
        } else {
            warnings.push(format!(
                "{}: service {name} has profiles: {list}, none of them active (COMPOSE_PROFILES): it is not deployed",
                place(&pointer_key(&pointer_key("/services", name), "profiles")),
            ));
            inactive.push(name.clone());
        }
    }
    for name in &inactive {
        services.shift_remove(name);
    }
    // References compose resolves: services, networks, volumes, secrets, configs.
    let names: Vec<String> = services.keys().cloned().collect();
    let mut found = Vec::new();
    for (name, svc) in services.iter() {
        let Some(s) = svc.as_object() else { continue };
        let sp = pointer_key("/services", name);
        for (dep, pointer) in references(s, &sp, "depends_on") {
            if !names.contains(&dep) {
                found.push((pointer, "services", dep));
            }
        }
        for key in ["networks", "secrets", "configs"] {
            for (n, pointer) in references(s, &sp, key) {
                if !(key == "networks" && n == "default") {
                    found.push((pointer, key, n));
                }
            }
        }
        for (v, pointer) in named_volumes(s, &sp) {
            found.push((pointer, "volumes", v));
        }
    }
    for (pointer, section, n) in found {
        if section == "services" {
            let why = if inactive.contains(&n) {
                format!(
                    "depends on service {n:?}, which is not deployed: none of its profiles is active (set COMPOSE_PROFILES)"
                )
            } else {
                let known: Vec<&str> = names.iter().map(String::as_str).collect();
                format!(
                    "depends on service {n:?}, which is not defined; docker compose on the NAS would reject the file{}",
                    did_you_mean(&n, &known)
                )
            };
            problem(&pointer, why);
            continue;
        }
        let declared: Vec<&str> = doc
            .get(section)
            .and_then(Value::as_object)
            .map(|m| m.keys().map(String::as_str).collect())
            .unwrap_or_default();
        if !declared.contains(&n.as_str()) {
            let what = &section[..section.len() - 1];
            problem(
                &pointer,
                format!(
                    "{what} {n:?} is not declared under the top-level {section}:; docker compose on the NAS would reject the file{}",
                    did_you_mean(&n, &declared)
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn run(doc: Value) -> (Value, Vec<Problem>, Vec<String>) {
        run_with(doc, &[])
    }

    fn run_with(mut doc: Value, profiles: &[&str]) -> (Value, Vec<Problem>, Vec<String>) {
        let place = |p: &str| Place::file(Path::new(&format!("f{p}")));
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        let profiles: Vec<String> = profiles.iter().map(|p| (*p).to_owned()).collect();
        check(
            &mut doc,
            "app",
            &profiles,
            &place,
            &mut problems,
            &mut warnings,
        );
        (doc, problems, warnings)
    }

    #[test]
    fn what_compose_would_reject_on_the_nas_is_refused_here() {
        let (_, p, _) = run(json!({
            "services": {
                "web": {"image": "i", "depends_on": ["dbb"], "volumes": ["data:/d", "/abs:/a", "./rel:/r"],
                    "networks": ["default", "front"], "secrets": ["token"], "restrat": "always"},
                "db": {"image": "i", "depends_on": {"opt": {"condition": "service_started", "required": false}}}
            },
            "volume": {}
        }));
        let got: Vec<String> = p
            .iter()
            .map(|p| format!("{}: {}", p.path, p.reason))
            .collect();
        assert_eq!(got.len(), 6, "{got:#?}");
        assert!(
            got[0].starts_with("volume: \"volume\" is not a top-level key")
                && got[0].contains("did you mean \"volumes\"?"),
            "{}",
            got[0]
        );
        assert!(
            got[1].starts_with("services.web.restrat:")
                && got[1].contains("did you mean \"restart\"?"),
            "{}",
            got[1]
        );
        assert!(
            got[2].starts_with(
                "services.web.depends_on[0]: depends on service \"dbb\", which is not defined"
            ) && got[2].contains("did you mean \"db\"?"),
            "{}",
            got[2]
        );
        assert!(
            got[3].starts_with("services.web.networks[1]: network \"front\" is not declared"),
            "{}",
            got[3]
        );
        assert!(
            got[4].starts_with("services.web.secrets[0]: secret \"token\" is not declared"),
            "{}",
            got[4]
        );
        assert!(
            got[5].starts_with("services.web.volumes[0]: volume \"data\" is not declared"),
            "{}",
            got[5]
        );
        let (_, p, _) = run(
            json!({"services": {"web": {"image": "i", "volumes": ["data:/d"], "secrets": [{"source": "s"}]}},
            "volumes": {"data": null}, "secrets": {"s": {"file": "/x"}}}),
        );
        assert!(p.is_empty(), "{p:?}");
    }

    #[test]
    fn active_profiles_are_deployed_and_the_others_dropped() {
        let doc = json!({"services": {
            "app": {"image": "i"},
            "debug": {"image": "i", "profiles": ["debug"]},
            "tools": {"image": "i", "profiles": ["tools", "ops"]}
        }});
        let (d, p, w) = run_with(doc.clone(), &["debug"]);
        assert!(p.is_empty());
        assert_eq!(
            d,
            json!({"services": {"app": {"image": "i"}, "debug": {"image": "i"}}})
        );
        assert_eq!(w.len(), 1);
        assert!(w[0].contains("service tools has profiles"), "{w:?}");
        let (d, _, w) = run_with(doc.clone(), &["*"]);
        assert_eq!(d["services"].as_object().unwrap().len(), 3);
        assert!(w.is_empty());
        let (d, _, _) = run_with(
            json!({"services": {"app": {"image": "i", "depends_on": ["debug"]},
            "debug": {"image": "i", "profiles": ["debug"]}}}),
            &[],
        );
        assert_eq!(d["services"].as_object().unwrap().len(), 1);
        let (_, p, _) = run_with(
            json!({"services": {"app": {"image": "i", "depends_on": ["debug"]},
            "debug": {"image": "i", "profiles": ["debug"]}}}),
            &[],
        );
        assert!(p[0].reason.contains("COMPOSE_PROFILES"), "{p:?}");
    }

    #[test]
    fn build_without_image_is_refused() {
        let (_, p, _) = run(json!({"services": {"app": {"build": "."}}}));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "services.app.build");
        assert!(p[0].reason.contains("cannot build images"));
    }

    #[test]
    fn build_with_image_is_dropped_with_a_warning() {
        let (doc, p, w) = run(json!({"services": {"app": {"build": ".", "image": "x:1"}}}));
        assert!(p.is_empty());
        assert_eq!(doc, json!({"services": {"app": {"image": "x:1"}}}));
        assert!(w[0].contains("x:1 is pulled"));
    }

    #[test]
    fn includes_profiles_and_name() {
        let (_, p, w) = run(
            json!({"name": "x", "include": ["./other.yaml", "/mnt/a.yaml"],
            "services": {"a": {"image": "i", "profiles": ["debug"]}}}),
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].reason.contains("merge it with -f"));
        assert_eq!(w.len(), 3, "{w:?}");
        assert!(
            w[0].contains("name: \"x\" is not used: the app is app"),
            "{w:?}"
        );
        let (_, p, _) = run(json!({"services": {}}));
        assert_eq!(p.len(), 1);
    }
}
