//! The Engine: limits, strict variables and properties, print hooks, module resolution, the
//! `call(..)` custom syntax, and running one script to its [`Outcome`].

use std::rc::Rc;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, EvalContext, Expression, FnPtr, ImmutableString,
    ParseError, ParseErrorType, Position, Scope,
};

use super::bindings::{self, Host};
use super::report::{self, FailureKind};
use super::values::{from_dynamic, to_dynamic};
use super::{Finished, Outcome, RunOptions, Script, compose, helpers, stdlib, ws};

/// Register `call(..)` on an engine: `call("method", args..)` calls a middleware method through
/// the native `rpc_raw(method, [args])`, and `call(fn_ptr, args..)` still calls the function
/// pointer. (`call` is a Rhai keyword, so this is custom syntax; Rhai's method form
/// `fp.call(..)` is no longer available: write `call(fp, ..)`.)
///
/// The REPL registers the same syntax on its validation engine.
pub fn register_call_syntax(engine: &mut Engine) {
    engine.register_custom_syntax_with_state_raw("call", parse_call, false, eval_call);
}

/// `call ( [expr [, expr]* [,]] )`
fn parse_call(
    symbols: &[ImmutableString],
    look_ahead: &str,
    _state: &mut Dynamic,
) -> Result<Option<ImmutableString>, ParseError> {
    let last = symbols
        .last()
        .map(ImmutableString::as_str)
        .unwrap_or("call");
    let next = match last {
        "call" => "(",
        "(" | "," if look_ahead == ")" => ")",
        "(" | "," => "$expr$",
        "$expr$" if look_ahead == "," => ",",
        "$expr$" => ")",
        ")" => return Ok(None),
        other => {
            return Err(ParseError(
                Box::new(ParseErrorType::BadInput(rhai::LexError::ImproperSymbol(
                    other.to_string(),
                    "call(..)".into(),
                ))),
                Position::NONE,
            ));
        }
    };
    Ok(Some(next.into()))
}

fn eval_call(
    ctx: &mut EvalContext,
    inputs: &[Expression],
    _state: &Dynamic,
) -> Result<Dynamic, Box<EvalAltResult>> {
    let Some(first) = inputs.first() else {
        return Err(bindings::script_error(
            "argument",
            "call(): the method name is missing".into(),
            Position::NONE,
        ));
    };
    let pos = first.position();
    let fill = |mut e: Box<EvalAltResult>| {
        if e.position().is_none() {
            e.set_position(pos);
        }
        e
    };
    let target = ctx.eval_expression_tree(first).map_err(fill)?;
    let mut args = Array::with_capacity(inputs.len() - 1);
    for expr in &inputs[1..] {
        args.push(ctx.eval_expression_tree(expr).map_err(fill)?);
    }
    if target.is_fnptr() {
        let fp = target.cast::<FnPtr>();
        return ctx
            .call_native_fn::<Dynamic>("__call_fn_ptr", (fp, args))
            .map_err(fill);
    }
    if target.is_string() {
        let method = target.into_immutable_string().unwrap_or_default();
        return ctx
            .call_native_fn::<Dynamic>("rpc_raw", (method, args))
            .map_err(fill);
    }
    Err(fill(bindings::script_error(
        "argument",
        format!(
            "call: the first argument must be a method name or a function pointer, not {}",
            target.type_name()
        ),
        Position::NONE,
    )))
}

/// The longest string a script may hold (and so the largest file `read_file` reads).
pub(crate) const MAX_STRING_SIZE: usize = 16 << 20;

/// Strict variables and properties, and the size limits every script engine uses.
pub(crate) fn apply_limits(engine: &mut Engine) {
    engine.set_strict_variables(true);
    engine.set_fail_on_invalid_map_property(true);
    engine.set_max_call_levels(64);
    engine.set_max_expr_depths(128, 64);
    engine.set_max_string_size(MAX_STRING_SIZE);
    engine.set_max_array_size(1 << 20);
    engine.set_max_map_size(1 << 20);
    engine.set_max_modules(256);
}

/// An engine with the run's limits and strictness, before bindings are registered.
fn new_engine(options: &RunOptions) -> Engine {
    let mut engine = Engine::new();
    apply_limits(&mut engine);
    engine.set_max_operations(options.max_operations);
    let cancel = options.cancel.clone();
    engine.on_progress(move |_| cancel.is_cancelled().then(|| Dynamic::from("cancelled")));
    let console = options.console.clone();
    engine.on_print(move |s| console.out(s));
    let console = options.console.clone();
    let verbose = options.verbose;
    engine.on_debug(move |s, src, pos| {
        if verbose {
            let at = match (src, pos.line()) {
                (Some(src), Some(l)) => format!("{src}:{l}: "),
                (None, Some(l)) => format!("{l}: "),
                _ => String::new(),
            };
            console.err(&format!("debug: {at}{s}"));
        }
    });
    register_call_syntax(&mut engine);
    engine
}

