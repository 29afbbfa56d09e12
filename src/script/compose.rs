//! Compose for scripts: `compose_resolve`, `compose_diff`, `compose_up` and `compose_rollback`,
//! thin bindings over [`crate::compose`] (the same pipeline and deploy path as
//! `midscript compose config|diff|up|rollback`: [`deploy::plan`], [`deploy::apply`],
//! [`deploy::rollback`]), wrapped by the embedded `stdlib/compose.rhai`
//! (`import "compose" as compose;`).
//!
//! Each takes the project folder (or, for a rollback, the app name) and an options map whose
//! keys mirror the CLI: `files`, `name`, `env_file`, `vars`, `dataset_root`, and for
//! `compose_up` also `create_dirs`, `wait`, `timeout_ms`. Relative paths start at the script's
//! folder. They use the script's connection, block like `job(..)` (progress on the console,
//! `subscribe` callbacks keep running, Ctrl-C stops the wait), and never hand out resolved
//! secret values: documents and diffs are masked with
//! [`Secrets::mask_document`](crate::compose::Secrets::mask_document).
//!
//! Deployments are recorded in the deploy journal of [`RunOptions`](super::RunOptions) (the
//! user's, by default), so `midscript compose rollback` undoes a script's `compose::up`, and
//! `compose::rollback` undoes a `midscript compose up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::time::Duration;

use rhai::{Dynamic, Engine, EvalAltResult, Map, NativeCallContext, Position};
use serde::Deserialize;
use serde_json::{Value, json};

use super::bindings::{Host, Stop, blank_error, client_error, script_error, terminated};
use super::values::{from_dynamic, to_dynamic};
use crate::client::JobProgress;
use crate::compose::deploy::{self, DeployError, DeployOptions, LIFECYCLE_LOG, Outcome};
use crate::compose::journal::Journal;
use crate::compose::request::{FileList, vars_from_json};
use crate::compose::{self, ComposeError, Options, Project};
use crate::protocol::errno;
use crate::script::RunOptions;

type RhaiResult = Result<Dynamic, Box<EvalAltResult>>;

/// The options map scripts pass (unknown keys are refused, so a typo is not silently ignored).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct ScriptOptions {
    files: Option<FileList>,
    name: Option<String>,
    env_file: Option<String>,
    vars: Option<BTreeMap<String, Value>>,
    dataset_root: Option<String>,
    create_dirs: Option<bool>,
    wait: Option<bool>,
    timeout_ms: Option<u64>,
}

impl ScriptOptions {
    /// Read the options map of `what` (`compose_up`, …).
    fn parse(what: &str, opts: &Map, pos: Position) -> Result<Self, Box<EvalAltResult>> {
        let bad = |e: String| script_error("argument", format!("{what}: options: {e}"), pos);
        let value =
            from_dynamic(&Dynamic::from_map(opts.clone())).map_err(|e| bad(e.to_string()))?;
        serde_json::from_value(value).map_err(|e| bad(e.to_string()))
    }

    /// The library's [`Options`] for the project in `dir`; relative paths start at `base`.
    fn options(&self, base: &Path, dir: &str) -> Options {
        let at = |p: &str| -> PathBuf { base.join(p) };
        let files = self.files.as_ref().map_or_else(Vec::new, |f| f.paths(at));
        let vars = vars_from_json(self.vars.iter().flatten());
        Options {
            files,
            project_dir: Some(at(dir)),
            name: self.name.clone(),
            env_file: self.env_file.as_deref().map(at),
            vars,
            environment: None,
            dataset_root: self.dataset_root.clone(),
        }
    }

    fn deploy_options(&self) -> DeployOptions {
        let defaults = DeployOptions::default();
        DeployOptions {
            wait: self.wait.unwrap_or(true),
            timeout: self
                .timeout_ms
                .map_or(defaults.timeout, Duration::from_millis),
            create_dirs: self.create_dirs.unwrap_or(false),
            ..defaults
        }
    }
}

fn compose_error(e: &ComposeError, pos: Position) -> Box<EvalAltResult> {
    script_error("compose", e.to_string(), pos)
}

