//! The Rhai script runner: admins' deploy and maintenance scripts against one persistent,
//! authenticated connection.
//!
//! ```no_run
//! # async fn demo(client: midscript::client::Client) {
//! use std::sync::Arc;
//! use midscript::output::ProgressStyle;
//! use midscript::script::{self, RunOptions, Script, StdConsole};
//! let script = Script::from_file("scripts/system-report.rhai".as_ref()).expect("readable");
//! let options = RunOptions::new(Arc::new(StdConsole::new(ProgressStyle::Auto)));
//! let outcome = script::run(client, script, options).await;
//! std::process::exit(outcome.exit_code());
//! # }
//! ```
//!
//! What scripts get:
//! - `call("method", args..)` (custom syntax: `call` is a Rhai keyword; `call(fn_ptr, args..)`
//!   still calls the function pointer, only the method form `fp.call(..)` is gone) and
//!   `rpc_raw("method", [args])`, the one native path both use;
//! - `job("method", args..)` waits for a job with progress, `job_start(..)` returns the id,
//!   `wait_job(id)` waits for it;
//! - `call_all([[method, args..], ..])` sends calls together (at most 20 outstanding) and
//!   returns their results in order, a failed call's error map in its place;
//!   `wait_jobs([ids])` waits for jobs together the same way; `is_error(v)` tells such an error
//!   map from a result;
//! - `subscribe("event", |ev| ..)` returns a handle with `cancel()`; callbacks run while the
//!   script waits (in `call`, `job`, `sleep(ms)`, `wait()`, `wait(ms)`); `events("event")` is
//!   iterable; `wait_for("event" | stream, [|ev| ..,] timeout_ms)`;
//! - `args`, `env`, `read_file`, `json::parse/stringify/pretty`, `yaml::parse`,
//!   `log::info/warn/error`, `print`, `debug` (with `-v`), `exit(code)`, `sleep`, `now`,
//!   `iso_time`, `error([errname,] message)`;
//! - `vars` (a map of variables given by the caller, empty by default), `check_mode` (true
//!   when the caller asks for a dry run) and `changed()` / `changed(flag)`, which report to the
//!   machine interface that the script changed something; the script's last expression is
//!   its returned value ([`run_to_end`]);
//! - `compose_resolve(dir, opts)`, `compose_diff(dir, opts)`, `compose_up(dir, opts)`,
//!   `compose_rollback(app, opts)`: the compose pipeline of `midscript compose` (wrapped by
//!   `import "compose" as compose;`);
//! - `ws::connect(url, opts)`: any WebSocket JSON service (send, request, next, on, wait);
//! - errors as maps with the same keys everywhere: `kind`, `summary`, `code`, `message`,
//!   `errno`, `errname`, `reason`, `extra`, `trace`, `method`, `job_id`, `validation`,
//!   `outcome` (`"unknown"` for a call that was in flight when the connection dropped: kind
//!   `"connection"`; it was not sent again, so the script checks whether it happened);
//! - a dropped connection is re-established (see `client::ReconnectPolicy`); `job()` and
//!   `wait_job()` carry on waiting across it.
//!
//! Threading: the engine lives on its own `std::thread`; tokio keeps
//! owning the socket. Bindings block that thread with `Handle::block_on` around a future that
//! also watches the run's [`CancellationToken`] and the `subscribe` subscriptions, and script
//! callbacks run between those waits, never inside one.
//!
//! Layout: `engine.rs` (Engine set-up, limits, the `call` custom syntax), `bindings.rs` (call,
//! job, subscribe, events, wait_for, sleep), `compose.rs` (the `compose_*` bindings), `ws.rs`
//! (the `ws::` module),
//! `helpers.rs` (json, yaml, env, files, log, time), `values.rs` (JSON ↔ Dynamic), `report.rs` (errors with `file:line:col` and a caret),
//! `stdlib.rs` (the embedded `stdlib/*.rhai` modules and the module resolver).

mod bindings;
mod compose;
mod engine;
mod helpers;
mod report;
mod stdlib;
mod values;
mod ws;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::catalog::SharedCatalog;
use crate::client::{Client, JobProgress};
use crate::output::{self, ProgressPrinter, ProgressStyle};

pub use engine::register_call_syntax;
// For the REPL (`crate::repl`), which evaluates lines on the same engine and bindings.
pub(crate) use bindings::{Host, client_error};
pub(crate) use engine::build;
pub use report::FailureKind;
pub(crate) use report::{Sources, render as render_error, render_parse};
pub(crate) use stdlib::new_sources;
pub use stdlib::{STDLIB, StdModule};
pub use values::{MAX_DEPTH, NotJson, TooDeep, display, from_dynamic, to_dynamic};

