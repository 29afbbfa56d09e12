//! The REPL (`midscript repl`): Rhai with the bindings of scripts, one persistent connection
//! and scope, completion and hints from the server's method catalog, dot-commands, and events
//! printed above the prompt.
//!
//! Threading: [`run`] is called on a plain thread of its own. It
//! owns the editor and the engine; `readline` and the bindings block that thread while tokio
//! drives the socket. Events of `subscribe("NAME")` are printed by tokio tasks through
//! rustyline's external printer, so the line being typed is redrawn below them. Ctrl-C while a
//! line runs is caught by a tokio task that cancels the line's token (after offering to abort
//! a running job); while typing, the editor sees it as a key.
//!
//! Layout: `helper.rs` (completion, hints, highlighting, the incomplete-input validator),
//! `commands.rs` (dot-commands), `eval.rs` (the line evaluator), `printer.rs` (results,
//! events, the console).

pub mod commands;
mod eval;
pub mod helper;
pub mod printer;

use std::cell::RefCell;
use std::io::IsTerminal;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use rhai::{Engine, EvalAltResult, ImmutableString, NativeCallContext};
use rustyline::error::ReadlineError;
use rustyline::history::DefaultHistory;
use rustyline::{Cmd, CompletionType, Config, Editor, KeyCode, KeyEvent, Modifiers};
use serde_json::Value;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use self::commands::DotCommand;
use self::eval::{Evaluator, Extras, Outcome};
use self::helper::ReplHelper;
use self::printer::{ReplConsole, SharedSink};
use crate::catalog::Catalog;
pub use crate::catalog::MethodCatalog;
use crate::client::{self, Client};
use crate::output;
use crate::script::{self, Host, RunOptions};

/// A logged-in connection for the REPL.
pub struct Connected {
    /// The client.
    pub client: Client,
    /// Its method catalog.
    pub catalog: MethodCatalog,
    /// What the banner says about it (`wss://nas/api/current, catalog of TrueNAS 25.04.2`).
    pub label: String,
}

/// Opens connections for `.connect PROFILE` (the command line provides it).
pub trait Connector: Send {
    /// Connect as the profile says, replacing (and closing) the previous connection on
    /// success. Runs on the REPL thread, which it may block (and prompt on).
    fn connect(&mut self, rt: &Handle, profile: &str) -> Result<Connected, String>;
    /// Close the current connection (at the end of the session).
    fn finish(&mut self, rt: &Handle);
}

/// How the REPL looks and where it keeps history.
#[derive(Debug, Clone, Default)]
pub struct ReplOptions {
    /// Show `debug(..)` output and more detail.
    pub verbose: bool,
    /// The history file (`$XDG_STATE_HOME/midscript/history`).
    pub history: Option<PathBuf>,
}

/// Stops the running line on Ctrl-C: the tokio signal task calls [`Interrupt::hit`].
struct Interrupt {
    /// The running line's token; `None` while the user types.
    running: Mutex<Option<CancellationToken>>,
    /// When the abort of a running job was offered.
    offered: Mutex<Option<Instant>>,
    console: Arc<ReplConsole>,
}

/// How long the offer to abort a running job stands.
const OFFER: Duration = Duration::from_secs(3);

impl Interrupt {
    fn arm(&self, token: Option<CancellationToken>) {
        if let Ok(mut r) = self.running.lock() {
            *r = token;
        }
        if let Ok(mut o) = self.offered.lock() {
            *o = None;
        }
    }

    /// Ctrl-C: cancel the running line, but first offer when a job runs (aborting it).
    fn hit(&self) {
        let Some(token) = self.running.lock().ok().and_then(|r| r.clone()) else {
            return;
        };
        let jobs = self.console.running_jobs();
        if !jobs.is_empty() {
            let mut offered = match self.offered.lock() {
                Ok(o) => o,
                Err(_) => return token.cancel(),
            };
            if offered.is_none_or(|t| t.elapsed() > OFFER) {
                *offered = Some(Instant::now());
                let names: Vec<String> = jobs
                    .iter()
                    .map(|(id, m)| format!("job {id} ({m})"))
                    .collect();
                output::warn(&format!(
                    "\n{} is running: press Ctrl-C again within {} s to abort it and cancel the line",
                    names.join(", "),
                    OFFER.as_secs()
                ));
                return;
            }
        }
        token.cancel();
    }
}

/// A `subscribe("NAME")` of the REPL: events printed above the prompt until `cancel()`.
#[derive(Debug, Clone)]
struct Watch {
    name: ImmutableString,
    stop: CancellationToken,
}

type Watches = Rc<RefCell<Vec<Watch>>>;