fn deploy_error(e: &DeployError, pos: Position) -> Box<EvalAltResult> {
    match e {
        DeployError::Client(c) => client_error(c, pos),
        DeployError::Timeout { .. } => {
            let mut m = blank_error("timeout", e.to_string());
            m.insert("errname".into(), "ETIMEDOUT".into());
            m.insert(
                "errno".into(),
                errno::number("ETIMEDOUT").map_or(Dynamic::UNIT, Dynamic::from_int),
            );
            Box::new(EvalAltResult::ErrorRuntime(Dynamic::from_map(m), pos))
        }
        DeployError::AppError { reason, .. } => {
            let mut m = blank_error("app_error", e.to_string());
            m.insert("error_reason".into(), reason.clone().into());
            Box::new(EvalAltResult::ErrorRuntime(Dynamic::from_map(m), pos))
        }
        DeployError::Journal(j) => compose_error(j, pos),
        other => script_error("deploy", other.to_string(), pos),
    }
}

/// Resolve the project of `compose_*(dir, opts)`.
fn resolve(
    host: &Host,
    what: &str,
    dir: &str,
    opts: &Map,
    pos: Position,
) -> Result<(ScriptOptions, Project), Box<EvalAltResult>> {
    let parsed = ScriptOptions::parse(what, opts, pos)?;
    let project =
        compose::resolve(&parsed.options(&host.dir, dir)).map_err(|e| compose_error(&e, pos))?;
    Ok((parsed, project))
}

/// What `compose_resolve` returns: the project, its document masked.
fn project_map(p: &Project) -> Value {
    let mut v = serde_json::to_value(p).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("document".into(), p.secrets.mask_document(&p.document));
    }
    v
}

/// What `compose_up` returns (and a crash error's `extra`).
fn outcome_map(o: &Outcome, warnings: &[String], diff: &compose::Diff) -> Value {
    let mut v = serde_json::to_value(o).unwrap_or(Value::Null);
    if let Some(m) = v.as_object_mut() {
        m.insert("entry".into(), o.entry.clone().unwrap_or(Value::Null));
        m.insert("warnings".into(), json!(warnings));
        m.insert(
            "diff".into(),
            serde_json::to_value(diff).unwrap_or(Value::Null),
        );
    }
    v
}

/// Give the host the run's deploy journal (and the server's name in it).
pub(crate) fn set_journal(host: &Host, options: &RunOptions) {
    let server = options.server_key.clone();
    *host.journal.borrow_mut() = options.journal.clone().map(|j| (j, server));
}

/// The run's deploy journal and the server's name in it (the connection's URL unless the run
/// named it).
fn journal_of(h: &Host, client: &crate::client::Client) -> Option<(Journal, String)> {
    let (journal, server) = h.journal.borrow().clone()?;
    Some((journal, server.unwrap_or_else(|| client.url().to_owned())))
}

/// Run a deployment future on the host like `job(..)`: job progress on the console, Ctrl-C
/// stops the wait.
fn run_deploy<T>(
    h: &Host,
    ctx: &NativeCallContext,
    app: &str,
    what: &str,
    pos: Position,
    run: impl AsyncFnOnce(&mut (dyn FnMut(&JobProgress) + Send)) -> Result<T, DeployError>,
) -> Result<T, Box<EvalAltResult>> {
    let console = h.console.clone();
    let label = format!("compose {what} {app}");
    let mut seen: Vec<i64> = Vec::new();
    let mut progress = |jp: &JobProgress| {
        if !seen.contains(&jp.job_id) {
            seen.push(jp.job_id);
        }
        console.job_progress(&label, jp);
    };
    let result = h.wait(Some(ctx), run(&mut progress));
    for id in &seen {
        h.console.job_finished(*id);
    }
    match result {
        Ok(r) => r.map_err(|e| deploy_error(&e, pos)),
        Err(Stop::Cancelled) => {
            h.console.err(&format!(
                "cancelling: stopped waiting for {app} (a job already sent keeps running on the NAS)"
            ));
            Err(terminated(pos))
        }
        Err(stop) => Err(stop.into_rhai(pos)),
    }
}