/// The engine scripts run on (limits, hooks, the `call` syntax, the server bindings, the
/// helpers and the module resolver) and the host its bindings share. `dir` is where relative
/// paths and imports start; module sources are recorded in `sources` for error reports.
/// The REPL builds its engine here too, so both speak the same Rhai.
pub(crate) fn build(
    rt: &tokio::runtime::Handle,
    connector: super::Connector,
    dir: std::path::PathBuf,
    options: &RunOptions,
    sources: &report::Sources,
) -> (Engine, Rc<Host>) {
    let host = Rc::new(Host::new(
        connector,
        rt.clone(),
        options.cancel.clone(),
        options.console.clone(),
        dir.clone(),
    ));
    compose::set_journal(&host, options);
    let mut engine = new_engine(options);
    bindings::register(&mut engine, &host);
    helpers::register(&mut engine, &host);
    compose::register(&mut engine, &host);
    ws::register(&mut engine, &host);
    engine.set_module_resolver(stdlib::Resolver::new(
        dir,
        options.lib_dir.clone(),
        sources.clone(),
    ));
    (engine, host)
}

/// Keep a `#!` first line as a comment so line numbers stay right.
fn strip_shebang(text: &str) -> std::borrow::Cow<'_, str> {
    match text.strip_prefix("#!") {
        Some(rest) => format!("// #!{rest}").into(),
        None => text.into(),
    }
}

/// The names of the static modules the bindings register (`json::parse`, …): strict
/// variables make a parse fail on an unknown namespace, so a parse-only engine needs them too.
pub(crate) const STATIC_MODULES: [&str; 4] = ["json", "yaml", "log", "ws"];

/// Parse `script` without running it (and without a server): the report of its first syntax
/// error, rendered as a failed run would show it. Run before connecting, so a typo costs no
/// login (the server rate-limits them).
pub(crate) fn check(script: &Script) -> Result<(), String> {
    let mut engine = Engine::new();
    apply_limits(&mut engine);
    register_call_syntax(&mut engine);
    for name in STATIC_MODULES {
        engine.register_static_module(name, rhai::Module::new().into());
    }
    let sources = stdlib::new_sources();
    sources
        .borrow_mut()
        .insert(script.name.clone(), script.text.clone());
    let mut scope = Scope::new();
    scope.push_constant("args", Array::new());
    match engine.compile_with_scope(&scope, strip_shebang(&script.text)) {
        Ok(_) => Ok(()),
        Err(e) => Err(report::render_parse(&e, &script.name, &sources)
            .trim_end()
            .to_owned()),
    }
}

/// Run `script` to its end on the calling thread.
pub(crate) fn execute(
    rt: tokio::runtime::Handle,
    connector: super::Connector,
    script: Script,
    options: RunOptions,
) -> Finished {
    // Timers and sockets created on this thread need the runtime's context (`Handle::enter`: without it tokio panics on the script thread).
    let _context = rt.enter();
    let console = options.console.clone();
    let sources = stdlib::new_sources();
    sources
        .borrow_mut()
        .insert(script.name.clone(), script.text.clone());

    let (engine, host) = build(&rt, connector, script.dir.clone(), &options, &sources);

    let mut scope = Scope::new();
    let args: Array = options
        .args
        .iter()
        .map(|a| Dynamic::from(a.clone()))
        .collect();
    scope.push_constant("args", args);
    let vars = serde_json::Value::Object(options.vars.clone().into_iter().collect());
    scope.push_constant("vars", to_dynamic(&vars));
    scope.push_constant("check_mode", options.check_mode);

    let mut ast = match engine.compile_with_scope(&scope, strip_shebang(&script.text)) {
        Ok(ast) => ast,
        Err(e) => {
            console.err(report::render_parse(&e, &script.name, &sources).trim_end());
            return Finished {
                outcome: Outcome::Failed(FailureKind::Parse),
                value: Ok(serde_json::Value::Null),
                changed: false,
            };
        }
    };
    ast.set_source(script.name.as_str());
    let result = engine.eval_ast_with_scope::<rhai::Dynamic>(&mut scope, &ast);
    host.shutdown();
    let changed = host.changed.get();
    let mut value = Ok(serde_json::Value::Null);
    let outcome = match result {
        Ok(returned) => {
            value = from_dynamic(&returned);
            match host.exit_status.get() {
                Some(code) => Outcome::Exit(code),
                None => Outcome::Success,
            }
        }
        Err(e) => match *e {
            EvalAltResult::Exit(..) => Outcome::Exit(host.exit_status.get().unwrap_or(0)),
            _ if options.cancel.is_cancelled() => {
                console.err("cancelled");
                Outcome::Cancelled
            }
            err => {
                let (kind, text) =
                    report::render(&err, &script.name, &sources, options.catalog.as_ref());
                console.err(text.trim_end());
                Outcome::Failed(kind)
            }
        },
    };
    Finished {
        outcome,
        value,
        changed,
    }
}
