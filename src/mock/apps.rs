//! Custom apps (`docs/apps.md` §1.2–§1.5, §1.9): `app.*` lifecycle jobs with the real
//! progress messages, the app entry derived from the compose services, `app.query` events, and
//! `docker.status`.
//!
//! Crash simulation: an app named in [`MockConfig::crash_apps`](super::MockConfig::crash_apps)
//! (or switched with [`MockServer::set_crash`](super::MockServer::set_crash)) deploys with every
//! container `crashed`; independently any service whose image tag is `crash` (e.g.
//! `busybox:crash`) crashes. As on the real server the deploying job itself succeeds (`up -d`
//! returned); the app goes DEPLOYING → CRASHED one `job_step` later.
//!
//! Failing `up`: a service without `image` (e.g. only `build:`, whose context would be relative to
//! the hidden app directory) fails the job with the generic `Failed 'up' action …` error.
//!
//! Catalog (non-custom) apps are not available: the mock's catalog is empty.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};

use super::dispatch::{Ctx, JobSpec, MethodDef, args, handler, job_body};
use super::error::MockError;
use super::jobs::JobCtx;
use super::query;
use super::state::{Shared, lock};
use super::{MockConfig, ServerVersion};
use crate::protocol::ejson::iso8601_utc;
use crate::protocol::{CollectionUpdate, EventKind, errno};

/// App name rule of `AppCreateArgs`.
const NAME_PATTERN: &str = "^[a-z]([-a-z0-9]*[a-z0-9])?$";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AppState {
    Deploying,
    Running,
    Crashed,
    Stopped,
}

impl AppState {
    fn as_str(self) -> &'static str {
        match self {
            AppState::Deploying => "DEPLOYING",
            AppState::Running => "RUNNING",
            AppState::Crashed => "CRASHED",
            AppState::Stopped => "STOPPED",
        }
    }
}

#[derive(Debug, Clone)]
struct Container {
    id: String,
    service_name: String,
    image: String,
    /// running | starting | crashed
    state: &'static str,
    crash: bool,
    port_config: Vec<Value>,
    volume_mounts: Vec<Value>,
    logs: Vec<(String, String)>,
}

#[derive(Debug, Clone)]
struct App {
    name: String,
    config: Value,
    state: AppState,
    containers: Vec<Container>,
    generation: u64,
    notes: Option<String>,
    portals: Vec<(String, String, String, i64, String)>,
    /// Why its metadata on disk is unusable (`METADATA_MISSING`, `METADATA_UNREADABLE`,
    /// `METADATA_INCOMPLETE`): 27 lists such an app in the `ERROR` state, earlier releases leave
    /// it out of `app.query`.
    metadata_error: Option<&'static str>,
}

/// The `error_reason` values of an app in the `ERROR` state (27+).
pub(crate) const APP_ERROR_REASONS: [&str; 3] = [
    "METADATA_MISSING",
    "METADATA_UNREADABLE",
    "METADATA_INCOMPLETE",
];

/// Every app of the server (stateful across connections).
#[derive(Debug)]
pub(crate) struct AppStore {
    inner: Mutex<AppsInner>,
}

#[derive(Debug)]
struct AppsInner {
    apps: BTreeMap<String, App>,
    crash: HashSet<String>,
    /// Mixed into container ids; 0 in deterministic mode.
    seed: u64,
}

impl AppStore {
    pub fn new(config: &MockConfig) -> Self {
        let seed = if config.deterministic {
            0
        } else {
            let b = super::state::random_alnum(12);
            b.bytes()
                .fold(0u64, |a, x| a.wrapping_mul(131).wrapping_add(u64::from(x)))
        };
        AppStore {
            inner: Mutex::new(AppsInner {
                apps: BTreeMap::new(),
                crash: config.crash_apps.iter().cloned().collect(),
                seed,
            }),
        }
    }

    /// Break (or mend, with `None`) the on-disk metadata of `app`; `false` when there is no such
    /// app or the reason is not one of [`APP_ERROR_REASONS`].
    pub fn set_metadata_error(&self, app: &str, reason: Option<&str>) -> bool {
        let reason = match reason {
            None => None,
            Some(r) => match APP_ERROR_REASONS.iter().find(|k| **k == r) {
                Some(k) => Some(*k),
                None => return false,
            },
        };
        let mut i = lock(&self.inner);
        match i.apps.get_mut(app) {
            Some(a) => {
                a.metadata_error = reason;
                true
            }
            None => false,
        }
    }

    /// Make `app` crash (or not) from its next deployment on.
    pub fn set_crash(&self, app: &str, crash: bool) {
        let mut i = lock(&self.inner);
        if crash {
            i.crash.insert(app.to_owned());
        } else {
            i.crash.remove(app);
        }
    }

    /// Install an app as if it had been deployed earlier (demo state): its containers are
    /// already running, or crashed with `crash`. No events: nobody is connected yet.
    pub fn seed(&self, name: &str, config: Value, crash: bool, now_ms: i64) {
        let mut i = lock(&self.inner);
        let seed = i.seed;
        let mut app = App::new(name, config);
        app.deploy(seed, crash, now_ms);
        app.settle();
        i.apps.insert(name.to_owned(), app);
    }

