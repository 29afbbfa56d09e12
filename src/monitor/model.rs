//! The one model `top` draws and `check` judges: system metrics with a short history, pools,
//! apps, alerts and jobs, kept up to date by [`Model::apply`] from what the feed delivers
//! (query results and events). Pure data: no I/O, testable without a server or a terminal.

use std::collections::{BTreeMap, VecDeque};

use serde_json::{Map, Value, json};

use crate::protocol::{CollectionUpdate, EventKind};

/// How many samples a trend keeps (one every 2 s: two minutes).
pub const HISTORY: usize = 60;
/// How many finished jobs stay listed after the running ones.
const FINISHED_JOBS: usize = 8;

/// The panes of the dashboard, each fed by one query and one event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Pane {
    /// CPU, memory and ARC, network, disk I/O (`reporting.realtime`).
    Metrics,
    /// Pools and their health (`pool.query`).
    Pools,
    /// Apps with their state (`app.query`) and per-app CPU/memory (`app.stats`).
    Apps,
    /// Alerts (`alert.list`).
    Alerts,
    /// Running jobs with progress (`core.get_jobs`).
    Jobs,
}

impl Pane {
    /// Every pane, in screen order.
    pub const ALL: [Pane; 5] = [
        Pane::Metrics,
        Pane::Pools,
        Pane::Apps,
        Pane::Alerts,
        Pane::Jobs,
    ];

    /// The pane's title.
    pub fn title(self) -> &'static str {
        match self {
            Pane::Metrics => "System",
            Pane::Pools => "Pools",
            Pane::Apps => "Apps",
            Pane::Alerts => "Alerts",
            Pane::Jobs => "Jobs",
        }
    }
}

/// Where a pane's data stands.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum PaneState {
    /// Nothing received yet.
    #[default]
    Waiting,
    /// Data has arrived; the count says how many updates so far.
    Live,
    /// The server lacks what feeds this pane (an older version, a reduced server, no
    /// permission): a short note says why.
    Unavailable(String),
}

/// What the feed hands to the model.
#[derive(Debug, Clone)]
pub enum Update {
    /// A `reporting.realtime` sample (the event's `fields`).
    Realtime(Value),
    /// An `app.stats` sample: a list of per-app figures.
    AppStats(Value),
    /// The result of `pool.query`, `app.query`, `alert.list` or `core.get_jobs`: replaces
    /// what the pane held.
    Snapshot(Pane, Vec<Value>),
    /// A `collection_update` of `pool.query`, `app.query`, `alert.list` or `core.get_jobs`.
    Event(Pane, CollectionUpdate),
    /// The server cannot feed this pane.
    Unavailable(Pane, String),
    /// The connection is up (again).
    Connected,
    /// The connection dropped; the feed tries again.
    Disconnected(String),
}

/// The connection as the dashboard shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Link {
    /// Connecting for the first time.
    Connecting,
    /// Connected and fed.
    Up,
    /// Lost; reconnecting. The text says what happened.
    Down(String),
}

/// One CPU's usage in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct Core {
    /// `cpu0`, `cpu1`, …
    pub name: String,
    /// Usage, 0–100.
    pub usage: f64,
}

/// Memory figures in bytes.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Memory {
    /// Physical memory.
    pub total: u64,
    /// Available to programs.
    pub available: u64,
    /// ZFS ARC size.
    pub arc: u64,
}

impl Memory {
    /// Used share of physical memory, 0–100.
    pub fn used_percent(&self) -> f64 {
        if self.total == 0 {
            return 0.0;
        }
        (self.total.saturating_sub(self.available)) as f64 * 100.0 / self.total as f64
    }
}

/// One network interface's rates in bytes per second, with their trend.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Interface {
    /// Received bytes per second.
    pub rx: f64,
    /// Sent bytes per second.
    pub tx: f64,
    /// Received-rate history, oldest first.
    pub rx_history: VecDeque<u64>,
}

/// Disk I/O in bytes per second.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct DiskIo {
    /// Read bytes per second.
    pub read: f64,
    /// Written bytes per second.
    pub write: f64,
    /// Busy share, 0–100 where the server says.
    pub busy: f64,
}

/// The system figures from `reporting.realtime`.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Metrics {
    /// Overall CPU usage, 0–100.
    pub cpu: Option<f64>,
    /// Overall CPU history (percent), oldest first.
    pub cpu_history: VecDeque<u64>,
    /// Per-CPU usage.
    pub cores: Vec<Core>,
    /// Memory and ARC.
    pub memory: Option<Memory>,
    /// Memory-used history (percent), oldest first.
    pub memory_history: VecDeque<u64>,
    /// Per interface.
    pub interfaces: BTreeMap<String, Interface>,
    /// Disk I/O.
    pub disk: Option<DiskIo>,
}

