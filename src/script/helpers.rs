//! Helpers that need no server: `env`, `read_file`, `json::parse/stringify/pretty`,
//! `yaml::parse` (YAML 1.2 typing), `log::info/warn/error`, `now`, `iso_time`. (`print`, `debug` and `exit` are
//! Rhai's own; `print` goes through the console, see `engine.rs`.)

use std::rc::Rc;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, INT, ImmutableString, Map, Module, NativeCallContext,
    Position,
};
use serde_json::Value;

use super::bindings::{Host, script_error};
use super::values::{self, from_dynamic, to_dynamic};
use crate::protocol::ejson;

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// Register the helpers on `engine`.
pub(crate) fn register(engine: &mut Engine, host: &Rc<Host>) {
    engine.register_fn("env", |name: &str| -> Dynamic {
        std::env::var(name).map_or(Dynamic::UNIT, Into::into)
    });

    let h = host.clone();
    engine.register_fn(
        "read_file",
        move |ctx: NativeCallContext, path: &str| -> Fallible<String> {
            let pos = ctx.call_position();
            let full = h.dir.join(path);
            let fail = |e: String| script_error("io", format!("read_file({path}): {e}"), pos);
            // On a blocking thread, so Ctrl-C ends the wait even when the read itself hangs
            // (a FIFO nobody writes to).
            let cancel = h.cancel.clone();
            let reading = full.clone();
            let task =
                h.rt.spawn_blocking(move || read_bounded(&reading, MAX_FILE_SIZE, &cancel));
            match h.wait(None, task) {
                Ok(Ok(Ok(text))) => Ok(text),
                Ok(Ok(Err(e))) => Err(fail(format!("{}: {e}", full.display()))),
                Ok(Err(e)) => Err(fail(format!("the read stopped: {e}"))),
                Err(stop) => Err(stop.into_rhai(pos)),
            }
        },
    );

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

    register_printing(engine);
    engine.register_static_module("json", json_module().into());
    engine.register_static_module("yaml", yaml_module().into());
    engine.register_static_module("log", log_module(host).into());
}

/// The largest file `read_file` reads: as large as a script string may be.
pub(crate) const MAX_FILE_SIZE: u64 = super::engine::MAX_STRING_SIZE as u64;

/// Read a UTF-8 file of at most `limit` bytes, in pieces, stopping when `cancel` fires. A
/// larger file (or an endless one such as `/dev/zero`) is an error, not a memory exhaustion.
fn read_bounded(
    path: &std::path::Path,
    limit: u64,
    cancel: &tokio_util::sync::CancellationToken,
) -> std::io::Result<String> {
    use std::io::{Error, ErrorKind, Read};
    let mut file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if cancel.is_cancelled() {
            return Err(Error::new(ErrorKind::Interrupted, "cancelled"));
        }
        let n = file.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        if bytes.len() as u64 + n as u64 > limit {
            return Err(Error::new(
                ErrorKind::FileTooLarge,
                format!(
                    "the file is larger than {} MiB, the most read_file reads",
                    limit >> 20
                ),
            ));
        }
        bytes.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidData,
            format!("not UTF-8 text (at byte {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// Arrays and maps print with a bounded depth: Rhai's own printing recurses without a bound and
/// overflows the stack on a value like `[[[…5,000 levels…]]]`. `print` and `debug` of a value
/// nested too deeply throw; `to_string` (used by string interpolation, which cannot fail)
/// gives a placeholder instead.
fn register_printing(engine: &mut Engine) {
    fn placeholder(e: values::TooDeep) -> String {
        format!("<{e}>")
    }
    fn thrown(what: &str, e: values::TooDeep, ctx: &NativeCallContext) -> Box<EvalAltResult> {
        script_error("value", format!("{what}: {e}"), ctx.call_position())
    }
    for name in ["to_string", "to_debug"] {
        engine.register_fn(name, |a: &mut Array| {
            values::display_array(a).unwrap_or_else(placeholder)
        });
        engine.register_fn(name, |m: &mut Map| {
            values::display_map(m).unwrap_or_else(placeholder)
        });
    }
    for name in ["print", "debug"] {
        engine.register_fn(
            name,
            move |ctx: NativeCallContext, a: &mut Array| -> Fallible<String> {
                values::display_array(a).map_err(|e| thrown(name, e, &ctx))
            },
        );
        engine.register_fn(
            name,
            move |ctx: NativeCallContext, m: &mut Map| -> Fallible<String> {
                values::display_map(m).map_err(|e| thrown(name, e, &ctx))
            },
        );
    }
}

fn json_module() -> Module {
    let mut m = Module::new();
    m.set_native_fn(
        "parse",
        |ctx: NativeCallContext, text: &str| -> Fallible<Dynamic> {
            serde_json::from_str::<Value>(text)
                .map(|v| to_dynamic(&v))
                .map_err(|e| script_error("json", format!("json::parse: {e}"), ctx.call_position()))
        },
    );
    for (name, pretty) in [("stringify", false), ("pretty", true)] {
        m.set_native_fn(
            name,
            move |ctx: NativeCallContext, value: Dynamic| -> Fallible<ImmutableString> {
                let fail = |e: String| {
                    script_error("json", format!("json::{name}: {e}"), ctx.call_position())
                };
                let v = from_dynamic(&value).map_err(|e| fail(e.to_string()))?;
                if pretty {
                    serde_json::to_string_pretty(&v)
                        .map(Into::into)
                        .map_err(|e| fail(e.to_string()))
                } else {
                    Ok(v.to_string().into())
                }
            },
        );
    }
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