    /// The log lines `app.container_log_follow` streams, after the real checks (`logs.py`),
    /// and whether the container still runs (its stream then stays open).
    pub fn container_logs(
        &self,
        app_name: &str,
        container_id: &str,
    ) -> Result<(Vec<(String, String)>, bool), MockError> {
        let i = lock(&self.inner);
        let app = i.apps.get(app_name).ok_or_else(|| not_found(app_name))?;
        if app.state == AppState::Stopped {
            return Err(MockError::call(
                errno::EFAULT,
                format!("Unable to retrieve logs of stopped '{app_name}' app"),
            ));
        }
        let c = app
            .containers
            .iter()
            .find(|c| c.id == container_id)
            .ok_or_else(|| {
                MockError::call(
                    errno::ENOENT,
                    format!("Container \"{container_id}\" not found in app \"{app_name}\""),
                )
            })?;
        Ok((c.logs.clone(), !c.crash))
    }

    /// One `app.stats` sample: a list over apps with containers.
    pub fn stats(&self, tick: u64, interval: u64) -> Value {
        let i = lock(&self.inner);
        let list: Vec<Value> = i
            .apps
            .values()
            .filter(|a| a.state != AppState::Stopped)
            .enumerate()
            .map(|(n, a)| {
                let k = tick + n as u64;
                let running = a.containers.iter().filter(|c| c.state == "running").count() as u64;
                json!({
                    "app_name": a.name,
                    "cpu_usage": (k * 3) % 20 * running.min(1),
                    "memory": 52_428_800 * running + k % 8 * 4096,
                    "networks": [{"interface_name": "eth0", "rx_bytes": 1024 * k / interval, "tx_bytes": 512 * k / interval}],
                    "blkio": {"read": 4096 * k / interval, "write": 8192 * k / interval},
                })
            })
            .collect();
        Value::Array(list)
    }
}

fn not_found(name: &str) -> MockError {
    MockError::not_found(format!("App {name} does not exist"))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn sha256_hex(s: &str) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, s.as_bytes()).as_ref())
}

/// RFC3339 with nanoseconds, as docker prints log timestamps.
fn log_ts(ms: i64) -> String {
    iso8601_utc(ms).replace('Z', "000000Z")
}

/// `ports:` entries → `port_config` (`[{container_port, protocol, host_ports:[…]}]`).
fn parse_ports(v: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(Value::Array(items)) = v else {
        return out;
    };
    for item in items {
        let (host_ip, host, container, proto) = match item {
            Value::Number(n) => ("0.0.0.0".to_owned(), None, n.as_i64(), "tcp".to_owned()),
            Value::String(s) => {
                let (spec, proto) = s.split_once('/').unwrap_or((s.as_str(), "tcp"));
                let parts: Vec<&str> = spec.rsplitn(3, ':').collect();
                let first = |x: &str| x.split('-').next().and_then(|p| p.parse::<i64>().ok());
                match parts.as_slice() {
                    [c] => ("0.0.0.0".into(), None, first(c), proto.to_owned()),
                    [c, h] => ("0.0.0.0".into(), first(h), first(c), proto.to_owned()),
                    [c, h, ip] => (
                        ip.trim_matches(['[', ']']).to_owned(),
                        first(h),
                        first(c),
                        proto.to_owned(),
                    ),
                    _ => continue,
                }
            }
            Value::Object(m) => (
                m.get("host_ip")
                    .and_then(Value::as_str)
                    .unwrap_or("0.0.0.0")
                    .to_owned(),
                m.get("published").and_then(|p| {
                    p.as_i64()
                        .or_else(|| p.as_str().and_then(|s| s.parse().ok()))
                }),
                m.get("target").and_then(Value::as_i64),
                m.get("protocol")
                    .and_then(Value::as_str)
                    .unwrap_or("tcp")
                    .to_owned(),
            ),
            _ => continue,
        };
        let Some(container) = container else { continue };
        let host_ports = match host {
            Some(h) => json!([{"host_port": h, "host_ip": host_ip}]),
            None => json!([]),
        };
        out.push(json!({"container_port": container, "protocol": proto, "host_ports": host_ports}));
    }
    out
}

/// `volumes:` entries → `volume_mounts`.
fn parse_volumes(app: &str, v: Option<&Value>) -> Vec<Value> {
    let mut out = Vec::new();
    let Some(Value::Array(items)) = v else {
        return out;
    };
    for item in items {
        let (source, dest, mode) = match item {
            Value::String(s) => {
                let parts: Vec<&str> = s.split(':').collect();
                match parts.as_slice() {
                    [d] => (String::new(), (*d).to_owned(), "rw".to_owned()),
                    [s, d] => ((*s).to_owned(), (*d).to_owned(), "rw".to_owned()),
                    [s, d, m, ..] => ((*s).to_owned(), (*d).to_owned(), (*m).to_owned()),
                    _ => continue,
                }
            }
            Value::Object(m) => (
                m.get("source")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                m.get("target")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned(),
                if m.get("read_only").and_then(Value::as_bool) == Some(true) {
                    "ro".to_owned()
                } else {
                    "rw".to_owned()
                },
            ),
            _ => continue,
        };
        let bind = source.starts_with('/') || source.starts_with('.') || source.starts_with('~');
        let (source, ty) = if bind {
            (source, "bind")
        } else {
            let vol = if source.is_empty() {
                sha256_hex(&dest)
            } else {
                format!("ix-{app}_{source}")
            };
            (
                format!("/mnt/.ix-apps/docker/volumes/{vol}/_data"),
                "volume",
            )
        };
        out.push(json!({"source": source, "destination": dest, "mode": mode, "type": ty}));
    }
    out
}