/// A pool as monitoring sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Pool {
    /// Pool name.
    pub name: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, …
    pub status: String,
    /// The server's overall verdict.
    pub healthy: bool,
    /// Why it is not healthy, when the server says.
    pub detail: Option<String>,
    /// Bytes in total.
    pub size: u64,
    /// Bytes allocated.
    pub allocated: u64,
}

impl Pool {
    /// Allocated share, 0–100.
    pub fn used_percent(&self) -> f64 {
        if self.size == 0 {
            return 0.0;
        }
        self.allocated as f64 * 100.0 / self.size as f64
    }

    fn from_entry(e: &Value) -> Option<Pool> {
        Some(Pool {
            name: e.get("name")?.as_str()?.to_owned(),
            status: str_of(e, "status").unwrap_or("UNKNOWN").to_owned(),
            healthy: e.get("healthy").and_then(Value::as_bool).unwrap_or(false),
            detail: str_of(e, "status_detail").map(str::to_owned),
            size: u64_of(e, "size"),
            allocated: u64_of(e, "allocated"),
        })
    }
}

/// An app with its state and, once `app.stats` has spoken, its usage.
#[derive(Debug, Clone, PartialEq)]
pub struct App {
    /// App name.
    pub name: String,
    /// `RUNNING`, `DEPLOYING`, `CRASHED`, `STOPPED`, `STOPPING`, `ERROR`, …
    pub state: String,
    /// CPU usage in percent.
    pub cpu: Option<f64>,
    /// Memory in bytes.
    pub memory: Option<u64>,
}

/// An alert.
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// The alert's uuid.
    pub id: String,
    /// Its class, e.g. `VolumeVersion` (what `--ignore` matches).
    pub klass: String,
    /// `INFO`, `NOTICE`, `WARNING`, `ERROR`, `CRITICAL`, `ALERT`, `EMERGENCY`.
    pub level: String,
    /// The text shown to people.
    pub text: String,
    /// Dismissed alerts stay listed by the server but count for nothing.
    pub dismissed: bool,
}

