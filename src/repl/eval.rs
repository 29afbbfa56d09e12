//! The line evaluator: one engine (built by [`crate::script::build`], so the REPL speaks the
//! same Rhai with the same bindings as scripts), one [`Scope`] and one [`AST`] of functions
//! that live from line to line.
//!
//! Each line is compiled against the scope (strict variables know what earlier lines defined),
//! merged into the function AST (so `fn` definitions stay, rhai-repl's trick), run, and the
//! statements cleared again. `import "m" as m;` at the start of a line stays in effect too:
//! the module is registered on the engine under its alias.

use std::path::PathBuf;
use std::rc::Rc;

use regex::Regex;
use rhai::{AST, Dynamic, Engine, Position, Scope};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::helper::Vocabulary;
use crate::client::Client;
use crate::script::{self, Host, RunOptions, Sources};

/// The source name errors show for a line (` --> repl:1:9`).
const SOURCE: &str = "repl";

/// How a line ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// It ran; this is its value (`()` for statements).
    Value(Dynamic),
    /// It failed: the rendered report (message, position, caret).
    Failed(String),
    /// Ctrl-C stopped it.
    Cancelled,
    /// It called `exit(..)`: the REPL ends with this status.
    Exit(i32),
}

/// Registers what the REPL adds to the script engine (see `mod.rs`), on every (re)build.
pub(crate) type Extras = Rc<dyn Fn(&mut Engine, &Rc<Host>)>;

/// Evaluates lines against one persistent scope.
pub(crate) struct Evaluator {
    rt: Handle,
    options: RunOptions,
    engine: Engine,
    host: Rc<Host>,
    scope: Scope<'static>,
    functions: AST,
    sources: Sources,
    /// `(path, alias)` of the imports that stay in effect.
    imports: Vec<(String, String)>,
    extras: Extras,
    accepted: Vec<String>,
}

impl Evaluator {
    /// An evaluator on `client`; `options.cancel` is replaced by a fresh token per engine.
    pub(crate) fn new(rt: Handle, client: Client, options: RunOptions, extras: Extras) -> Self {
        let sources = script::new_sources();
        let (engine, host) = script::build(
            &rt,
            script::Connector::Ready(client),
            PathBuf::from("."),
            &options,
            &sources,
        );
        let mut scope = Scope::new();
        scope.push_constant("args", rhai::Array::new());
        let mut me = Evaluator {
            rt,
            options,
            engine,
            host,
            scope,
            functions: AST::empty(),
            sources,
            imports: Vec::new(),
            extras,
            accepted: Vec::new(),
        };
        me.add_extras();
        me
    }

    /// Build the engine again on `client` (or the current one), with a fresh cancellation
    /// token, keeping the scope, the functions and the imports. Subscriptions with callbacks
    /// belong to the old engine and end.
    pub(crate) fn rebuild(&mut self, client: Option<Client>) {
        self.host.shutdown();
        let connector = match client {
            Some(c) => script::Connector::Ready(c),
            None => self.host.connector(),
        };
        self.options.cancel = CancellationToken::new();
        let (engine, host) = script::build(
            &self.rt,
            connector,
            PathBuf::from("."),
            &self.options,
            &self.sources,
        );
        self.engine = engine;
        self.host = host;
        self.add_extras();
        for (path, alias) in self.imports.clone() {
            let _ = self.register_import(&path, &alias);
        }
    }

    /// The REPL's additions to the engine.
    fn add_extras(&mut self) {
        (self.extras)(&mut self.engine, &self.host);
    }

    /// The connection the bindings use.
    pub(crate) fn client(&self) -> Option<Client> {
        self.host.current_client()
    }

    /// The token Ctrl-C cancels to stop the running line.
    pub(crate) fn cancel_token(&self) -> CancellationToken {
        self.options.cancel.clone()
    }