impl App {
    /// A new, stopped app with `config` as its compose document.
    fn new(name: &str, config: Value) -> App {
        let (notes, portals) = extensions(&config);
        App {
            name: name.to_owned(),
            config,
            state: AppState::Stopped,
            containers: Vec::new(),
            generation: 0,
            notes,
            portals,
            metadata_error: None,
        }
    }

    fn services(&self) -> Vec<(String, Map<String, Value>)> {
        match self.config.get("services") {
            // `docker compose up` on the NAS names no profile: a service with `profiles:` is
            // not started, so it has no container.
            Some(Value::Object(s)) => s
                .iter()
                .map(|(k, v)| (k.clone(), v.as_object().cloned().unwrap_or_default()))
                .filter(|(_, s)| {
                    s.get("profiles")
                        .and_then(Value::as_array)
                        .is_none_or(|p| p.is_empty())
                })
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Services that `compose up` cannot start (no image to run).
    fn up_fails(&self) -> bool {
        self.services().iter().any(|(_, s)| {
            s.get("image")
                .is_none_or(|i| i.as_str().is_none_or(|x| x.is_empty()))
        })
    }

    /// `compose up --force-recreate`: new containers, state DEPLOYING.
    fn deploy(&mut self, seed: u64, crash_all: bool, now_ms: i64) {
        self.generation += 1;
        let services = self.services();
        self.containers = services
            .into_iter()
            .map(|(svc, s)| {
                let image = s
                    .get("image")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                let crash = crash_all || image.rsplit_once(':').is_some_and(|(_, t)| t == "crash");
                let port_config = parse_ports(s.get("ports"));
                let mut logs = vec![(log_ts(now_ms), format!("Starting {svc} ({image})"))];
                for p in &port_config {
                    logs.push((
                        log_ts(now_ms + 100),
                        format!(
                            "listening on port {}/{}",
                            p["container_port"],
                            p["protocol"].as_str().unwrap_or("tcp")
                        ),
                    ));
                }
                logs.push(if crash {
                    (
                        log_ts(now_ms + 200),
                        "fatal error (simulated crash), exiting with code 1".to_owned(),
                    )
                } else {
                    (log_ts(now_ms + 200), "ready".to_owned())
                });
                Container {
                    id: sha256_hex(&format!("{seed}/{}/{svc}/{}", self.name, self.generation)),
                    service_name: svc.clone(),
                    image,
                    state: "starting",
                    crash,
                    port_config,
                    volume_mounts: parse_volumes(&self.name, s.get("volumes")),
                    logs,
                }
            })
            .collect();
        self.state = AppState::Deploying;
    }

    /// Containers finished starting: RUNNING, or CRASHED if any crashed.
    fn settle(&mut self) {
        for c in &mut self.containers {
            c.state = if c.crash { "crashed" } else { "running" };
        }
        self.state = if self.containers.iter().any(|c| c.crash) {
            AppState::Crashed
        } else {
            AppState::Running
        };
    }

    fn stop(&mut self) {
        self.containers.clear();
        self.state = AppState::Stopped;
    }

    fn workloads(&self, version: ServerVersion) -> Value {
        let mut used_ports: Vec<Value> = Vec::new();
        let mut images: Vec<String> = Vec::new();
        let mut volumes: Vec<Value> = Vec::new();
        let mut host_ips: Vec<String> = Vec::new();
        for c in &self.containers {
            for p in &c.port_config {
                if let Some(existing) = used_ports.iter_mut().find(|u| {
                    u["container_port"] == p["container_port"] && u["protocol"] == p["protocol"]
                }) {
                    if let (Some(dst), Some(src)) = (
                        existing["host_ports"].as_array_mut(),
                        p["host_ports"].as_array(),
                    ) {
                        dst.extend(src.iter().cloned());
                    }
                } else {
                    used_ports.push(p.clone());
                }
                for hp in p["host_ports"].as_array().into_iter().flatten() {
                    if let Some(ip) = hp["host_ip"].as_str()
                        && !host_ips.iter().any(|x| x == ip)
                    {
                        host_ips.push(ip.to_owned());
                    }
                }
            }
            if !images.contains(&c.image) {
                images.push(c.image.clone());
            }
            for v in &c.volume_mounts {
                if !volumes.contains(v) {
                    volumes.push(v.clone());
                }
            }
        }
        let details: Vec<Value> = self
            .containers
            .iter()
            .map(|c| {
                json!({
                    "id": c.id, "service_name": c.service_name, "image": c.image,
                    "port_config": c.port_config, "state": c.state, "volume_mounts": c.volume_mounts,
                })
            })
            .collect();
        let networks = if self.containers.is_empty() {
            json!([])
        } else {
            let project = format!("ix-{}", self.name);
            json!([{
                "Name": format!("{project}_default"),
                "Id": sha256_hex(&format!("net/{}/{}", self.name, self.generation)),
                "Created": "2025-01-01T00:00:00.000000000Z",
                "Scope": "local", "Driver": "bridge", "EnableIPv6": false,
                "Labels": {"com.docker.compose.network": "default", "com.docker.compose.project": project},
            }])
        };
        let mut m = Map::new();
        m.insert("containers".into(), self.containers.len().into());
        m.insert("used_ports".into(), Value::Array(used_ports));
        if version >= ServerVersion::V25_10 {
            m.insert("used_host_ips".into(), json!(host_ips));
        }
        m.insert("container_details".into(), Value::Array(details));
        m.insert("volumes".into(), Value::Array(volumes));
        m.insert("images".into(), json!(images));
        m.insert("networks".into(), networks);
        Value::Object(m)
    }

    /// The app entry (`docs/apps.md` §1.4). `state_override` is for the STOPPING event.
    fn entry(
        &self,
        version: ServerVersion,
        host_ip: &str,
        retrieve_config: bool,
        stopping: bool,
    ) -> Value {
        if let Some(reason) = self.metadata_error {
            // What 27 reports when it cannot read the metadata: everything read from it unknown.
            return json!({
                "name": self.name, "id": self.name,
                "active_workloads": self.workloads(version),
                "state": "ERROR", "error_reason": reason,
                "upgrade_available": false, "latest_version": null, "latest_app_version": null,
                "image_updates_available": false, "action_required": false,
                "custom_app": false, "migrated": false,
                "human_version": null, "version": null, "metadata": {},
                "portals": {}, "notes": null, "version_details": null,
                "config": if retrieve_config { json!({}) } else { Value::Null },
            });
        }
        let portals: Map<String, Value> = self
            .portals
            .iter()
            .map(|(name, scheme, host, port, path)| {
                let h = if host == "0.0.0.0" {
                    host_ip
                } else {
                    host.as_str()
                };
                (
                    name.clone(),
                    Value::from(format!("{scheme}://{h}:{port}{path}")),
                )
            })
            .collect();
        let workloads = if stopping {
            App {
                containers: Vec::new(),
                ..self.clone()
            }
            .workloads(version)
        } else {
            self.workloads(version)
        };
        let mut entry = json!({
            "name": self.name,
            "id": self.name,
            "state": if stopping { "STOPPING" } else { self.state.as_str() },
            "upgrade_available": false,
            "latest_version": null,
            "image_updates_available": false,
            "custom_app": true,
            "migrated": false,
            "human_version": "1.0.0_custom",
            "version": "1.0.0",
            "metadata": {
                "app_version": "custom", "capabilities": [], "description":
                "This is a custom app where user can use his/her own docker compose file for deploying services",
                "home": "", "host_mounts": [], "maintainers": [], "name": "custom-app",
                "run_as_context": [], "sources": [], "title": "Custom App", "train": "stable",
                "version": "1.0.0",
            },
            "active_workloads": workloads,
            "notes": self.notes,
            "portals": portals,
            "version_details": null,
            "config": if retrieve_config { self.config.clone() } else { Value::Null },
        });
        if version >= ServerVersion::V26_0 {
            // A custom app has no catalog version to upgrade to.
            entry["latest_app_version"] = Value::Null;
            entry["action_required"] = false.into();
        }
        if version >= ServerVersion::V27_0 {
            entry["error_reason"] = Value::Null;
        }
        entry
    }

    /// Is it listed by `app.query` on `version`? (Before 27 an app with unusable metadata is
    /// skipped.)
    fn listed(&self, version: ServerVersion) -> bool {
        self.metadata_error.is_none() || version >= ServerVersion::V27_0
    }
}

/// The host shown in portal URLs (the caller's local address on the real server).
const HOST_IP: &str = "127.0.0.1";

fn entry_of(shared: &Shared, name: &str) -> Option<Value> {
    lock(&shared.apps.inner)
        .apps
        .get(name)
        .filter(|a| a.listed(shared.config.version))
        .map(|a| a.entry(shared.config.version, HOST_IP, false, false))
}

fn send(shared: &Shared, kind: EventKind, name: &str, fields: Option<Value>) {
    shared.publish(
        CollectionUpdate {
            msg: kind,
            collection: "app.query".into(),
            id: Some(name.into()),
            fields,
            extra: None,
        },
        |c| c.logged_in(),
    );
}

/// Tell `app.query` subscribers what became of `name`: its entry, or its removal when it is no
/// longer listed.
pub(crate) fn announce(shared: &Shared, name: &str) {
    match entry_of(shared, name) {
        Some(e) => send(shared, EventKind::Changed, name, Some(e)),
        None => send(shared, EventKind::Removed, name, None),
    }
}

fn changed(shared: &Shared, name: &str) {
    if let Some(e) = entry_of(shared, name) {
        send(shared, EventKind::Changed, name, Some(e));
    }
}

/// `compose up`: fail like the real generic error, or deploy (CHANGED event) and settle one
/// step later.
fn compose_up(shared: &Arc<Shared>, name: &str) -> Result<(), MockError> {
    deploy(shared, name, true)
}

/// Recreate the containers (DEPLOYING), then RUNNING or CRASHED one `job_step` later, each with
/// a CHANGED event. A fresh app's first event is its ADDED, hence `announce`.
fn deploy(shared: &Arc<Shared>, name: &str, announce: bool) -> Result<(), MockError> {
    let generation = {
        let mut i = lock(&shared.apps.inner);
        let seed = i.seed;
        let crash_all = i.crash.contains(name);
        let app = i.apps.get_mut(name).ok_or_else(|| not_found(name))?;
        if app.up_fails() {
            return Err(up_failed(name));
        }
        app.deploy(seed, crash_all, shared.ids.now_ms());
        app.generation
    };
    if announce {
        changed(shared, name);
    }
    let (shared, name) = (shared.clone(), name.to_owned());
    tokio::spawn(async move {
        tokio::time::sleep(shared.config.job_step).await;
        let settled = {
            let mut i = lock(&shared.apps.inner);
            match i.apps.get_mut(&name) {
                Some(app) if app.generation == generation && app.state == AppState::Deploying => {
                    app.settle();
                    true
                }
                _ => false,
            }
        };
        if settled {
            changed(&shared, &name);
        }
    });
    Ok(())
}

fn up_failed(name: &str) -> MockError {
    MockError::call(
        errno::EFAULT,
        format!(
            "Failed 'up' action for '{name}' app. Please check /var/log/app_lifecycle.log for more details"
        ),
    )
}

/// `validate_payload` of custom apps: exactly one compose field, YAML parsed (`custom_app_utils.py`).
fn validate_payload(
    data: &Map<String, Value>,
    schema: &str,
    version: ServerVersion,
) -> Result<Value, MockError> {
    let inv = |field: &str, msg: &str| {
        MockError::invalid(Some(&format!("{schema}.{field}")), msg, errno::EINVAL)
    };
    let obj = match data.get("custom_compose_config") {
        None | Some(Value::Null) => None,
        Some(Value::Object(m)) if m.is_empty() => None,
        Some(Value::Object(m)) => Some(Value::Object(m.clone())),
        Some(_) => {
            return Err(inv(
                "custom_compose_config",
                "Input should be a valid dictionary",
            ));
        }
    };
    let text = match data.get("custom_compose_config_string") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(inv(
                "custom_compose_config_string",
                "Input should be a valid string",
            ));
        }
    };
    let compose = match (obj, text) {
        (None, None) => return Err(inv("custom_compose_config", "This field is required")),
        (Some(_), Some(_)) => {
            return Err(inv(
                "custom_compose_config_string",
                "Only one of these fields should be provided",
            ));
        }
        (Some(o), None) => o,
        (None, Some(t)) => match serde_saphyr::from_str::<Value>(&t) {
            Ok(v @ Value::Object(_)) => v,
            _ => return Err(inv("custom_compose_config_string", "Invalid YAML provided")),
        },
    };
    if version >= ServerVersion::V25_10 && !compose.get("services").is_some_and(Value::is_object) {
        // 25.10.1+ runs `docker compose config` (§1.9); guessed docker message.
        let field = if data
            .get("custom_compose_config_string")
            .is_some_and(|s| s.as_str().is_some_and(|x| !x.is_empty()))
        {
            "custom_compose_config_string"
        } else {
            "custom_compose_config"
        };
        return Err(inv(
            field,
            "Invalid compose configuration: services must be a mapping",
        ));
    }
    Ok(compose)
}

