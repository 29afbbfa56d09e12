//! Uncaught errors, rendered for people: the message, `file:line:col`, the source line with a
//! caret under the spot, and the chain of calls and imports that led there.
//!
//! ```text
//! error: app.get_instance: [ENOENT] App 'nope' not found
//!  --> scripts/x.rhai:3:16
//!   |
//! 3 | let app = call("app.get_instance", "nope");
//!   |                ^
//!   = note: in function 'show', called from scripts/x.rhai:7:1
//! ```

use std::cell::RefCell;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::rc::Rc;

use rhai::{Dynamic, EvalAltResult, Map, ParseError, Position};

use crate::catalog::{SharedCatalog, suggest_in};

/// Source texts by the name errors use (the script path, `stdlib/apps.rhai`, module paths).
pub(crate) type Sources = Rc<RefCell<HashMap<String, String>>>;

/// What kind of failure ended a run (decides the exit status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// The script (or a module it imports) does not parse.
    Parse,
    /// A script error: a `throw`, a type error, a missing variable or property…
    Runtime,
    /// An uncaught error from the server (a failed call or job).
    Server,
    /// The connection was lost.
    Connection,
}

impl FailureKind {
    /// 2 for parse errors, 3 for a lost connection, 1 otherwise.
    pub fn exit_code(self) -> i32 {
        match self {
            FailureKind::Parse => 2,
            FailureKind::Runtime | FailureKind::Server => 1,
            FailureKind::Connection => 3,
        }
    }
}

/// Render a parse error of `source_name`.
pub(crate) fn render_parse(err: &ParseError, source_name: &str, sources: &Sources) -> String {
    let mut out = format!("error: {}\n", err.err_type());
    snippet(&mut out, source_name, err.position(), sources);
    out
}

/// Render an uncaught runtime error raised while running `main` (the script's source name).
pub(crate) fn render(
    err: &EvalAltResult,
    main: &str,
    sources: &Sources,
    catalog: Option<&SharedCatalog>,
) -> (FailureKind, String) {
    let mut notes: Vec<String> = Vec::new();
    let mut file = main.to_owned();
    let mut err = err;
    loop {
        match err {
            EvalAltResult::ErrorInFunctionCall(name, src, inner, pos) => {
                let how = if name.starts_with("the subscribe callback") {
                    "run while the script waited at"
                } else {
                    "called from"
                };
                notes.push(format!(
                    "in {}, {how} {}",
                    describe_fn(name),
                    at(&file, *pos)
                ));
                if !src.is_empty() {
                    file = src.clone();
                }
                err = inner;
            }
            EvalAltResult::ErrorInModule(name, inner, pos) => {
                notes.push(format!("in module {name}, imported at {}", at(&file, *pos)));
                if !name.is_empty() {
                    file = name.clone();
                }
                err = inner;
            }
            _ => break,
        }
    }
    let (kind, message) = match err {
        EvalAltResult::ErrorParsing(kind, _) => (FailureKind::Parse, kind.to_string()),
        EvalAltResult::ErrorRuntime(value, _) => describe_thrown(value),
        EvalAltResult::ErrorTerminated(..) => (FailureKind::Runtime, "cancelled".to_owned()),
        other => (FailureKind::Runtime, strip_position(other)),
    };
    let mut out = format!("error: {message}\n");
    snippet(&mut out, &file, err.position(), sources);
    if let (EvalAltResult::ErrorRuntime(value, _), Some(catalog)) = (err, catalog)
        && let Some(method) = missing_method(value)
    {
        let near = suggest_in(catalog, &method);
        if !near.is_empty() {
            let _ = writeln!(out, "  = help: did you mean {}?", near.join(", "));
        }
    }
    // Innermost first: the frame nearest the error leads.
    for note in notes.iter().rev() {
        let _ = writeln!(out, "  = note: {note}");
    }
    (kind, out)
}

/// The method of a thrown "method does not exist" (-32601) error map.
fn missing_method(value: &Dynamic) -> Option<String> {
    let map = value.read_lock::<Map>()?;
    let code = map.get("code")?.as_int().ok()?;
    (code == crate::protocol::codes::METHOD_NOT_FOUND)
        .then(|| {
            map.get("method")
                .filter(|m| m.is_string())
                .map(|m| m.to_string())
        })
        .flatten()
}