/// A script to run: its text, the name errors show, and the folder its relative paths and
/// imports start from.
#[derive(Debug, Clone)]
pub struct Script {
    /// Shown in error reports (`name:line:col`): the path as given, or `-e` for a one-liner.
    pub name: String,
    /// The source text.
    pub text: String,
    /// Where `read_file` and `import` look for relative paths.
    pub dir: PathBuf,
}

impl Script {
    /// Read a script file. A `#!` first line is allowed (it is kept as a comment, so line
    /// numbers stay right).
    pub fn from_file(path: &Path) -> std::io::Result<Script> {
        let text = std::fs::read_to_string(path)?;
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        Ok(Script {
            name: path.display().to_string(),
            text,
            dir,
        })
    }

    /// A script read from stdin (`midscript run -`); relative paths start from the current
    /// directory, and errors name it `<stdin>`.
    pub fn stdin(code: impl Into<String>) -> Script {
        Script {
            name: "<stdin>".into(),
            text: code.into(),
            dir: PathBuf::from("."),
        }
    }

    /// A one-liner (`midscript -e 'CODE'`); relative paths start from the current directory.
    pub fn inline(code: impl Into<String>) -> Script {
        Script {
            name: "-e".into(),
            text: code.into(),
            dir: PathBuf::from("."),
        }
    }
}

/// Where a script's output goes. [`StdConsole`] writes to the terminal; tests collect lines.
pub trait Console: Send + Sync {
    /// A line printed by the script (`print`): stdout.
    fn out(&self, line: &str);
    /// A diagnostic line (`log::*`, warnings, error reports): stderr.
    fn err(&self, line: &str);
    /// A running job reported progress.
    fn job_progress(&self, method: &str, progress: &JobProgress);
    /// A job was started (the id goes to stderr, so a job whose waiting ends early can be found
    /// again with `midscript job --attach ID`).
    fn job_started(&self, method: &str, job_id: i64);
    /// A job the script waited for has ended (successfully or not): clear its progress display.
    fn job_finished(&self, job_id: i64);
}

/// The terminal console: `print` to stdout; diagnostics and job progress (through
/// [`ProgressPrinter`]) to stderr.
pub struct StdConsole {
    printer: Mutex<ProgressPrinter>,
}

impl std::fmt::Debug for StdConsole {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StdConsole").finish_non_exhaustive()
    }
}

impl StdConsole {
    /// A console showing job progress in `style` (`Auto`: a bar on a terminal, lines
    /// otherwise; `None` for `--quiet`).
    pub fn new(style: ProgressStyle) -> StdConsole {
        StdConsole {
            printer: Mutex::new(ProgressPrinter::new(style)),
        }
    }

    /// End a progress bar line before other output.
    fn settle(&self) {
        if let Ok(mut p) = self.printer.lock() {
            p.finish();
        }
    }
}

impl Console for StdConsole {
    fn out(&self, line: &str) {
        self.settle();
        output::emit_line(line);
    }

    fn err(&self, line: &str) {
        self.settle();
        let _ = writeln!(std::io::stderr(), "{line}");
    }

    fn job_progress(&self, _method: &str, p: &JobProgress) {
        if let Ok(mut printer) = self.printer.lock() {
            printer.update(p);
        }
    }

    fn job_started(&self, method: &str, job_id: i64) {
        if let Ok(mut printer) = self.printer.lock() {
            printer.started(job_id, method);
        }
    }

    fn job_finished(&self, _job_id: i64) {
        self.settle();
    }
}

/// How to run a script.
#[derive(Clone)]
pub struct RunOptions {
    /// The script's arguments (`args` in the script).
    pub args: Vec<String>,
    /// Cancelled on Ctrl-C: stops whatever the script waits for, aborting a job it waits on.
    pub cancel: CancellationToken,
    /// Where output goes.
    pub console: Arc<dyn Console>,
    /// User modules beyond the script's folder: `$XDG_CONFIG_HOME/midscript/lib` by default.
    pub lib_dir: Option<PathBuf>,
    /// Show `debug(..)` output.
    pub verbose: bool,
    /// Stop after this many Rhai operations (0: no limit, the default for `run`).
    pub max_operations: u64,
    /// The catalog whose names are offered ("did you mean") under an uncaught -32601
    /// error; none: no suggestions.
    pub catalog: Option<SharedCatalog>,
    /// Variables for the script: the `vars` map in it (empty by default).
    pub vars: BTreeMap<String, Value>,
    /// `check_mode` in the script: the caller asks it to report what it would change and
    /// change nothing (the machine interface's check mode).
    pub check_mode: bool,
    /// Where `compose` deployments are recorded for rollback: the user's deploy journal by
    /// default (the one `midscript compose up` and `rollback` use); `None` records nothing.
    pub journal: Option<crate::compose::journal::Journal>,
    /// The journal's name for the server; default: the connection's URL (`midscript compose`
    /// names the `--mock` server `mock`, and so does `run --mock`).
    pub server_key: Option<String>,
}