/// Pydantic checks of `app_create` (run inside the job, `docs/middleware.md` §4.2).
fn validate_create_args(p: &[Value]) -> Result<Map<String, Value>, MockError> {
    args::at_most(p, 1)?;
    let data = args::dict(p, 0, "app_create")?;
    let mut errs = Vec::new();
    let mut push = |attr: &str, msg: String| {
        errs.push(crate::protocol::ValidationEntry {
            attribute: Some(format!("app_create.{attr}")),
            message: msg,
            errno: errno::EINVAL,
        })
    };
    const KNOWN: &[&str] = &[
        "custom_app",
        "values",
        "custom_compose_config",
        "custom_compose_config_string",
        "catalog_app",
        "app_name",
        "train",
        "version",
    ];
    for k in data.keys() {
        if !KNOWN.contains(&k.as_str()) {
            push(k, "Extra inputs are not permitted".into());
        }
    }
    match data.get("app_name") {
        None => push("app_name", "Field required".into()),
        Some(Value::String(name)) => {
            let n = name.chars().count();
            if n < 1 {
                push("app_name", "String should have at least 1 character".into());
            } else if n > 40 {
                push(
                    "app_name",
                    "String should have at most 40 characters".into(),
                );
            } else if !name_ok(name) {
                push(
                    "app_name",
                    format!("String should match pattern '{NAME_PATTERN}'"),
                );
            }
        }
        Some(_) => push("app_name", "Input should be a valid string".into()),
    }
    if data.get("custom_app").is_some_and(|v| !v.is_boolean()) {
        push("custom_app", "Input should be a valid boolean".into());
    }
    if errs.is_empty() {
        Ok(data)
    } else {
        Err(MockError::Validation(errs))
    }
}