    /// How Rhai's `to_string` shows `value` (for types of midscript's own, such as a
    /// subscription handle, whose Rust type name means nothing to a user).
    pub(crate) fn to_display(&self, value: &Dynamic) -> Option<String> {
        let mut scope = rhai::Scope::new();
        scope.push("value", value.clone());
        self.engine
            .eval_with_scope::<String>(&mut scope, "to_string(value)")
            .ok()
    }

    /// Lines that ran without error, in order (for `.save`).
    pub(crate) fn accepted(&self) -> &[String] {
        &self.accepted
    }

    /// Run one (possibly multi-line) input.
    pub(crate) fn eval(&mut self, text: &str) -> Outcome {
        if self.options.cancel.is_cancelled() {
            self.rebuild(None);
        }
        self.sources
            .borrow_mut()
            .insert(SOURCE.to_owned(), text.to_owned());
        let ast = match self.engine.compile_with_scope(&self.scope, text) {
            Ok(ast) => ast,
            Err(e) => {
                return Outcome::Failed(script::render_parse(&e, SOURCE, &self.sources));
            }
        };
        self.functions += ast;
        let result = self
            .engine
            .eval_ast_with_scope::<Dynamic>(&mut self.scope, &self.functions);
        self.functions.clear_statements();
        // `exit(..)` ends the session (Rhai hands it back as the top-level value).
        if let Some(code) = self.host.exit_status.take() {
            return Outcome::Exit(code);
        }
        match result {
            Ok(value) => {
                self.accepted.push(text.trim_end().to_owned());
                if let Err(e) = self.remember_imports(text) {
                    return Outcome::Failed(e);
                }
                Outcome::Value(value)
            }
            Err(err) => match *err {
                _ if self.options.cancel.is_cancelled() => Outcome::Cancelled,
                err => Outcome::Failed(
                    script::render_error(
                        &err,
                        SOURCE,
                        &self.sources,
                        self.options.catalog.as_ref(),
                    )
                    .1,
                ),
            },
        }
    }