/// A crash as an error map (kind `crashed`, `extra` = the result), else the result.
fn crash_or(outcome: &Outcome, result: Value, pos: Position) -> RhaiResult {
    if outcome.is_crashed() {
        let mut m = blank_error(
            "crashed",
            format!(
                "{} crashed; docker compose's own messages are in {LIFECYCLE_LOG} on the NAS",
                outcome.app
            ),
        );
        m.insert("extra".into(), to_dynamic(&result));
        return Err(Box::new(EvalAltResult::ErrorRuntime(
            Dynamic::from_map(m),
            pos,
        )));
    }
    Ok(to_dynamic(&result))
}

/// Register `compose_resolve`, `compose_diff`, `compose_up` and `compose_rollback` on `engine`.
pub(crate) fn register(engine: &mut Engine, host: &Rc<Host>) {
    let h = host.clone();
    engine.register_fn(
        "compose_resolve",
        move |ctx: NativeCallContext, dir: &str, opts: Map| -> RhaiResult {
            let (_, p) = resolve(&h, "compose_resolve", dir, &opts, ctx.call_position())?;
            Ok(to_dynamic(&project_map(&p)))
        },
    );

    let h = host.clone();
    engine.register_fn(
        "compose_diff",
        move |ctx: NativeCallContext, dir: &str, opts: Map| -> RhaiResult {
            let pos = ctx.call_position();
            let (_, p) = resolve(&h, "compose_diff", dir, &opts, pos)?;
            let client = h.client(pos)?;
            let d = h
                .wait(Some(&ctx), deploy::plan(&client, &p, false))
                .map_err(|s| s.into_rhai(pos))?
                .map_err(|e| client_error(&e, pos))?
                .diff;
            let mut v = serde_json::to_value(&d).unwrap_or(Value::Null);
            if let Some(m) = v.as_object_mut() {
                m.insert("app".into(), json!(p.name));
                m.insert("changed".into(), json!(!d.is_empty()));
                m.insert("text".into(), json!(d.render()));
                m.insert("warnings".into(), json!(p.warnings));
            }
            Ok(to_dynamic(&v))
        },
    );

    let h = host.clone();
    engine.register_fn(
        "compose_up",
        move |ctx: NativeCallContext, dir: &str, opts: Map| -> RhaiResult {
            let pos = ctx.call_position();
            let (parsed, p) = resolve(&h, "compose_up", dir, &opts, pos)?;
            let mut options = parsed.deploy_options();
            let client = h.client(pos)?;
            options.journal = journal_of(&h, &client);
            let (outcome, d) = run_deploy(&h, &ctx, &p.name, "up", pos, async |progress| {
                let plan = deploy::plan(&client, &p, false).await?;
                let outcome = deploy::apply(&client, &p, &plan, &options, progress).await?;
                Ok((outcome, plan.diff))
            })?;
            let result = outcome_map(&outcome, &p.warnings, &d);
            crash_or(&outcome, result, pos)
        },
    );

    let h = host.clone();
    engine.register_fn(
        "compose_rollback",
        move |ctx: NativeCallContext, app: &str, opts: Map| -> RhaiResult {
            let pos = ctx.call_position();
            let parsed = ScriptOptions::parse("compose_rollback", &opts, pos)?;
            if parsed.files.is_some()
                || parsed.name.is_some()
                || parsed.env_file.is_some()
                || parsed.vars.is_some()
                || parsed.dataset_root.is_some()
                || parsed.create_dirs.is_some()
            {
                return Err(script_error(
                    "argument",
                    "compose_rollback: options: only wait and timeout_ms apply to a rollback"
                        .to_owned(),
                    pos,
                ));
            }
            compose::check_app_name(app).map_err(|e| compose_error(&e, pos))?;
            let client = h.client(pos)?;
            let Some((journal, server)) = journal_of(&h, &client) else {
                return Err(script_error(
                    "compose",
                    "compose_rollback: this run has no deploy journal".to_owned(),
                    pos,
                ));
            };
            let options = parsed.deploy_options();
            let done = run_deploy(&h, &ctx, app, "rollback", pos, async |progress| {
                deploy::rollback(&client, &journal, &server, app, &options, progress).await
            })?;
            let mut result = outcome_map(&done.outcome, &[], &done.diff);
            if let Some(m) = result.as_object_mut() {
                m.insert("seq".into(), json!(done.entry.seq));
                m.insert("time".into(), json!(done.entry.time));
            }
            crash_or(&done.outcome, result, pos)
        },
    );
}