/// `^[a-z]([-a-z0-9]*[a-z0-9])?$` without a regex engine.
fn name_ok(name: &str) -> bool {
    let b = name.as_bytes();
    let Some((&first, rest)) = b.split_first() else {
        return false;
    };
    first.is_ascii_lowercase()
        && rest
            .iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && rest.last().is_none_or(|c| *c != b'-')
}

fn lock_name(prefix: &'static str) -> impl Fn(&[Value]) -> Option<String> {
    move |p: &[Value]| {
        p.first()
            .and_then(Value::as_str)
            .map(|n| format!("{prefix}{n}"))
    }
}

pub(crate) fn methods() -> Vec<MethodDef> {
    let job = |body, lock| JobSpec {
        body,
        transient: false,
        lock: Some(lock),
        abortable_since: None,
    };
    // 27 made the jobs that pull images abortable.
    let pulling_job = |body, lock| JobSpec {
        abortable_since: Some(ServerVersion::V27_0),
        ..job(body, lock)
    };
    vec![
        MethodDef::call("app.query", handler!(app_query)).filterable(),
        MethodDef::call("app.get_instance", handler!(get_instance)),
        MethodDef::call("app.config", handler!(config)),
        MethodDef::call("app.container_ids", handler!(container_ids)),
        MethodDef::call("docker.status", handler!(docker_status)),
        MethodDef::job(
            "app.create",
            pulling_job(job_body!(create), |p| {
                p.first()
                    .and_then(|a| a.get("app_name"))
                    .and_then(Value::as_str)
                    .map(|n| format!("app_create_{n}"))
            }),
        ),
        MethodDef::job(
            "app.update",
            pulling_job(job_body!(update), |p| lock_name("app_update_")(p)),
        ),
        MethodDef::job(
            "app.delete",
            job(job_body!(delete), |p| lock_name("app_delete_")(p)),
        ),
        MethodDef::job(
            "app.start",
            job(job_body!(start), |p| lock_name("app_start_")(p)),
        ),
        MethodDef::job(
            "app.stop",
            job(job_body!(stop), |p| lock_name("app_stop_")(p)),
        ),
        MethodDef::job(
            "app.redeploy",
            pulling_job(job_body!(redeploy), |p| lock_name("app_redeploy_")(p)),
        ),
        MethodDef::job(
            "app.pull_images",
            pulling_job(job_body!(pull_images), |p| lock_name("app_pull_images_")(p)),
        ),
    ]
}

