//! `check`: the [`Model`] judged the way monitoring plugins report (Nagios, Icinga, Checkmk,
//! Zabbix agents and Sensu all run them): one line `TRUENAS <STATE> - summary | perfdata` and
//! exit status 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
//!
//! Rules: alerts at WARNING are a warning, ERROR and above critical (INFO and NOTICE count but
//! do not raise the state, dismissed ones do not count); a pool that is not healthy or not
//! ONLINE is critical, and its usage is judged against `-w`/`-c` percent; an app whose state is
//! not RUNNING is critical; a failed job among the ones the server still lists is a warning.
//! `--ignore` names alert classes or apps to leave out. A pane the server cannot feed makes its
//! part UNKNOWN.

use std::fmt;

use serde_json::{Value, json};

use super::model::{Model, Pane, PaneState};

/// A plugin state, worst last.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum State {
    /// 0
    Ok,
    /// 1
    Warning,
    /// 3 (ranked between WARNING and CRITICAL, as the plugin guidelines do for the worst-of)
    Unknown,
    /// 2
    Critical,
}

impl State {
    /// The exit status: 0, 1, 2 or 3.
    pub fn code(self) -> u8 {
        match self {
            State::Ok => 0,
            State::Warning => 1,
            State::Critical => 2,
            State::Unknown => 3,
        }
    }

    /// `OK`, `WARNING`, `CRITICAL`, `UNKNOWN`.
    pub fn as_str(self) -> &'static str {
        match self {
            State::Ok => "OK",
            State::Warning => "WARNING",
            State::Critical => "CRITICAL",
            State::Unknown => "UNKNOWN",
        }
    }
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Alerts.
    Alerts,
    /// Pools: health and usage.
    Pools,
    /// Apps: every one RUNNING.
    Apps,
    /// Jobs: none failed.
    Jobs,
    /// All of the above.
    All,
}

impl Scope {
    fn includes(self, part: Scope) -> bool {
        self == Scope::All || self == part
    }
}

/// Thresholds and exclusions.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// Pool usage (percent) at or above which a pool is a warning.
    pub warn: f64,
    /// Pool usage (percent) at or above which a pool is critical.
    pub crit: f64,
    /// Alert classes and app names to leave out (exact, case-insensitive).
    pub ignore: Vec<String>,
}

impl Default for Options {
    /// 80 % warning, 90 % critical, nothing ignored.
    fn default() -> Self {
        Options {
            warn: 80.0,
            crit: 90.0,
            ignore: Vec::new(),
        }
    }
}

impl Options {
    fn ignored(&self, name: &str) -> bool {
        self.ignore.iter().any(|i| i.eq_ignore_ascii_case(name))
    }
}

/// One perfdata value: `'label'=value[uom];warn;crit;min;max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Perf {
    /// Label.
    pub label: String,
    /// Value.
    pub value: f64,
    /// Unit (`%`, `B`, or empty).
    pub uom: &'static str,
    /// Warning threshold.
    pub warn: Option<f64>,
    /// Critical threshold.
    pub crit: Option<f64>,
    /// Minimum.
    pub min: Option<f64>,
    /// Maximum.
    pub max: Option<f64>,
}

impl fmt::Display for Perf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let n = |v: Option<f64>| v.map(num).unwrap_or_default();
        let label = if self.label.contains([' ', '=', '\'']) {
            format!("'{}'", self.label.replace('\'', "''"))
        } else {
            self.label.clone()
        };
        write!(
            f,
            "{label}={}{};{};{};{};{}",
            num(self.value),
            self.uom,
            n(self.warn),
            n(self.crit),
            n(self.min),
            n(self.max)
        )
    }
}

fn num(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else {
        format!("{v:.1}")
    }
}

fn count(n: u64) -> Perf {
    Perf {
        label: String::new(),
        value: n as f64,
        uom: "",
        warn: None,
        crit: None,
        min: Some(0.0),
        max: None,
    }
}

fn labelled(label: &str, p: Perf) -> Perf {
    Perf {
        label: label.to_owned(),
        ..p
    }
}