/// What the REPL adds to the script engine: `subscribe(name)` printing events.
fn extras(sink: SharedSink, watches: Watches, color: bool) -> Extras {
    Rc::new(move |engine: &mut Engine, host: &Rc<Host>| {
        engine.register_type_with_name::<Watch>("Watch");
        let (h, sink, list) = (host.clone(), sink.clone(), watches.clone());
        engine.register_fn(
            "subscribe",
            move |ctx: NativeCallContext,
                  name: ImmutableString|
                  -> Result<Watch, Box<EvalAltResult>> {
                let client = h.client(ctx.call_position())?;
                let sub = h
                    .wait(None, client.subscribe(&name))
                    .map_err(|stop| stop.into_rhai(ctx.call_position()))?
                    .map_err(|e| script::client_error(&e, ctx.call_position()))?;
                let stop = CancellationToken::new();
                spawn_printer(&h.rt, sub, stop.clone(), sink.clone(), color);
                let watch = Watch { name, stop };
                list.borrow_mut().push(watch.clone());
                Ok(watch)
            },
        );
        let watches = watches.clone();
        engine.register_fn("cancel", move |w: &mut Watch| {
            w.stop.cancel();
            watches.borrow_mut().retain(|x| !x.stop.is_cancelled());
        });
        engine.register_get("name", |w: &mut Watch| w.name.clone());
        engine.register_fn("to_string", |w: &mut Watch| format!("Watch({})", w.name));
        engine.register_fn("to_debug", |w: &mut Watch| format!("Watch({})", w.name));
    })
}

/// Print a subscription's events through `sink` until `stop` (then unsubscribe).
fn spawn_printer(
    rt: &Handle,
    mut sub: client::Subscription,
    stop: CancellationToken,
    sink: SharedSink,
    color: bool,
) {
    rt.spawn(async move {
        loop {
            tokio::select! {
                biased;
                _ = stop.cancelled() => {
                    let _ = sub.unsubscribe().await;
                    break;
                }
                item = sub.recv() => match item {
                    Some(Ok(ev)) => sink.print(printer::event_line(&ev, color)),
                    Some(Err(e @ client::Error::Lagged { .. })) => sink.print(format!("warning: {e}")),
                    Some(Err(e)) => {
                        sink.print(format!("subscription {} ended: {e}", sub.name()));
                        break;
                    }
                    None => break,
                },
            }
        }
    });
}

/// The REPL's state between lines.
struct Repl {
    rt: Handle,
    evaluator: Evaluator,
    catalog: Arc<RwLock<MethodCatalog>>,
    vocabulary: Arc<RwLock<helper::Vocabulary>>,
    watches: Watches,
    connector: Box<dyn Connector>,
    interrupt: Arc<Interrupt>,
    console: Arc<ReplConsole>,
    color: bool,
    timing: bool,
    last: Option<Value>,
}

/// What to do after a line.
enum Flow {
    Continue,
    Quit(i32),
}

impl Repl {
    /// Run one Rhai input and print its result or error.
    fn eval(&mut self, text: &str) -> Flow {
        let started = Instant::now();
        self.interrupt.arm(Some(self.evaluator.cancel_token()));
        let outcome = self.evaluator.eval(text);
        self.interrupt.arm(None);
        self.console.clear_jobs();
        let flow = match outcome {
            Outcome::Value(v) => {
                let shown = match script::from_dynamic(&v) {
                    Err(_) if !v.is_unit() => self
                        .evaluator
                        .to_display(&v)
                        .map(|text| printer::other(&text, self.color)),
                    _ => printer::result(&v, self.color),
                };
                if let Some(text) = shown {
                    output::emit_line(&text);
                }
                self.last = script::from_dynamic(&v).ok();
                Flow::Continue
            }
            Outcome::Failed(report) => {
                output::warn(&printer::red(report.trim_end(), self.color));
                Flow::Continue
            }
            Outcome::Cancelled => {
                output::warn("cancelled");
                Flow::Continue
            }
            Outcome::Exit(code) => Flow::Quit(code),
        };
        if self.timing {
            output::warn(&printer::dim(
                &format!("({:.1?})", started.elapsed()),
                self.color,
            ));
        }
        self.refresh_vocabulary();
        flow
    }

    fn refresh_vocabulary(&self) {
        if let Ok(mut v) = self.vocabulary.write() {
            *v = self.evaluator.vocabulary();
        }
    }

