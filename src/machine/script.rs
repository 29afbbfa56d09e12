//! The `script` action: run a `.rhai` file with variables (`vars` in the script). The script
//! says whether it changed anything by calling `changed()`, and its last expression is the
//! returned value (`result`). What it prints is returned as `stdout_lines`; its diagnostics
//! (and an error report) as `stderr_lines`.
//!
//! In check mode a script runs only when the caller says it honours `check_mode` (a constant
//! in the script) with `supports_check_mode: true`; otherwise it is skipped.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Request, Response};
use crate::client::{Client, JobProgress};
use crate::script::{self, Console, Outcome, RunOptions, Script};

/// The parameters of `script`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScriptParams {
    /// The `.rhai` file.
    pub path: String,
    /// Variables: `vars` in the script.
    #[serde(default)]
    pub vars: BTreeMap<String, Value>,
    /// Arguments: `args` in the script.
    #[serde(default)]
    pub args: Vec<String>,
    /// The script reads `check_mode` and changes nothing when it is true.
    #[serde(default)]
    pub supports_check_mode: bool,
}

/// A console that keeps the lines for the result.
#[derive(Default)]
struct Collect {
    out: Mutex<Vec<String>>,
    err: Mutex<Vec<String>>,
}

impl Console for Collect {
    fn out(&self, line: &str) {
        if let Ok(mut o) = self.out.lock() {
            o.extend(line.lines().map(str::to_owned));
        }
    }

    fn err(&self, line: &str) {
        if let Ok(mut e) = self.err.lock() {
            e.extend(line.lines().map(str::to_owned));
        }
    }

    fn job_progress(&self, _method: &str, _progress: &JobProgress) {}

    // The lines come back only when the script has ended, too late to attach to a job: the
    // caller learns job ids from what the script returns, as with progress.
    fn job_started(&self, _method: &str, _job_id: i64) {}

    fn job_finished(&self, _job_id: i64) {}
}

/// Run the action.
pub async fn run(client: &Client, request: &Request, p: &ScriptParams) -> Response {
    if request.check_mode && !p.supports_check_mode {
        return Response {
            changed: false,
            msg: format!(
                "check mode: {} was not run (set supports_check_mode when the script honours check_mode)",
                p.path
            ),
            data: json!({"skipped": true, "path": p.path})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Response::default()
        };
    }
    let script = match Script::from_file(Path::new(&p.path)) {
        Ok(s) => s,
        Err(e) => return Response::failure(format!("cannot read the script {}: {e}", p.path)),
    };
    let console = Arc::new(Collect::default());
    let mut options = RunOptions::new(console.clone());
    options.args = p.args.clone();
    options.vars = p.vars.clone();
    options.check_mode = request.check_mode;
    let finished =
        script::run_to_end(script::Connector::Ready(client.clone()), script, options).await;
    let stdout = console.out.lock().map(|o| o.clone()).unwrap_or_default();
    let stderr = console.err.lock().map(|e| e.clone()).unwrap_or_default();
    let status = finished.outcome.exit_code();
    let mut data = json!({
        "path": p.path,
        "result": Value::Null,
        "exit_status": status,
        "stdout_lines": stdout,
        "stderr_lines": stderr,
    });
    let failure = match (&finished.outcome, &finished.value) {
        (Outcome::Success | Outcome::Exit(0), Ok(v)) => {
            data["result"] = v.clone();
            None
        }
        (Outcome::Success | Outcome::Exit(0), Err(e)) => {
            Some(format!("{}: the returned value: {e}", p.path))
        }
        (Outcome::Exit(code), _) => Some(format!("{} exited with status {code}", p.path)),
        (Outcome::Cancelled, _) => Some(format!("{} was cancelled", p.path)),
        (Outcome::Failed(_), _) => Some(if stderr.is_empty() {
            format!("{} failed", p.path)
        } else {
            stderr.join("\n")
        }),
    };
    let data = data.as_object().cloned().unwrap_or_default();
    match failure {
        Some(msg) => Response {
            changed: finished.changed,
            failed: true,
            msg,
            diff: None,
            data,
        },
        None => Response {
            changed: finished.changed,
            failed: false,
            msg: format!(
                "{} ran{}",
                p.path,
                if finished.changed { ", changed" } else { "" }
            ),
            diff: None,
            data,
        },
    }
}