/// One part's verdict.
#[derive(Debug, Clone, PartialEq)]
pub struct Part {
    /// `alerts`, `pools`, `apps` or `jobs`.
    pub name: &'static str,
    /// Its state.
    pub state: State,
    /// What matters, shortly.
    pub summary: String,
    /// Its figures.
    pub perf: Vec<Perf>,
}

/// The verdict: the worst part wins.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// Worst state of the parts.
    pub state: State,
    /// The parts checked.
    pub parts: Vec<Part>,
}

impl Verdict {
    /// A verdict without a model: the server could not be reached or logged in to.
    pub fn unknown(why: &str) -> Verdict {
        Verdict {
            state: State::Unknown,
            parts: vec![Part {
                name: "connection",
                state: State::Unknown,
                summary: why.to_owned(),
                perf: Vec::new(),
            }],
        }
    }

    /// The plugin line: `TRUENAS <STATE> - summary | perfdata`. The summary lists the parts
    /// that are not OK first (all of them when every part is OK).
    pub fn line(&self) -> String {
        let mut bad: Vec<&Part> = self.parts.iter().filter(|p| p.state != State::Ok).collect();
        bad.sort_by_key(|p| std::cmp::Reverse(p.state));
        let shown: Vec<&Part> = if bad.is_empty() {
            self.parts.iter().collect()
        } else {
            bad
        };
        let summary = shown
            .iter()
            .map(|p| p.summary.as_str())
            .collect::<Vec<_>>()
            .join("; ");
        let perf = self
            .parts
            .iter()
            .flat_map(|p| p.perf.iter().map(Perf::to_string))
            .collect::<Vec<_>>()
            .join(" ");
        let summary = summary.replace('|', "/");
        if perf.is_empty() {
            format!("TRUENAS {} - {summary}", self.state)
        } else {
            format!("TRUENAS {} - {summary} | {perf}", self.state)
        }
    }

    /// The verdict as JSON (`-o json`): state, exit code, the line's summary, and each part
    /// with its perfdata.
    pub fn to_json(&self) -> Value {
        json!({
            "state": self.state.as_str(),
            "code": self.state.code(),
            "line": self.line(),
            "checks": self.parts.iter().map(|p| json!({
                "name": p.name,
                "state": p.state.as_str(),
                "summary": p.summary,
                "perfdata": p.perf.iter().map(|x| json!({
                    "label": x.label, "value": x.value, "uom": x.uom,
                    "warn": x.warn, "crit": x.crit, "min": x.min, "max": x.max,
                })).collect::<Vec<_>>(),
            })).collect::<Vec<_>>(),
        })
    }
}

fn unavailable(model: &Model, pane: Pane, name: &'static str) -> Option<Part> {
    match model.panes.get(&pane) {
        Some(PaneState::Unavailable(note)) => Some(Part {
            name,
            state: State::Unknown,
            summary: note.clone(),
            perf: Vec::new(),
        }),
        _ => None,
    }
}