    /// Run a dot-command.
    fn command(&mut self, cmd: DotCommand) -> Flow {
        let print = |r: Result<String, commands::UsageError>| match r {
            Ok(text) => output::emit(&text),
            Err(e) => output::warn(&e.to_string()),
        };
        match cmd {
            DotCommand::Help => print(Ok(commands::help_text())),
            DotCommand::Doc(m) => print(self.with_catalog(|c| commands::doc_text(c, &m))),
            DotCommand::Methods(p) => print(self.with_catalog(|c| commands::methods_text(c, &p))),
            DotCommand::Events => {
                let printed: Vec<String> = self
                    .watches
                    .borrow()
                    .iter()
                    .filter(|w| !w.stop.is_cancelled())
                    .map(|w| w.name.to_string())
                    .collect();
                let active = self
                    .evaluator
                    .client()
                    .map(|c| c.subscriptions())
                    .unwrap_or_default();
                print(Ok(commands::events_text(&active, &printed)));
            }
            DotCommand::Time(on) => {
                self.timing = on.unwrap_or(!self.timing);
                output::warn(&format!(
                    "timing {}",
                    if self.timing { "on" } else { "off" }
                ));
            }
            DotCommand::Table(expr) => {
                if !expr.is_empty() {
                    let color = std::mem::replace(&mut self.color, false);
                    // Evaluate without printing: the table replaces the JSON.
                    self.interrupt.arm(Some(self.evaluator.cancel_token()));
                    let outcome = self.evaluator.eval(&expr);
                    self.interrupt.arm(None);
                    self.color = color;
                    match outcome {
                        Outcome::Value(v) => self.last = script::from_dynamic(&v).ok(),
                        Outcome::Failed(r) => {
                            output::warn(&printer::red(r.trim_end(), self.color));
                            return Flow::Continue;
                        }
                        Outcome::Cancelled => {
                            output::warn("cancelled");
                            return Flow::Continue;
                        }
                        Outcome::Exit(code) => return Flow::Quit(code),
                    }
                }
                match &self.last {
                    None => output::warn("no result yet: .table EXPR, or a line first"),
                    Some(v) => match output::table(v) {
                        Some(t) => output::emit_line(&t),
                        None => {
                            output::warn("(not a list of objects; shown as JSON)");
                            output::emit_line(&printer::json(v, self.color));
                        }
                    },
                }
            }
            DotCommand::Save(file) => {
                match commands::save(std::path::Path::new(&file), self.evaluator.accepted()) {
                    Ok(n) => output::warn(&format!("saved {n} lines to {file}")),
                    Err(e) => output::warn(&e.to_string()),
                }
            }
            DotCommand::Connect(profile) => match self.connector.connect(&self.rt, &profile) {
                Ok(c) => {
                    self.stop_watches();
                    self.evaluator.rebuild(Some(c.client));
                    if let Ok(mut cat) = self.catalog.write() {
                        *cat = c.catalog;
                    }
                    output::warn(&format!("connected: {}", c.label));
                }
                Err(e) => output::warn(&printer::red(&format!("error: {e}"), self.color)),
            },
            DotCommand::Quit => return Flow::Quit(0),
        }
        Flow::Continue
    }

    fn with_catalog<T>(&self, f: impl FnOnce(&Catalog) -> T) -> T {
        match self.catalog.read() {
            Ok(c) => f(c.get()),
            Err(poisoned) => f(poisoned.into_inner().get()),
        }
    }

    fn stop_watches(&self) {
        for w in self.watches.borrow_mut().drain(..) {
            w.stop.cancel();
        }
    }
}