impl Alert {
    fn from_entry(e: &Value) -> Option<Alert> {
        let id = str_of(e, "uuid").or_else(|| str_of(e, "id"))?.to_owned();
        Some(Alert {
            id,
            klass: str_of(e, "klass").unwrap_or_default().to_owned(),
            level: str_of(e, "level").unwrap_or("INFO").to_owned(),
            text: str_of(e, "formatted")
                .or_else(|| str_of(e, "text"))
                .unwrap_or_default()
                .to_owned(),
            dismissed: e.get("dismissed").and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// How serious the level is: 0 INFO, 1 NOTICE, 2 WARNING, 3 ERROR, 4 CRITICAL, 5 ALERT,
    /// 6 EMERGENCY (an unknown level counts as WARNING).
    pub fn severity(&self) -> u8 {
        match self.level.as_str() {
            "INFO" => 0,
            "NOTICE" => 1,
            "WARNING" => 2,
            "ERROR" => 3,
            "CRITICAL" => 4,
            "ALERT" => 5,
            "EMERGENCY" => 6,
            _ => 2,
        }
    }
}

/// A job.
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    /// Job id.
    pub id: i64,
    /// The method it runs.
    pub method: String,
    /// `WAITING`, `RUNNING`, `SUCCESS`, `FAILED`, `ABORTED`.
    pub state: String,
    /// Progress percent.
    pub percent: f64,
    /// Progress description.
    pub description: String,
    /// The error of a failed job.
    pub error: Option<String>,
}

impl Job {
    /// Still going?
    pub fn running(&self) -> bool {
        matches!(self.state.as_str(), "WAITING" | "RUNNING")
    }

    fn from_entry(e: &Value) -> Option<Job> {
        Some(Job {
            id: e.get("id")?.as_i64()?,
            method: str_of(e, "method").unwrap_or_default().to_owned(),
            state: str_of(e, "state").unwrap_or_default().to_owned(),
            percent: e
                .pointer("/progress/percent")
                .and_then(Value::as_f64)
                .unwrap_or(0.0),
            description: e
                .pointer("/progress/description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            error: str_of(e, "error").map(str::to_owned),
        })
    }
}

/// Everything the dashboard shows.
#[derive(Debug, Clone)]
pub struct Model {
    /// The connection.
    pub link: Link,
    /// System figures.
    pub metrics: Metrics,
    /// Pools by name.
    pub pools: BTreeMap<String, Pool>,
    /// Apps by name.
    pub apps: BTreeMap<String, App>,
    /// Alerts by uuid.
    pub alerts: BTreeMap<String, Alert>,
    /// Jobs by id.
    pub jobs: BTreeMap<i64, Job>,
    /// Each pane's state.
    pub panes: BTreeMap<Pane, PaneState>,
    /// How many updates each pane has taken (the screen shows that it is alive).
    pub updates: BTreeMap<Pane, u64>,
    /// Server ids of pools (`pool.query` events name pools by id).
    pool_ids: BTreeMap<String, String>,
}

impl Default for Model {
    fn default() -> Self {
        Model {
            link: Link::Connecting,
            metrics: Metrics::default(),
            pools: BTreeMap::new(),
            apps: BTreeMap::new(),
            alerts: BTreeMap::new(),
            jobs: BTreeMap::new(),
            panes: Pane::ALL.iter().map(|p| (*p, PaneState::Waiting)).collect(),
            updates: BTreeMap::new(),
            pool_ids: BTreeMap::new(),
        }
    }
}

fn str_of<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

fn u64_of(v: &Value, key: &str) -> u64 {
    match v.get(key) {
        Some(Value::Number(n)) => n
            .as_u64()
            .or_else(|| n.as_f64().map(|f| f.max(0.0) as u64))
            .unwrap_or(0),
        // Some releases give sizes as strings.
        Some(Value::String(s)) => s.parse().unwrap_or(0),
        _ => 0,
    }
}

fn f64_at(v: &Value, path: &str) -> Option<f64> {
    v.pointer(path).and_then(Value::as_f64)
}

fn push(history: &mut VecDeque<u64>, value: f64) {
    if history.len() == HISTORY {
        history.pop_front();
    }
    history.push_back(value.max(0.0).round() as u64);
}

/// An id as a map key (`pool.query` ids are numbers, `alert.list` ones uuids).
fn key_of(id: &Value) -> String {
    match id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Model {
    /// Take one update.
    pub fn apply(&mut self, update: Update) {
        match update {
            Update::Connected => self.link = Link::Up,
            Update::Disconnected(why) => self.link = Link::Down(why),
            Update::Unavailable(pane, note) => {
                self.panes.insert(pane, PaneState::Unavailable(note));
            }
            Update::Realtime(fields) => {
                self.realtime(&fields);
                self.touch(Pane::Metrics);
            }
            Update::AppStats(list) => {
                self.app_stats(&list);
                self.touch(Pane::Apps);
            }
            Update::Snapshot(pane, items) => {
                self.snapshot_of(pane, &items);
                self.touch(pane);
            }
            Update::Event(pane, ev) => {
                self.event(pane, ev);
                self.touch(pane);
            }
        }
    }

    fn touch(&mut self, pane: Pane) {
        self.panes.insert(pane, PaneState::Live);
        *self.updates.entry(pane).or_default() += 1;
    }

    /// `reporting.realtime` fields: `cpu` (per CPU `{usage}` with an overall `cpu` entry, or
    /// older releases' `{average: {usage}}`), `memory`, `interfaces`, `disks`.
    fn realtime(&mut self, f: &Value) {
        let m = &mut self.metrics;
        if let Some(cpu) = f.get("cpu").and_then(Value::as_object) {
            let mut cores: Vec<Core> = cpu
                .iter()
                .filter(|(k, _)| k.starts_with("cpu") && k.len() > 3)
                .filter_map(|(k, v)| {
                    Some(Core {
                        name: k.clone(),
                        usage: v.get("usage")?.as_f64()?,
                    })
                })
                .collect();
            cores.sort_by_key(|c| c.name[3..].parse::<u32>().unwrap_or(u32::MAX));
            let overall = f64_at(f, "/cpu/cpu/usage")
                .or_else(|| f64_at(f, "/cpu/average/usage"))
                .or_else(|| {
                    (!cores.is_empty())
                        .then(|| cores.iter().map(|c| c.usage).sum::<f64>() / cores.len() as f64)
                });
            if let Some(u) = overall {
                m.cpu = Some(u);
                push(&mut m.cpu_history, u);
            }
            m.cores = cores;
        }
        if let Some(mem) = f.get("memory") {
            let total = u64_of(mem, "physical_memory_total");
            if total > 0 {
                let memory = Memory {
                    total,
                    available: u64_of(mem, "physical_memory_available"),
                    arc: u64_of(mem, "arc_size"),
                };
                push(&mut m.memory_history, memory.used_percent());
                m.memory = Some(memory);
            }
        }
        if let Some(ifaces) = f.get("interfaces").and_then(Value::as_object) {
            for (name, v) in ifaces {
                let rx = f64_at(v, "/received_bytes_rate").unwrap_or(0.0);
                let tx = f64_at(v, "/sent_bytes_rate").unwrap_or(0.0);
                let i = m.interfaces.entry(name.clone()).or_default();
                i.rx = rx;
                i.tx = tx;
                push(&mut i.rx_history, rx);
            }
            m.interfaces.retain(|k, _| ifaces.contains_key(k));
        }
        if let Some(d) = f.get("disks") {
            m.disk = Some(DiskIo {
                read: f64_at(d, "/read_bytes").unwrap_or(0.0),
                write: f64_at(d, "/write_bytes").unwrap_or(0.0),
                busy: f64_at(d, "/busy").unwrap_or(0.0),
            });
        }
    }

    fn app_stats(&mut self, list: &Value) {
        for s in list.as_array().into_iter().flatten() {
            let Some(name) = str_of(s, "app_name") else {
                continue;
            };
            if let Some(app) = self.apps.get_mut(name) {
                app.cpu = s.get("cpu_usage").and_then(Value::as_f64);
                app.memory = s.get("memory").and_then(Value::as_u64);
            }
        }
    }

    fn snapshot_of(&mut self, pane: Pane, items: &[Value]) {
        match pane {
            Pane::Metrics => {}
            Pane::Pools => {
                self.pools.clear();
                self.pool_ids.clear();
                for e in items {
                    self.upsert_pool(e.get("id").map(key_of), e);
                }
            }
            Pane::Apps => {
                let old = std::mem::take(&mut self.apps);
                for e in items {
                    self.upsert_app(e, &old);
                }
            }
            Pane::Alerts => {
                self.alerts = items
                    .iter()
                    .filter_map(Alert::from_entry)
                    .map(|a| (a.id.clone(), a))
                    .collect();
            }
            Pane::Jobs => {
                self.jobs = items
                    .iter()
                    .filter_map(Job::from_entry)
                    .map(|j| (j.id, j))
                    .collect();
                self.trim_jobs();
            }
        }
    }

    fn upsert_pool(&mut self, id: Option<String>, e: &Value) {
        // A `changed` may carry only some fields: merge them over what is known.
        let known = id
            .as_ref()
            .and_then(|id| self.pool_ids.get(id))
            .and_then(|name| self.pools.get(name));
        let merged = match known {
            Some(p) => {
                let mut base = json!({
                    "name": p.name, "status": p.status, "healthy": p.healthy,
                    "status_detail": p.detail, "size": p.size, "allocated": p.allocated,
                });
                merge(&mut base, e);
                base
            }
            None => e.clone(),
        };
        if let Some(pool) = Pool::from_entry(&merged) {
            if let Some(id) = id
                && let Some(old) = self.pool_ids.insert(id, pool.name.clone())
                && old != pool.name
            {
                self.pools.remove(&old);
            }
            self.pools.insert(pool.name.clone(), pool);
        }
    }

    fn upsert_app(&mut self, e: &Value, old: &BTreeMap<String, App>) {
        let Some(name) = str_of(e, "name").or_else(|| str_of(e, "id")) else {
            return;
        };
        let prev = old.get(name).or_else(|| self.apps.get(name));
        let state = str_of(e, "state")
            .map(str::to_owned)
            .or_else(|| prev.map(|p| p.state.clone()))
            .unwrap_or_else(|| "UNKNOWN".into());
        let app = App {
            name: name.to_owned(),
            state,
            cpu: prev.and_then(|p| p.cpu),
            memory: prev.and_then(|p| p.memory),
        };
        self.apps.insert(name.to_owned(), app);
    }

    fn event(&mut self, pane: Pane, ev: CollectionUpdate) {
        let id = ev.id.as_ref().map(key_of);
        match (pane, ev.msg) {
            (Pane::Pools, EventKind::Removed) => {
                if let Some(name) = id.and_then(|id| self.pool_ids.remove(&id)) {
                    self.pools.remove(&name);
                }
            }
            (Pane::Pools, _) => {
                if let Some(f) = &ev.fields {
                    self.upsert_pool(id, f);
                }
            }
            (Pane::Apps, EventKind::Removed) => {
                if let Some(id) = id {
                    self.apps.remove(&id);
                }
            }
            (Pane::Apps, _) => {
                if let Some(mut f) = ev.fields {
                    if let (Some(obj), Some(id)) = (f.as_object_mut(), id) {
                        obj.entry("name").or_insert(Value::String(id));
                    }
                    self.upsert_app(&f, &BTreeMap::new());
                }
            }
            (Pane::Alerts, EventKind::Removed) => {
                if let Some(id) = id {
                    self.alerts.remove(&id);
                }
            }
            (Pane::Alerts, _) => {
                if let Some(mut f) = ev.fields {
                    if let (Some(obj), Some(id)) = (f.as_object_mut(), id) {
                        obj.entry("uuid").or_insert(Value::String(id));
                    }
                    if let Some(a) = Alert::from_entry(&f) {
                        self.alerts.insert(a.id.clone(), a);
                    }
                }
            }
            (Pane::Jobs, EventKind::Removed) => {
                if let Some(id) = ev.id.as_ref().and_then(Value::as_i64) {
                    self.jobs.remove(&id);
                }
            }
            (Pane::Jobs, _) => {
                if let Some(j) = ev.fields.as_ref().and_then(Job::from_entry) {
                    self.jobs.insert(j.id, j);
                    self.trim_jobs();
                }
            }
            (Pane::Metrics, _) => {}
        }
    }

    /// Keep every running job and the newest finished ones.
    fn trim_jobs(&mut self) {
        let finished: Vec<i64> = self
            .jobs
            .values()
            .filter(|j| !j.running())
            .map(|j| j.id)
            .collect();
        let excess = finished.len().saturating_sub(FINISHED_JOBS);
        for id in finished.into_iter().take(excess) {
            self.jobs.remove(&id);
        }
    }

    /// Alerts that count: not dismissed, worst first.
    pub fn active_alerts(&self) -> Vec<&Alert> {
        let mut v: Vec<&Alert> = self.alerts.values().filter(|a| !a.dismissed).collect();
        v.sort_by(|a, b| b.severity().cmp(&a.severity()).then(a.klass.cmp(&b.klass)));
        v
    }

    /// The whole model as JSON (`top --once`): metrics, pools, apps with states, alerts, jobs,
    /// and a note for each pane the server could not feed.
    pub fn to_json(&self) -> Value {
        let m = &self.metrics;
        let metrics = json!({
            "cpu": {
                "usage": m.cpu,
                "cores": m.cores.iter().map(|c| json!({"name": c.name, "usage": c.usage})).collect::<Vec<_>>(),
            },
            "memory": m.memory.as_ref().map(|x| json!({
                "total": x.total, "available": x.available, "arc": x.arc,
                "used_percent": round1(x.used_percent()),
            })),
            "interfaces": m.interfaces.iter().map(|(k, i)| (k.clone(), json!({"rx_bytes_rate": i.rx, "tx_bytes_rate": i.tx}))).collect::<Map<String, Value>>(),
            "disk": m.disk.as_ref().map(|d| json!({"read_bytes_rate": d.read, "write_bytes_rate": d.write, "busy": d.busy})),
        });
        let notes: Map<String, Value> = self
            .panes
            .iter()
            .filter_map(|(p, s)| match s {
                PaneState::Unavailable(n) => {
                    Some((p.title().to_lowercase(), Value::String(n.clone())))
                }
                _ => None,
            })
            .collect();
        json!({
            "metrics": metrics,
            "pools": self.pools.values().map(|p| json!({
                "name": p.name, "status": p.status, "healthy": p.healthy,
                "size": p.size, "allocated": p.allocated,
                "used_percent": round1(p.used_percent()),
            })).collect::<Vec<_>>(),
            "apps": self.apps.values().map(|a| json!({
                "name": a.name, "state": a.state, "cpu": a.cpu, "memory": a.memory,
            })).collect::<Vec<_>>(),
            "alerts": self.active_alerts().iter().map(|a| json!({
                "id": a.id, "klass": a.klass, "level": a.level, "text": a.text,
            })).collect::<Vec<_>>(),
            "jobs": self.jobs.values().map(|j| json!({
                "id": j.id, "method": j.method, "state": j.state,
                "percent": j.percent, "description": j.description,
            })).collect::<Vec<_>>(),
            "unavailable": notes,
        })
    }
}

fn round1(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

fn merge(base: &mut Value, over: &Value) {
    if let (Some(b), Some(o)) = (base.as_object_mut(), over.as_object()) {
        for (k, v) in o {
            b.insert(k.clone(), v.clone());
        }
    }
}