fn plural(n: usize, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Judge `model` for `scope`.
pub fn judge(model: &Model, scope: Scope, options: &Options) -> Verdict {
    let mut parts = Vec::new();
    if scope.includes(Scope::Alerts) {
        parts.push(
            unavailable(model, Pane::Alerts, "alerts").unwrap_or_else(|| alerts(model, options)),
        );
    }
    if scope.includes(Scope::Pools) {
        parts.push(
            unavailable(model, Pane::Pools, "pools").unwrap_or_else(|| pools(model, options)),
        );
    }
    if scope.includes(Scope::Apps) {
        parts.push(unavailable(model, Pane::Apps, "apps").unwrap_or_else(|| apps(model, options)));
    }
    if scope.includes(Scope::Jobs) {
        parts.push(unavailable(model, Pane::Jobs, "jobs").unwrap_or_else(|| jobs(model)));
    }
    let state = parts.iter().map(|p| p.state).max().unwrap_or(State::Ok);
    Verdict { state, parts }
}

fn alerts(model: &Model, options: &Options) -> Part {
    let active: Vec<_> = model
        .active_alerts()
        .into_iter()
        .filter(|a| !options.ignored(&a.klass))
        .collect();
    let critical: Vec<_> = active.iter().filter(|a| a.severity() >= 3).collect();
    let warning: Vec<_> = active.iter().filter(|a| a.severity() == 2).collect();
    let names = |v: &[&&super::model::Alert]| {
        v.iter()
            .map(|a| a.klass.as_str())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let (state, summary) = if !critical.is_empty() {
        (
            State::Critical,
            format!(
                "{} ({})",
                plural(critical.len(), "critical alert", "critical alerts"),
                names(&critical)
            ),
        )
    } else if !warning.is_empty() {
        (
            State::Warning,
            format!(
                "{} ({})",
                plural(warning.len(), "warning alert", "warning alerts"),
                names(&warning)
            ),
        )
    } else if active.is_empty() {
        (State::Ok, "no alerts".to_owned())
    } else {
        (
            State::Ok,
            format!(
                "{}, none at WARNING or above",
                plural(active.len(), "alert", "alerts")
            ),
        )
    };
    Part {
        name: "alerts",
        state,
        summary,
        perf: vec![
            labelled("alerts_critical", count(critical.len() as u64)),
            labelled("alerts_warning", count(warning.len() as u64)),
            labelled("alerts", count(active.len() as u64)),
        ],
    }
}

fn pools(model: &Model, options: &Options) -> Part {
    let mut state = State::Ok;
    let mut problems = Vec::new();
    let mut perf = Vec::new();
    for p in model.pools.values() {
        let used = p.used_percent();
        let healthy = p.healthy && p.status == "ONLINE";
        let s = if !healthy || used >= options.crit {
            State::Critical
        } else if used >= options.warn {
            State::Warning
        } else {
            State::Ok
        };
        if !healthy {
            problems.push(format!("pool {} is {}", p.name, p.status));
        } else if s != State::Ok {
            problems.push(format!("pool {} is {:.1}% full", p.name, used));
        }
        state = state.max(s);
        perf.push(Perf {
            label: format!("{}_used", p.name),
            value: (used * 10.0).round() / 10.0,
            uom: "%",
            warn: Some(options.warn),
            crit: Some(options.crit),
            min: Some(0.0),
            max: Some(100.0),
        });
    }
    let summary = if problems.is_empty() {
        match model.pools.len() {
            0 => "no pools".to_owned(),
            n => format!("{} healthy", plural(n, "pool", "pools")),
        }
    } else {
        problems.join(", ")
    };
    Part {
        name: "pools",
        state,
        summary,
        perf,
    }
}

fn apps(model: &Model, options: &Options) -> Part {
    let apps: Vec<_> = model
        .apps
        .values()
        .filter(|a| !options.ignored(&a.name))
        .collect();
    let down: Vec<_> = apps.iter().filter(|a| a.state != "RUNNING").collect();
    let (state, summary) = if down.is_empty() {
        (
            State::Ok,
            match apps.len() {
                0 => "no apps".to_owned(),
                n => format!("{} running", plural(n, "app", "apps")),
            },
        )
    } else {
        (
            State::Critical,
            format!(
                "{} not running ({})",
                plural(down.len(), "app", "apps"),
                down.iter()
                    .map(|a| format!("{}: {}", a.name, a.state))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    Part {
        name: "apps",
        state,
        summary,
        perf: vec![
            labelled("apps", count(apps.len() as u64)),
            labelled("apps_not_running", count(down.len() as u64)),
        ],
    }
}

fn jobs(model: &Model) -> Part {
    let running = model.jobs.values().filter(|j| j.running()).count();
    let failed: Vec<_> = model
        .jobs
        .values()
        .filter(|j| j.state == "FAILED")
        .collect();
    let (state, summary) = if failed.is_empty() {
        (
            State::Ok,
            format!("{} running", plural(running, "job", "jobs")),
        )
    } else {
        (
            State::Warning,
            format!(
                "{} ({})",
                plural(failed.len(), "failed job", "failed jobs"),
                failed
                    .iter()
                    .map(|j| format!("{} {}", j.id, j.method))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        )
    };
    Part {
        name: "jobs",
        state,
        summary,
        perf: vec![
            labelled("jobs_running", count(running as u64)),
            labelled("jobs_failed", count(failed.len() as u64)),
        ],
    }
}