/// Run the REPL on the calling thread (not a tokio worker: it blocks) until `.quit`, Ctrl-D
/// or `exit()`; returns the exit status.
pub fn run(
    rt: Handle,
    first: Connected,
    connector: Box<dyn Connector>,
    options: ReplOptions,
) -> i32 {
    let _context = rt.enter();
    let interactive = std::io::stdin().is_terminal();
    let color = printer::color_enabled(std::io::stdout().is_terminal());
    let catalog = Arc::new(RwLock::new(first.catalog));
    let vocabulary = Arc::new(RwLock::new(helper::Vocabulary::default()));

    let config = match Config::builder()
        .auto_add_history(false)
        .history_ignore_dups(true)
        .and_then(|b| b.max_history_size(10_000))
    {
        Ok(b) => b
            .history_ignore_space(true)
            .completion_type(CompletionType::List)
            .color_mode(if color {
                rustyline::ColorMode::Enabled
            } else {
                rustyline::ColorMode::Disabled
            })
            .build(),
        Err(_) => Config::default(),
    };
    let mut rl: Editor<ReplHelper, DefaultHistory> = match Editor::with_config(config) {
        Ok(rl) => rl,
        Err(e) => {
            output::warn(&format!(
                "midscript: error: cannot start the line editor: {e}"
            ));
            return 1;
        }
    };
    rl.set_helper(Some(ReplHelper::new(
        catalog.clone(),
        vocabulary.clone(),
        color,
    )));
    rl.bind_sequence(KeyEvent(KeyCode::Enter, Modifiers::ALT), Cmd::Newline);
    if let Some(path) = &options.history {
        let _ = rl.load_history(path);
    }
    let sink: SharedSink = match (interactive, rl.create_external_printer()) {
        (true, Ok(p)) => Arc::new(printer::ExternalSink(Mutex::new(p))),
        _ => Arc::new(printer::StdoutSink),
    };

    let console = Arc::new(ReplConsole::new());
    let mut run_options = RunOptions::new(console.clone());
    run_options.verbose = options.verbose;
    // Did-you-mean for unknown methods, from the session's catalog.
    run_options.catalog = Some(catalog.clone());
    let watches: Watches = Rc::default();
    let evaluator = Evaluator::new(
        rt.clone(),
        first.client,
        run_options,
        extras(sink, watches.clone(), color),
    );
    let interrupt = Arc::new(Interrupt {
        running: Mutex::new(None),
        offered: Mutex::new(None),
        console: console.clone(),
    });
    let signals = {
        let interrupt = interrupt.clone();
        rt.spawn(async move {
            while tokio::signal::ctrl_c().await.is_ok() {
                interrupt.hit();
            }
        })
    };
    let mut repl = Repl {
        rt: rt.clone(),
        evaluator,
        catalog,
        vocabulary,
        watches,
        connector,
        interrupt,
        console,
        color,
        timing: false,
        last: None,
    };
    repl.refresh_vocabulary();
    output::warn(&format!(
        "midscript REPL: {}\n{}",
        first.label,
        printer::dim(
            "Rhai with the script bindings: call(\"system.info\"). Tab completes, .help for help, Ctrl-D quits.",
            color
        )
    ));

    let prompt = (
        "midscript> ".to_owned(),
        printer::bold("midscript> ", color),
    );
    let status = loop {
        match rl.readline(&prompt) {
            Ok(line) => {
                if line.trim().is_empty() {
                    continue;
                }
                if !holds_secret(&line) {
                    let _ = rl.add_history_entry(line.as_str());
                }
                let flow = match commands::parse(&line) {
                    Some(Ok(cmd)) => repl.command(cmd),
                    Some(Err(e)) => {
                        output::warn(&e.to_string());
                        Flow::Continue
                    }
                    None => repl.eval(&line),
                };
                if let Flow::Quit(code) = flow {
                    break code;
                }
            }
            Err(ReadlineError::Interrupted) => continue,
            Err(ReadlineError::Eof) => break 0,
            Err(e) => {
                output::warn(&format!("midscript: error: reading input: {e}"));
                break 1;
            }
        }
    };
    signals.abort();
    repl.stop_watches();
    repl.evaluator.shutdown();
    if let Some(path) = &options.history {
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let _ = rl.append_history(path);
    }
    repl.connector.finish(&rt);
    status
}

/// Does a line look like it holds a secret (a word such as `password`, `token` or `key`, by
/// the rule every output uses, or something shaped like an API key)? Such lines stay out of
/// the history file.
fn holds_secret(line: &str) -> bool {
    let words = line.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '-'));
    words.into_iter().any(|w| {
        crate::protocol::redact::looks_secret(w)
            || w.split_once('-').is_some_and(|(id, material)| {
                !id.is_empty()
                    && id.bytes().all(|b| b.is_ascii_digit())
                    && material.len() >= 32
                    && material.bytes().all(|b| b.is_ascii_alphanumeric())
            })
    })
}

#[cfg(test)]
mod tests {
    use super::holds_secret;

    #[test]
    fn lines_with_secrets_stay_out_of_the_history() {
        for secret in [
            r#"call("user.update", 1, #{password: "hunter2"})"#,
            r#"let k = "1-aBcDeFgHiJkLmNoPqRsTuVwXyZ0123456789abcdef";"#,
            r#"call("auth.login_ex", #{mechanism: "API_KEY_PLAIN", api_key: x})"#,
            r#"env("DB_PASS")"#,
            r#"let token = call("auth.generate_token");"#,
        ] {
            assert!(holds_secret(secret), "{secret}");
        }
        for plain in [
            r#"call("system.info")"#,
            "m.keys()",
            r#"job("app.start", "plex")"#,
            "let x = 1-2;",
        ] {
            assert!(!holds_secret(plain), "{plain}");
        }
    }
}