    /// Keep the line's top-level `import "path" as alias;` in effect for later lines.
    fn remember_imports(&mut self, text: &str) -> Result<(), String> {
        let re = Regex::new(r#"(?m)^\s*import\s+"([^"\\]+)"\s+as\s+([A-Za-z_][A-Za-z0-9_]*)"#)
            .map_err(|e| e.to_string())?;
        let found: Vec<(String, String)> = re
            .captures_iter(text)
            .map(|c| (c[1].to_owned(), c[2].to_owned()))
            .collect();
        for (path, alias) in found {
            self.register_import(&path, &alias)?;
            self.imports.retain(|(_, a)| *a != alias);
            self.imports.push((path, alias));
        }
        Ok(())
    }

    fn register_import(&mut self, path: &str, alias: &str) -> Result<(), String> {
        let module = self
            .engine
            .module_resolver()
            .resolve(&self.engine, None, path, Position::NONE)
            .map_err(|e| format!("import {path:?}: {e}"))?;
        self.engine.register_static_module(alias, module);
        Ok(())
    }

    /// The names completion offers: functions (registered, imported and the session's) and
    /// the variables in scope.
    pub(crate) fn vocabulary(&self) -> Vocabulary {
        let mut v = Vocabulary::default();
        for sig in self.engine.gen_fn_signatures(true) {
            let name = sig.split('(').next().unwrap_or_default();
            let name = name.rsplit("::").next().unwrap_or(name).trim();
            if !name.is_empty() && name.chars().all(|c| c.is_alphanumeric() || c == '_') {
                v.functions.insert(name.to_owned());
            }
        }
        for f in self.functions.iter_functions() {
            v.functions.insert(f.name.to_owned());
        }
        for (path, alias) in &self.imports {
            let _ = path;
            v.variables.insert(format!("{alias}::"));
        }
        v.variables
            .extend(self.scope.iter_raw().map(|(name, _, _)| name.to_owned()));
        v
    }

    /// End subscriptions and jobs of the current engine (at the end of the session).
    pub(crate) fn shutdown(&self) {
        self.host.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::mock::{MockConfig, MockServer};
    use crate::repl::printer::ReplConsole;

    /// An evaluator on a thread of its own against the mock (bindings block their thread).
    fn with_evaluator(test: impl FnOnce(&mut Evaluator) + Send + 'static) {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let server = rt
            .block_on(MockServer::start(MockConfig::for_tests()))
            .unwrap();
        let mut options = crate::client::ConnectOptions::new(server.url());
        options.credentials = Some(crate::client::Credentials::Password {
            username: "truenas_admin".into(),
            password: crate::client::Secret::new(crate::mock::TEST_PASSWORD),
            otp: None,
            otp_prompt: None,
        });
        let client = rt.block_on(Client::connect(options)).unwrap();
        let handle = rt.handle().clone();
        std::thread::spawn(move || {
            let _guard = handle.enter();
            let options = RunOptions::new(Arc::new(ReplConsole::new()));
            let mut ev = Evaluator::new(
                handle,
                client,
                options,
                Rc::new(|_: &mut Engine, _: &Rc<Host>| {}),
            );
            test(&mut ev);
            ev.shutdown();
        })
        .join()
        .unwrap();
        rt.block_on(server.shutdown());
    }

    fn value(o: Outcome) -> Dynamic {
        match o {
            Outcome::Value(v) => v,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn variables_functions_and_imports_persist_between_lines() {
        with_evaluator(|ev| {
            assert!(value(ev.eval("let x = 40;")).is_unit());
            assert!(value(ev.eval("fn add(a) { a + 2 }")).is_unit());
            assert_eq!(value(ev.eval("add(x)")).as_int().unwrap(), 42);
            assert!(value(ev.eval("import \"jobs\" as jobs;")).is_unit());
            let v = ev.vocabulary();
            assert!(v.variables.contains("x"), "{v:?}");
            assert!(v.functions.contains("add"));
            assert!(v.functions.contains("subscribe"));
            assert!(v.variables.contains("jobs::"));
            assert!(value(ev.eval("jobs::running()")).is_array());
            assert_eq!(ev.accepted().len(), 5);
        });
    }

    #[test]
    fn calls_reach_the_server_and_errors_are_reported_with_a_caret() {
        with_evaluator(|ev| {
            let v = value(ev.eval("call(\"core.ping\")"));
            assert_eq!(v.to_string(), "pong");
            let Outcome::Failed(report) = ev.eval("let y = 1;\ny.nope") else {
                panic!()
            };
            assert!(report.contains(" --> repl:2:"), "{report}");
            let Outcome::Failed(report) = ev.eval("call(\"no.such_method\")") else {
                panic!()
            };
            assert!(report.starts_with("error: "), "{report}");
            let Outcome::Failed(report) = ev.eval("let = ;") else {
                panic!()
            };
            assert!(report.contains("^"), "{report}");
            // Failed lines are not kept for .save; a caught error is.
            assert_eq!(ev.accepted(), ["call(\"core.ping\")"]);
            assert!(matches!(ev.eval("exit(3)"), Outcome::Exit(3)));
            assert!(matches!(
                ev.eval("fn bye() { exit() }\nbye()"),
                Outcome::Exit(0)
            ));
            assert!(matches!(
                ev.eval("try { exit(2) } catch { 1 }"),
                Outcome::Exit(2)
            ));
        });
    }

    #[test]
    fn a_cancelled_line_stops_and_the_next_one_runs() {
        with_evaluator(|ev| {
            assert!(value(ev.eval("let kept = 1;")).is_unit());
            let token = ev.cancel_token();
            std::thread::spawn(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                token.cancel();
            });
            assert!(matches!(ev.eval("sleep(10000)"), Outcome::Cancelled));
            assert_eq!(value(ev.eval("kept + 1")).as_int().unwrap(), 2);
        });
    }
}