fn all_entries(shared: &Shared, host_ip: &str, retrieve_config: bool) -> Vec<Value> {
    lock(&shared.apps.inner)
        .apps
        .values()
        .filter(|a| a.listed(shared.config.version))
        .map(|a| a.entry(shared.config.version, host_ip, retrieve_config, false))
        .collect()
}

/// `app.query [filters, options]` with `extra.retrieve_config` and `extra.host_ip`.
async fn app_query(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let extra = p
        .get(1)
        .and_then(|o| o.get("extra"))
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let retrieve = extra
        .get("retrieve_config")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let host_ip = extra
        .get("host_ip")
        .and_then(Value::as_str)
        .unwrap_or(HOST_IP)
        .to_owned();
    let items = all_entries(&ctx.shared, &host_ip, retrieve);
    query::query(items, &p)
}

/// `app.get_instance [name, options?]`: InstanceNotFound "App X does not exist" (-32602).
async fn get_instance(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let name = args::string(&p, 0, "id")?;
    let mut options = args::object(&p, 1, "options")?;
    options.insert("get".into(), true.into());
    let items = all_entries(
        &ctx.shared,
        HOST_IP,
        extra_flag(&options, "retrieve_config"),
    );
    query::filter_list(items, &json!([["id", "=", name]]), &options).map_err(|e| match e {
        MockError::MatchNotFound => not_found(&name),
        other => other,
    })
}

fn extra_flag(options: &Map<String, Value>, key: &str) -> bool {
    options
        .get("extra")
        .and_then(|e| e.get(key))
        .and_then(Value::as_bool)
        .unwrap_or(false)
}

/// `app.config [app_name]`: for a custom app, the compose document itself.
async fn config(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let name = args::string(&p, 0, "app_name")?;
    lock(&ctx.shared.apps.inner)
        .apps
        .get(&name)
        .map(|a| a.config.clone())
        .ok_or_else(|| not_found(&name))
}

/// `app.container_ids [app_name, {alive_only=true}]`.
async fn container_ids(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let name = args::string(&p, 0, "app_name")?;
    let opts = args::object(&p, 1, "options")?;
    let alive_only = args::flag(&opts, "alive_only", true, "options")?;
    let i = lock(&ctx.shared.apps.inner);
    let app = i.apps.get(&name).ok_or_else(|| not_found(&name))?;
    let map: Map<String, Value> = app
        .containers
        .iter()
        .filter(|c| !alive_only || matches!(c.state, "running" | "starting"))
        .map(|c| {
            (
                c.id.clone(),
                json!({"id": c.id, "service_name": c.service_name, "image": c.image, "state": c.state}),
            )
        })
        .collect();
    Ok(Value::Object(map))
}

/// `docker.status`.
async fn docker_status(_ctx: Ctx, _p: Vec<Value>) -> Result<Value, MockError> {
    Ok(json!({"status": "RUNNING", "description": ""}))
}

fn require_app(shared: &Shared, name: &str) -> Result<(), MockError> {
    if lock(&shared.apps.inner).apps.contains_key(name) {
        Ok(())
    } else {
        Err(not_found(name))
    }
}

