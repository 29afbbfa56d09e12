//! Helpers that need no server: `env`, `read_file`, `json::parse/stringify/pretty`,
//! `yaml::parse` (YAML 1.2 typing), `log::info/warn/error`, `now`, `iso_time`. (`print`, `debug` and `exit` are
//! Rhai's own; `print` goes through the console, see `engine.rs`.)

use std::rc::Rc;

use rhai::{Dynamic, Engine, EvalAltResult, INT, ImmutableString, Map, Module, Position};
use serde_json::Value;

use super::bindings::{Host, script_error};
use super::values::{from_dynamic, to_dynamic};
use crate::protocol::ejson;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Register the helpers on `engine`.
pub(crate) fn register(engine: &mut Engine, host: &Rc<Host>) {
    engine.register_fn("env", |name: &str| -> Dynamic {
        std::env::var(name).map_or(Dynamic::UNIT, Into::into)
    });

    let h = host.clone();
    engine.register_fn("read_file", move |path: &str| -> Fallible<String> {
        let full = h.dir.join(path);
        std::fs::read_to_string(&full).map_err(|e| {
            script_error(
                "io",
                format!("read_file({path}): {}: {e}", full.display()),
                Position::NONE,
            )
        })
    });

    engine.register_fn("now", || -> INT {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as INT)
    });
    engine.register_fn("iso_time", |ms: INT| ejson::iso8601_utc(ms));
    engine.register_fn("iso_time", |date: Map| -> Fallible<String> {
        match date.get("$date").and_then(|v| v.as_int().ok()) {
            Some(ms) => Ok(ejson::iso8601_utc(ms)),
            None => Err(script_error(
                "argument",
                "iso_time: expected milliseconds or a {\"$date\": ms} map".into(),
                Position::NONE,
            )),
        }
    });

    engine.register_static_module("json", json_module().into());
    engine.register_static_module("yaml", yaml_module().into());
    engine.register_static_module("log", log_module(host).into());
}

fn json_module() -> Module {
    let mut m = Module::new();
    m.set_native_fn("parse", |text: &str| -> Fallible<Dynamic> {
        serde_json::from_str::<Value>(text)
            .map(|v| to_dynamic(&v))
            .map_err(|e| script_error("json", format!("json::parse: {e}"), Position::NONE))
    });
    m.set_native_fn("stringify", |value: Dynamic| -> Fallible<ImmutableString> {
        let v = from_dynamic(&value)
            .map_err(|e| script_error("json", format!("json::stringify: {e}"), Position::NONE))?;
        Ok(v.to_string().into())
    });
    m.set_native_fn("pretty", |value: Dynamic| -> Fallible<ImmutableString> {
        let v = from_dynamic(&value)
            .map_err(|e| script_error("json", format!("json::pretty: {e}"), Position::NONE))?;
        serde_json::to_string_pretty(&v)
            .map(Into::into)
            .map_err(|e| script_error("json", format!("json::pretty: {e}"), Position::NONE))
    });
    m
}

fn yaml_module() -> Module {
    let mut m = Module::new();
    m.set_native_fn("parse", |text: &str| -> Fallible<Dynamic> {
        // YAML 1.2 typing, as compose files and most tools expect: `yes`, `y`, `on` and
        // `0755` stay strings.
        let options = serde_saphyr::options! {
            strict_booleans: true,
            leading_zero_numbers_as_strings: true,
            underscored_numbers_as_strings: true,
        };
        serde_saphyr::from_str_with_options::<Value>(text, options)
            .map(|v| to_dynamic(&v))
            .map_err(|e| script_error("yaml", format!("yaml::parse: {e}"), Position::NONE))
    });
    m
}

fn log_module(host: &Rc<Host>) -> Module {
    let mut m = Module::new();
    for (name, label) in [("info", "info"), ("warn", "warning"), ("error", "error")] {
        let console = host.console.clone();
        m.set_native_fn(name, move |msg: Dynamic| -> Fallible<()> {
            console.err(&format!("{label}: {msg}"));
            Ok(())
        });
    }
    m
}