fn at(file: &str, pos: Position) -> String {
    match (pos.line(), pos.position()) {
        (Some(l), Some(c)) => format!("{file}:{l}:{c}"),
        (Some(l), None) => format!("{file}:{l}"),
        _ => file.to_owned(),
    }
}

fn describe_fn(name: &str) -> String {
    if name.starts_with("anon$") {
        "a closure".to_owned()
    } else if name.starts_with("the ") {
        name.to_owned()
    } else {
        format!("function '{name}'")
    }
}

/// The message and kind of a thrown value: error maps of the bindings carry `summary` and
/// `kind`; other values are shown as they are.
fn describe_thrown(value: &Dynamic) -> (FailureKind, String) {
    if let Some(map) = value.read_lock::<Map>() {
        let text = |k: &str| map.get(k).filter(|v| v.is_string()).map(|v| v.to_string());
        if let Some(summary) = text("summary") {
            let kind = match text("kind").as_deref() {
                Some("server" | "validation" | "aborted") => FailureKind::Server,
                Some("connection") => FailureKind::Connection,
                _ => FailureKind::Runtime,
            };
            return (kind, summary);
        }
        return (FailureKind::Runtime, format!("uncaught: {value}"));
    }
    if value.is_unit() {
        return (FailureKind::Runtime, "uncaught throw".to_owned());
    }
    (FailureKind::Runtime, value.to_string())
}

fn strip_position(err: &EvalAltResult) -> String {
    let text = err.to_string();
    let pos = err.position();
    if pos.is_none() {
        return text;
    }
    let suffix = format!(" ({pos})");
    text.strip_suffix(&suffix)
        .map(str::to_owned)
        .unwrap_or(text)
}

/// ` --> file:line:col`, then the line with a caret under the column.
fn snippet(out: &mut String, file: &str, pos: Position, sources: &Sources) {
    let _ = writeln!(out, " --> {}", at(file, pos));
    let Some(line_no) = pos.line() else { return };
    let sources = sources.borrow();
    let Some(line) = sources
        .get(file)
        .and_then(|t| t.lines().nth(line_no.saturating_sub(1)))
    else {
        return;
    };
    let gutter = line_no.to_string();
    let pad = " ".repeat(gutter.len());
    let _ = writeln!(out, "{pad} |");
    let _ = writeln!(out, "{gutter} | {line}");
    if let Some(col) = pos.position() {
        let lead: String = line
            .chars()
            .take(col.saturating_sub(1))
            .map(|c| if c == '\t' { '\t' } else { ' ' })
            .collect();
        let _ = writeln!(out, "{pad} | {lead}^");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sources(name: &str, text: &str) -> Sources {
        let s: Sources = Rc::default();
        s.borrow_mut().insert(name.into(), text.into());
        s
    }

    #[test]
    fn parse_errors_point_at_the_spot() {
        let engine = rhai::Engine::new();
        let text = "let x = 1;\nlet y = (x + ;\n";
        let err = engine.compile(text).unwrap_err();
        let out = render_parse(&err, "t.rhai", &sources("t.rhai", text));
        assert!(out.starts_with("error: "), "{out}");
        assert!(out.contains(" --> t.rhai:2:"), "{out}");
        assert!(out.contains("2 | let y = (x + ;\n  |"), "{out}");
    }

    #[test]
    fn thrown_strings_and_maps_are_shown() {
        let text = "let a = 1;\n\tthrow \"boom\";\n";
        let err = rhai::Engine::new().run(text).unwrap_err();
        let (kind, out) = render(&err, "t.rhai", &sources("t.rhai", text), None);
        assert_eq!(kind, FailureKind::Runtime);
        assert_eq!(
            out,
            "error: boom\n --> t.rhai:2:2\n  |\n2 | \tthrow \"boom\";\n  | \t^\n"
        );
    }

    #[test]
    fn function_frames_become_notes() {
        let text = "fn f(x) {\n  x.nope\n}\nf(#{});\n";
        let mut engine = rhai::Engine::new();
        engine.set_fail_on_invalid_map_property(true);
        let err = engine.run(text).unwrap_err();
        let (_, out) = render(&err, "t.rhai", &sources("t.rhai", text), None);
        assert!(out.contains(" --> t.rhai:2:5"), "{out}");
        assert!(
            out.contains("= note: in function 'f', called from t.rhai:4:1"),
            "{out}"
        );
    }
}
