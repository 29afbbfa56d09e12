//! The `compose` action: deploy, update or remove a compose project as a TrueNAS custom app,
//! with the pipeline of `midscript compose` ([`crate::compose`]).
//!
//! - `state: present` resolves the project, compares it with `app.config`, and sends nothing
//!   when the NAS already runs that document (`changed: false`); otherwise it creates or
//!   updates the app and waits until it is RUNNING or CRASHED. A crash fails the action, with
//!   the crashed containers' last log lines in `msg`.
//! - `state: absent` deletes the app when it exists.
//! - In check mode only reads are sent (`app.query`, `app.config`); `changed` says whether
//!   something would change. The `diff` is the semantic compose diff, secrets masked.
//!
//! Deployments are not recorded in the local deploy journal (the controller running the
//! interface is not where an admin would run `midscript compose rollback`).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::{Request, Response};
use crate::client::Client;
use crate::compose::deploy::{self, Action, DeployOptions, LIFECYCLE_LOG, Outcome, Remote};
use crate::compose::request::{FileList, vars_from_json};
use crate::compose::{self, Diff, Options};

/// `present` or `absent`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Deployed and running this document.
    #[default]
    Present,
    /// Deleted.
    Absent,
}

/// The parameters of `compose`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ComposeParams {
    /// The app name; default: the project directory's name.
    pub name: Option<String>,
    /// The project directory.
    pub project_src: Option<String>,
    /// Compose files (relative to `project_src`), merged in order; default: the usual names.
    pub files: Option<FileList>,
    /// The env file instead of `<project_src>/.env` (relative to `project_src`).
    pub env_file: Option<String>,
    /// Interpolation variables (win over `.env` and the environment).
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    /// Where relative bind mounts go on the NAS.
    pub dataset_root: Option<String>,
    /// `present` (default) or `absent`.
    #[serde(default)]
    pub state: State,
    /// Create missing bind-mount directories on the NAS.
    #[serde(default)]
    pub create_dirs: bool,
    /// Wait for RUNNING or CRASHED (default true).
    pub wait: Option<bool>,
    /// Seconds to wait (default 300).
    pub wait_timeout: Option<f64>,
    /// Log lines per crashed container in `msg` (default 50).
    pub log_lines: Option<u64>,
    /// With `state: absent`: remove the app's images too.
    #[serde(default)]
    pub remove_images: bool,
}

impl ComposeParams {
    fn project_dir(&self) -> Option<PathBuf> {
        self.project_src.as_deref().map(PathBuf::from)
    }

    fn at(&self, p: &str) -> PathBuf {
        match self.project_dir() {
            Some(dir) if Path::new(p).is_relative() => dir.join(p),
            _ => PathBuf::from(p),
        }
    }

    fn options(&self) -> Options {
        let files = self
            .files
            .as_ref()
            .map_or_else(Vec::new, |f| f.paths(|p| self.at(p)));
        Options {
            files,
            project_dir: self.project_dir(),
            name: self.name.clone(),
            env_file: self.env_file.as_deref().map(|f| self.at(f)),
            vars: vars_from_json(&self.vars),
            environment: None,
            dataset_root: self.dataset_root.clone(),
        }
    }

    fn deploy_options(&self) -> Result<DeployOptions, String> {
        let defaults = DeployOptions::default();
        let timeout = match self.wait_timeout {
            None => defaults.timeout,
            Some(t) if t.is_finite() && t > 0.0 => Duration::from_secs_f64(t),
            Some(t) => {
                return Err(format!(
                    "compose: params: wait_timeout must be a positive number of seconds, not {t}"
                ));
            }
        };
        Ok(DeployOptions {
            wait: self.wait.unwrap_or(true),
            timeout,
            create_dirs: self.create_dirs,
            log_lines: self.log_lines.unwrap_or(defaults.log_lines),
            ..defaults
        })
    }
}

/// Run the action.
pub async fn run(client: &Client, request: &Request, p: &ComposeParams) -> Response {
    match p.state {
        State::Present => present(client, request, p).await,
        State::Absent => absent(client, request, p).await,
    }
}

fn object(v: Value) -> serde_json::Map<String, Value> {
    match v {
        Value::Object(m) => m,
        _ => serde_json::Map::new(),
    }
}

/// The fields every `compose` result has.
fn app_data(app: &str, action: &str, entry: Option<&Value>) -> serde_json::Map<String, Value> {
    let field = |k: &str| entry.and_then(|e| e.get(k)).cloned().unwrap_or(Value::Null);
    object(json!({
        "app": app,
        "action": action,
        "state": field("state"),
        "portals": entry.and_then(|e| e.get("portals")).cloned().unwrap_or(json!({})),
    }))
}