impl RunOptions {
    /// No arguments, a fresh cancellation token, the default lib folder.
    pub fn new(console: Arc<dyn Console>) -> RunOptions {
        RunOptions {
            args: Vec::new(),
            cancel: CancellationToken::new(),
            console,
            lib_dir: default_lib_dir(),
            verbose: false,
            max_operations: 0,
            catalog: None,
            vars: BTreeMap::new(),
            check_mode: false,
            journal: crate::compose::journal::Journal::default_location().ok(),
            server_key: None,
        }
    }
}

impl std::fmt::Debug for RunOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunOptions")
            .field("args", &self.args)
            .field("lib_dir", &self.lib_dir)
            .field("verbose", &self.verbose)
            .finish_non_exhaustive()
    }
}

/// `$XDG_CONFIG_HOME/midscript/lib` (`~/.config/midscript/lib` on Linux).
pub fn default_lib_dir() -> Option<PathBuf> {
    crate::dirs::Dirs::from_env().script_lib()
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The script ran to its end.
    Success,
    /// The script called `exit(code)`.
    Exit(i32),
    /// The script failed; the report has been written to the console.
    Failed(FailureKind),
    /// The run was cancelled (Ctrl-C).
    Cancelled,
}

impl Outcome {
    /// The process exit status: 0, the `exit(code)` value, 1 for script and server errors,
    /// 2 for parse errors, 3 for connection failures, 130 when cancelled.
    pub fn exit_code(&self) -> i32 {
        match self {
            Outcome::Success => 0,
            Outcome::Exit(c) => *c,
            Outcome::Failed(k) => k.exit_code(),
            Outcome::Cancelled => 130,
        }
    }
}

/// Opens the TrueNAS connection of a run that starts without one; the error is the message
/// the script's `connection` error carries.
pub type Connect = Arc<
    dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<Client, String>> + Send>>
        + Send
        + Sync,
>;

/// A run's TrueNAS connection: open from the start, or opened on the first call that needs
/// it (so a script that only uses `ws` needs no server).
#[derive(Clone)]
pub enum Connector {
    /// Open.
    Ready(Client),
    /// Opened by this on first use.
    Lazy(Connect),
}

/// What a finished run leaves: how it ended, the value of its last expression, and whether it
/// called `changed()`.
#[derive(Debug, Clone, PartialEq)]
pub struct Finished {
    /// How the run ended.
    pub outcome: Outcome,
    /// The value of the script's last expression as JSON (`null` when it has none or the run
    /// failed); an error when that value cannot be JSON (a function pointer, …).
    pub value: Result<Value, NotJson>,
    /// The script called `changed()` (and did not take it back with `changed(false)`).
    pub changed: bool,
}

/// Run a script on its own thread against `client`, and wait for it to end. Must be called
/// from within a tokio runtime (multi-thread), which keeps driving the socket meanwhile.
pub async fn run(client: Client, script: Script, options: RunOptions) -> Outcome {
    run_with(Connector::Ready(client), script, options).await
}

/// [`run`] with the connection opened on first use, or already open.
pub async fn run_with(connector: Connector, script: Script, options: RunOptions) -> Outcome {
    run_to_end(connector, script, options).await.outcome
}

/// [`run_with`], keeping what the script returned and whether it reported a change.
pub async fn run_to_end(connector: Connector, script: Script, options: RunOptions) -> Finished {
    let rt = tokio::runtime::Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let console = options.console.clone();
    let spawned = std::thread::Builder::new()
        .name("midscript-script".into())
        .spawn(move || {
            let outcome = engine::execute(rt, connector, script, options);
            let _ = tx.send(outcome);
        });
    let failed = || Finished {
        outcome: Outcome::Failed(FailureKind::Runtime),
        value: Ok(Value::Null),
        changed: false,
    };
    if let Err(e) = spawned {
        console.err(&format!("error: cannot start the script thread: {e}"));
        return failed();
    }
    match rx.await {
        Ok(finished) => finished,
        Err(_) => {
            console.err("error: the script thread stopped unexpectedly");
            failed()
        }
    }
}

/// Parse `script` without a server: `Err` holds the report of its first syntax error, as a
/// run would print it. [`run`] parses again; this lets a caller refuse a broken script before
/// it connects and logs in.
pub fn check(script: &Script) -> Result<(), String> {
    engine::check(script)
}

/// Run a script on the calling thread, which must not be a tokio worker (bindings block it).
pub fn run_blocking(
    rt: tokio::runtime::Handle,
    client: Client,
    script: Script,
    options: RunOptions,
) -> Outcome {
    engine::execute(rt, Connector::Ready(client), script, options).outcome
}
