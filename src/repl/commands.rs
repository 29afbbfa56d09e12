//! Dot-commands: `.help`, `.doc`, `.methods`, `.events`, `.time`, `.table`, `.save`,
//! `.connect`, `.quit`. Anything else that starts with `.` is an unknown command, never Rhai
//! (a Rhai statement cannot start with a dot).

use std::path::Path;

use crate::catalog::{Catalog, listing, render_doc, suggestions};

/// The commands, with a one-line description each (for `.help` and completion).
pub const COMMANDS: &[(&str, &str)] = &[
    ("help", "this help"),
    (
        "doc",
        "METHOD: a method's description, arguments, result, job and roles",
    ),
    (
        "methods",
        "[PATTERN]: methods whose name contains PATTERN (or matches a * glob)",
    ),
    ("events", "the active subscriptions"),
    ("time", "[on|off]: show how long each line takes"),
    ("table", "[EXPR]: show EXPR (or the last result) as a table"),
    (
        "save",
        "FILE: write the lines that ran without error as a script",
    ),
    (
        "connect",
        "PROFILE: reconnect with a profile of the config file",
    ),
    ("quit", "leave (Ctrl-D too)"),
];

/// A parsed dot-command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DotCommand {
    /// `.help`
    Help,
    /// `.doc METHOD`
    Doc(String),
    /// `.methods [PATTERN]`
    Methods(String),
    /// `.events`
    Events,
    /// `.time [on|off]`: `None` toggles.
    Time(Option<bool>),
    /// `.table [EXPR]`: empty for the last result.
    Table(String),
    /// `.save FILE`
    Save(String),
    /// `.connect PROFILE`
    Connect(String),
    /// `.quit` (or `.exit`)
    Quit,
}

/// Why a dot-command line is wrong: shown as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct UsageError(pub String);

/// Parse `line` as a dot-command; `None` when it does not start with `.` (it is Rhai).
pub fn parse(line: &str) -> Option<Result<DotCommand, UsageError>> {
    let rest = line.trim().strip_prefix('.')?;
    let (name, arg) = match rest.split_once(char::is_whitespace) {
        Some((n, a)) => (n, a.trim()),
        None => (rest, ""),
    };
    let need = |what: &str| -> Result<String, UsageError> {
        if arg.is_empty() {
            Err(UsageError(format!(".{name} needs {what}")))
        } else {
            Ok(arg.to_owned())
        }
    };
    Some(match name {
        "help" | "h" | "?" => Ok(DotCommand::Help),
        "doc" => need("a method name, e.g. .doc app.create").map(DotCommand::Doc),
        "methods" => Ok(DotCommand::Methods(arg.to_owned())),
        "events" => Ok(DotCommand::Events),
        "time" => match arg {
            "" => Ok(DotCommand::Time(None)),
            "on" => Ok(DotCommand::Time(Some(true))),
            "off" => Ok(DotCommand::Time(Some(false))),
            _ => Err(UsageError(".time takes on, off or nothing".into())),
        },
        "table" => Ok(DotCommand::Table(arg.to_owned())),
        "save" => need("a file name, e.g. .save session.rhai").map(DotCommand::Save),
        "connect" => need("a profile name, e.g. .connect nas").map(DotCommand::Connect),
        "quit" | "exit" | "q" => Ok(DotCommand::Quit),
        other => Err(UsageError(format!(
            "unknown command .{other} (.help lists them)"
        ))),
    })
}