/// `app.create [app_create]` (job). Progress as `custom_app.py`; duplicate name → CallError
/// EEXIST inside the job (`docs/apps.md` §1.2).
async fn create(j: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    let data = validate_create_args(&p)?;
    let name = data
        .get("app_name")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let shared = j.shared.clone();
    if lock(&shared.apps.inner).apps.contains_key(&name) {
        return Err(MockError::call(
            errno::EEXIST,
            format!("Application with name {name} already exists"),
        ));
    }
    if !data
        .get("custom_app")
        .and_then(Value::as_bool)
        .unwrap_or(false)
    {
        let Some(catalog_app) = data.get("catalog_app").and_then(Value::as_str) else {
            return Err(MockError::invalid(
                Some("app_create.catalog_app"),
                "This field is required",
                errno::EINVAL,
            ));
        };
        let train = data
            .get("train")
            .and_then(Value::as_str)
            .unwrap_or("stable");
        return Err(MockError::call(
            errno::ENOENT,
            format!("App {catalog_app:?} not found in {train:?} train"),
        ));
    }
    let compose = validate_payload(&data, "app_create", shared.config.version)?;
    j.progress(25, "Initial validation completed for custom app creation");
    j.step().await;
    j.progress(35, "Setting up App directory");
    lock(&shared.apps.inner)
        .apps
        .insert(name.clone(), App::new(&name, compose));
    j.step().await;
    j.progress(60, "App installation in progress, pulling images");
    j.step().await;
    if shared.config.version >= ServerVersion::V27_0 {
        pull_progress(&j, &name, 60, 95).await;
    }
    if lock(&shared.apps.inner)
        .apps
        .get(&name)
        .is_some_and(App::up_fails)
    {
        j.progress(
            80,
            &format!("Failure occurred while installing '{name}', cleaning up"),
        );
        lock(&shared.apps.inner).apps.remove(&name);
        send(&shared, EventKind::Removed, &name, None);
        return Err(up_failed(&name));
    }
    deploy(&shared, &name, false)?;
    let entry = entry_of(&shared, &name).unwrap_or(Value::Null);
    send(&shared, EventKind::Added, &name, Some(entry.clone()));
    j.progress(100, &format!("'{name}' installed successfully"));
    Ok(entry)
}

/// `x-notes` and `x-portals` (read at create time only).
#[allow(clippy::type_complexity)]
fn extensions(compose: &Value) -> (Option<String>, Vec<(String, String, String, i64, String)>) {
    let notes = compose
        .get("x-notes")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let portals = compose
        .get("x-portals")
        .and_then(Value::as_array)
        .map(|list| {
            list.iter()
                .filter_map(|p| {
                    Some((
                        p.get("name")?.as_str()?.to_owned(),
                        p.get("scheme")
                            .and_then(Value::as_str)
                            .unwrap_or("http")
                            .to_owned(),
                        p.get("host")
                            .and_then(Value::as_str)
                            .unwrap_or("0.0.0.0")
                            .to_owned(),
                        p.get("port")?.as_i64()?,
                        p.get("path")
                            .and_then(Value::as_str)
                            .unwrap_or("/")
                            .to_owned(),
                    ))
                })
                .collect()
        })
        .unwrap_or_default();
    (notes, portals)
}

/// `update_internal` (`crud.py`): used by `app.update` ("Update") and `app.redeploy`
/// ("Redeployment").
async fn update_internal(
    j: &JobCtx,
    name: &str,
    new_config: Option<Value>,
    keyword: &str,
    trigger_compose: bool,
) -> Result<Value, MockError> {
    let shared = j.shared.clone();
    j.progress(25, "Initial Validation completed");
    if let Some(cfg) = new_config
        && let Some(app) = lock(&shared.apps.inner).apps.get_mut(name)
    {
        app.config = cfg;
    }
    j.step().await;
    j.progress(60, "Configuration updated");
    changed(&shared, name);
    if trigger_compose {
        j.progress(70, "Updating docker resources");
        j.step().await;
        compose_up(&shared, name)?;
    }
    j.progress(100, &format!("{keyword} completed for '{name}'"));
    entry_of(&shared, name).ok_or_else(|| not_found(name))
}

/// `app.update [app_name, {custom_compose_config? | custom_compose_config_string?, values?}]`.
async fn update(j: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let name = args::string(&p, 0, "app_name")?;
    let data = args::object(&p, 1, "app_update")?;
    require_app(&j.shared, &name)?;
    let compose = validate_payload(&data, "app_update", j.shared.config.version)?;
    let stopped = lock(&j.shared.apps.inner)
        .apps
        .get(&name)
        .is_some_and(|a| a.state == AppState::Stopped);
    update_internal(&j, &name, Some(compose), "Update", !stopped).await
}

/// `app.redeploy [app_name]` → app entry.
async fn redeploy(j: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let name = args::string(&p, 0, "app_name")?;
    require_app(&j.shared, &name)?;
    update_internal(&j, &name, None, "Redeployment", true).await
}

/// `app.start [app_name]` → null.
async fn start(j: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let name = args::string(&p, 0, "app_name")?;
    require_app(&j.shared, &name)?;
    j.progress(20, &format!("Starting '{name}' app"));
    j.step().await;
    compose_up(&j.shared, &name)?;
    j.progress(100, &format!("Started '{name}' app"));
    Ok(Value::Null)
}