async fn present(client: &Client, request: &Request, p: &ComposeParams) -> Response {
    let options = match p.deploy_options() {
        Ok(o) => o,
        Err(e) => return Response::failure(e),
    };
    let project = match compose::resolve(&p.options()) {
        Ok(project) => project,
        Err(e) => return Response::failure(e.to_string()),
    };
    let plan = match deploy::plan(client, &project, false).await {
        Ok(plan) => plan,
        Err(e) => return Response::client_failure(&format!("reading {}", project.name), &e),
    };
    let remote = &plan.remote;
    let diff = request
        .diff
        .then(|| json!({"prepared": plan.diff.render()}));
    let mut extra = object(json!({
        "warnings": project.warnings,
        "changes": serde_json::to_value(&plan.diff).unwrap_or(Value::Null),
    }));
    if request.check_mode {
        let action = planned(&plan.diff, remote);
        let mut data = app_data(&project.name, &action.to_string(), remote.entry.as_ref());
        data.append(&mut extra);
        return Response {
            changed: action != Action::Unchanged,
            failed: false,
            msg: format!("check mode: {} would be {action}", project.name),
            diff,
            data,
        };
    }
    let result = deploy::apply(client, &project, &plan, &options, &mut |_| {}).await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => {
            let mut r = Response::failure(format!("{}: {e}", project.name));
            r.data = app_data(&project.name, "failed", remote.entry.as_ref());
            r.diff = diff;
            return r;
        }
    };
    let mut data = app_data(
        &project.name,
        &outcome.action.to_string(),
        outcome.entry.as_ref(),
    );
    data.append(&mut extra);
    data.insert("jobs".into(), json!(outcome.jobs));
    data.insert("dirs_created".into(), json!(outcome.dirs_created));
    data.insert("missing_dirs".into(), json!(outcome.missing_dirs));
    data.insert("uploaded".into(), json!(outcome.uploaded));
    data.insert(
        "crashed".into(),
        serde_json::to_value(&outcome.crashed).unwrap_or(Value::Null),
    );
    let changed = outcome.action != Action::Unchanged;
    if outcome.is_crashed() {
        return Response {
            changed,
            failed: true,
            msg: crash_message(&outcome),
            diff,
            data,
        };
    }
    Response {
        changed,
        failed: false,
        msg: format!(
            "{}: {}, {}",
            outcome.app,
            outcome.action,
            outcome.state.as_deref().unwrap_or("state unknown")
        ),
        diff,
        data,
    }
}

/// What `up` would do, from the diff and what runs.
fn planned(d: &Diff, remote: &Remote) -> Action {
    if remote.entry.is_none() {
        Action::Created
    } else if !d.is_empty() {
        Action::Updated
    } else if remote.state() == Some("STOPPED") {
        Action::Started
    } else {
        Action::Unchanged
    }
}

/// The failure message of a crashed deployment, with each crashed container's log.
pub fn crash_message(o: &Outcome) -> String {
    let mut out = vec![format!(
        "{} crashed ({}); docker compose's own messages are in {LIFECYCLE_LOG} on the NAS",
        o.app, o.action
    )];
    for c in &o.crashed {
        let id = &c.container_id[..c.container_id.len().min(12)];
        out.push(format!(
            "--- {} ({}, container {id}), last {} lines:",
            c.service,
            c.state,
            c.lines.len()
        ));
        out.extend(c.lines.iter().map(|l| format!("{} | {l}", c.service)));
    }
    out.join("\n")
}

async fn absent(client: &Client, request: &Request, p: &ComposeParams) -> Response {
    if p.name.is_none() && p.project_src.is_none() {
        return Response::failure(
            "compose: params: state absent needs `name` or `project_src` (the app to delete)",
        );
    }
    let app = match compose::project_name(&p.options()) {
        Ok((_, app)) => app,
        Err(e) => return Response::failure(e.to_string()),
    };
    let entry = match deploy::app_entry(client, &app).await {
        Ok(e) => e,
        Err(e) => return Response::client_failure(&format!("reading {app}"), &e),
    };
    let diff = request.diff.then(|| {
        json!({"prepared": if entry.is_some() {
            format!("- {app} (the app will be deleted)")
        } else {
            "no changes".to_owned()
        }})
    });
    if entry.is_none() {
        return Response {
            changed: false,
            failed: false,
            msg: format!("{app} does not exist"),
            diff,
            data: app_data(&app, "absent", None),
        };
    }
    if request.check_mode {
        return Response {
            changed: true,
            failed: false,
            msg: format!("check mode: {app} would be deleted"),
            diff,
            data: app_data(&app, "deleted", entry.as_ref()),
        };
    }
    match deploy::down(client, &app, true, p.remove_images, &mut |_| {}).await {
        Ok(_) => Response {
            changed: true,
            failed: false,
            msg: format!("{app}: deleted"),
            diff,
            data: app_data(&app, "deleted", None),
        },
        Err(e) => {
            let mut r = Response::client_failure(&format!("deleting {app}"), &e);
            r.data = app_data(&app, "failed", entry.as_ref());
            r
        }
    }
}