/// The text of `.help`.
pub fn help_text() -> String {
    let mut out = String::from("Commands:\n");
    for (name, about) in COMMANDS {
        out.push_str(&format!("  .{name:<9} {about}\n"));
    }
    out.push_str(
        "\nRhai, with the bindings of `midscript run` scripts:
  call(\"METHOD\", args..)       call a method (midclt call)
  job(\"METHOD\", args..)        run a job method and wait for it (progress on stderr)
  job_start(..), wait_job(id)  start a job, wait for it later
  call_all([[\"M\", args..]])    calls sent together: results in order, errors in place
  wait_jobs([ids])             wait for jobs together; is_error(r) tells errors from results
  subscribe(\"EVENT\")           print the event's events above the prompt (REPL only); .cancel()
  subscribe(\"EVENT\", |ev| ..)  a callback, run while a line waits (call, sleep, wait..)
  events(\"EVENT\")              a stream: for ev in events(\"app.query\") { .. }
  wait_for(\"EVENT\", |ev| .., ms), sleep(ms), wait(ms), json::.., yaml::.., env(..)
  import \"apps\" as apps;       stdlib modules: apps, jobs, users (imports stay)
Variables and functions stay from line to line. JSON null is written ().

Keys: Tab completes (method names inside call(\"..\"), job(\"..\"), subscribe(\"..\")),
  → accepts a hint, Alt-Enter adds a line, an open block/string/call continues
  on the next line, Ctrl-C cancels the line being typed or run, Ctrl-D quits.
",
    );
    out
}

/// The text of `.methods PATTERN`, or a message when nothing matches.
pub fn methods_text(catalog: &Catalog, pattern: &str) -> Result<String, UsageError> {
    let found: Vec<_> = catalog.matching(pattern).collect();
    if found.is_empty() {
        let near = suggestions(catalog, pattern);
        let hint = if near.is_empty() {
            String::new()
        } else {
            format!("; did you mean: {}?", near.join(", "))
        };
        return Err(UsageError(format!("no method matches {pattern:?}{hint}")));
    }
    Ok(listing(found))
}

/// The text of `.doc METHOD`.
pub fn doc_text(catalog: &Catalog, method: &str) -> Result<String, UsageError> {
    match catalog.get(method) {
        Some(m) => Ok(render_doc(m)),
        None => {
            let near = suggestions(catalog, method);
            let hint = if near.is_empty() {
                "; .methods PATTERN lists names".to_owned()
            } else {
                format!("; did you mean: {}?", near.join(", "))
            };
            Err(UsageError(format!("no method {method}{hint}")))
        }
    }
}

/// The text of `.events`: the connection's subscriptions, and which ones the REPL prints.
pub fn events_text(active: &[String], printed: &[String]) -> String {
    if active.is_empty() {
        return "no active subscriptions; subscribe(\"NAME\") prints an event's events here\n"
            .to_owned();
    }
    let width = active.iter().map(String::len).max().unwrap_or(0);
    let mut out = String::new();
    for name in active {
        let how = if printed.contains(name) {
            "printed above the prompt"
        } else if name == "core.get_jobs" {
            "job tracking, or a callback or stream"
        } else {
            "a callback or events() stream"
        };
        out.push_str(&format!("{name:<width$}  {how}\n"));
    }
    out
}

/// The script `.save` writes: the accepted lines, in order.
pub fn script_text(lines: &[String]) -> String {
    let mut out =
        String::from("// Saved from a midscript REPL session; run with `midscript run FILE`.\n");
    for line in lines {
        out.push_str(line);
        if !line.ends_with(';') && !line.ends_with('}') {
            out.push(';');
        }
        out.push('\n');
    }
    out
}

/// Write `.save`'s script to `path`; the number of lines written.
pub fn save(path: &Path, lines: &[String]) -> Result<usize, UsageError> {
    std::fs::write(path, script_text(lines))
        .map_err(|e| UsageError(format!("cannot write {}: {e}", path.display())))?;
    Ok(lines.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_parse() {
        assert_eq!(parse("let x = 1"), None);
        assert_eq!(parse(" .help "), Some(Ok(DotCommand::Help)));
        assert_eq!(
            parse(".doc  app.create"),
            Some(Ok(DotCommand::Doc("app.create".into())))
        );
        assert_eq!(
            parse(".methods"),
            Some(Ok(DotCommand::Methods(String::new())))
        );
        assert_eq!(parse(".time on"), Some(Ok(DotCommand::Time(Some(true)))));
        assert_eq!(parse(".time"), Some(Ok(DotCommand::Time(None))));
        assert!(matches!(parse(".time maybe"), Some(Err(_))));
        assert!(matches!(parse(".doc"), Some(Err(_))));
        assert!(matches!(parse(".save"), Some(Err(_))));
        assert_eq!(
            parse(".table call(\"app.query\")"),
            Some(Ok(DotCommand::Table("call(\"app.query\")".into())))
        );
        assert_eq!(parse(".exit"), Some(Ok(DotCommand::Quit)));
        let Some(Err(e)) = parse(".frobnicate") else {
            panic!()
        };
        assert!(e.0.contains("unknown command .frobnicate"));
    }

    #[test]
    fn docs_and_listings_come_from_the_catalog() {
        let c = Catalog::bundled();
        let doc = doc_text(c, "app.create").unwrap();
        assert!(doc.starts_with("app.create("), "{doc}");
        assert!(doc.contains("Job: yes"));
        let err = doc_text(c, "app.creat").unwrap_err();
        assert!(err.0.contains("did you mean: app.create"), "{err}");
        let list = methods_text(c, "app.*").unwrap();
        assert!(list.lines().all(|l| l.starts_with("app.")), "{list}");
        assert!(methods_text(c, "zzzz.qqqq").is_err());
        assert!(help_text().contains(".connect"));
    }

    #[test]
    fn events_and_saved_scripts() {
        let text = events_text(
            &["app.query".into(), "alert.list".into()],
            &["alert.list".into()],
        );
        assert!(
            text.contains("alert.list  printed above the prompt"),
            "{text}"
        );
        assert!(events_text(&[], &[]).starts_with("no active subscriptions"));
        let script = script_text(&[
            "let x = 1".into(),
            "fn f() { 2 }".into(),
            "print(x);".into(),
        ]);
        assert!(
            script.ends_with("let x = 1;\nfn f() { 2 }\nprint(x);\n"),
            "{script}"
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.rhai");
        assert_eq!(save(&path, &["1".into()]).unwrap(), 1);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with("1;\n"));
    }
}