/// `app.stop [app_name]` → null: a STOPPING event with empty workloads, then STOPPED.
async fn stop(j: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let name = args::string(&p, 0, "app_name")?;
    let stopping = lock(&j.shared.apps.inner)
        .apps
        .get(&name)
        .map(|a| a.entry(j.shared.config.version, HOST_IP, false, true))
        .ok_or_else(|| not_found(&name))?;
    send(&j.shared, EventKind::Changed, &name, Some(stopping));
    j.progress(20, &format!("Stopping '{name}' app"));
    j.step().await;
    if let Some(app) = lock(&j.shared.apps.inner).apps.get_mut(&name) {
        app.stop();
    }
    j.progress(100, &format!("Stopped '{name}' app"));
    changed(&j.shared, &name);
    Ok(Value::Null)
}

/// `app.delete [app_name, {remove_images, remove_ix_volumes, force_remove_ix_volumes,
/// force_remove_custom_app}]` → true.
async fn delete(j: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let name = args::string(&p, 0, "app_name")?;
    let opts = args::object(&p, 1, "options")?;
    for k in [
        "remove_images",
        "remove_ix_volumes",
        "force_remove_ix_volumes",
        "force_remove_custom_app",
    ] {
        args::flag(&opts, k, false, "options")?;
    }
    require_app(&j.shared, &name)?;
    j.progress(20, &format!("Deleting '{name}' app"));
    j.step().await;
    j.progress(80, "Cleaning up resources");
    lock(&j.shared.apps.inner).apps.remove(&name);
    send(&j.shared, EventKind::Removed, &name, None);
    Ok(true.into())
}

/// `app.pull_images [app_name, {redeploy=true}]` → null, with the progress texts of
/// `pull_images.py`; 27 reports the pull itself in fine steps.
async fn pull_images(j: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let name = args::string(&p, 0, "app_name")?;
    let opts = args::object(&p, 1, "options")?;
    let redeploy = args::flag(&opts, "redeploy", true, "options")?;
    require_app(&j.shared, &name)?;
    j.progress(20, "Pulling app images");
    j.step().await;
    if j.shared.config.version >= ServerVersion::V27_0 {
        pull_progress(&j, &name, 20, if redeploy { 80 } else { 100 }).await;
    }
    j.progress(
        if redeploy { 80 } else { 100 },
        "Images pulled successfully",
    );
    if redeploy {
        compose_up(&j.shared, &name)?;
        j.progress(100, "App redeployed successfully");
    }
    Ok(Value::Null)
}

/// 27's fine-grained pull progress: the share of layer bytes downloaded so far, mapped onto
/// `from..to` of the job's progress, as "Pulling app images (X MiB / Y MiB)"; each service's
/// image weighs 24 MiB here.
async fn pull_progress(j: &JobCtx, app: &str, from: i64, to: i64) {
    let images = lock(&j.shared.apps.inner)
        .apps
        .get(app)
        .and_then(|a| {
            a.config
                .get("services")
                .and_then(Value::as_object)
                .map(|s| s.len())
        })
        .unwrap_or(1)
        .max(1) as i64;
    let total = 24 * images;
    for quarter in 1..=4 {
        let done = total * quarter / 4;
        j.progress(
            from + (to - from) * quarter / 4 * 9 / 10,
            &format!("Pulling app images ({done} MiB / {total} MiB)"),
        );
        j.step().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["a", "whoami", "a-1", "abc123"] {
            assert!(name_ok(ok), "{ok}");
        }
        for bad in ["", "Bad_Name", "1a", "a-", "-a", "a_b"] {
            assert!(!name_ok(bad), "{bad}");
        }
    }

    #[test]
    fn ports_and_volumes() {
        let ports = parse_ports(Some(&json!([
            "8081:80",
            "127.0.0.1:53:53/udp",
            80,
            {"target": 443, "published": "8443", "protocol": "tcp"}
        ])));
        assert_eq!(
            ports[0],
            json!({"container_port": 80, "protocol": "tcp", "host_ports": [{"host_port": 8081, "host_ip": "0.0.0.0"}]})
        );
        assert_eq!(ports[1]["host_ports"][0]["host_ip"], "127.0.0.1");
        assert_eq!(ports[1]["protocol"], "udp");
        assert_eq!(ports[2]["host_ports"], json!([]));
        assert_eq!(ports[3]["host_ports"][0]["host_port"], 8443);
        let vols = parse_volumes(
            "x",
            Some(&json!(["/mnt/tank/x:/data:ro", "db:/var/lib/db"])),
        );
        assert_eq!(vols[0]["type"], "bind");
        assert_eq!(vols[0]["mode"], "ro");
        assert_eq!(vols[1]["type"], "volume");
    }

    #[test]
    fn payload_rules() {
        let v = ServerVersion::V25_10;
        let e = validate_payload(&Map::new(), "app_create", v).unwrap_err();
        assert_eq!(
            e.to_string(),
            "[EINVAL] app_create.custom_compose_config: This field is required"
        );
        let both = json!({"custom_compose_config": {"services": {}}, "custom_compose_config_string": "services: {}"});
        let e = validate_payload(both.as_object().unwrap(), "app_create", v).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("Only one of these fields should be provided")
        );
        let bad = json!({"custom_compose_config_string": "services: [unclosed"});
        let e = validate_payload(bad.as_object().unwrap(), "app_create", v).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("custom_compose_config_string: Invalid YAML provided")
        );
        let good =
            json!({"custom_compose_config_string": "services:\n  web:\n    image: nginx:1\n"});
        let c = validate_payload(good.as_object().unwrap(), "app_create", v).unwrap();
        assert_eq!(c["services"]["web"]["image"], "nginx:1");
    }
}
