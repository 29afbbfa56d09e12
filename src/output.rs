//! Everything the command line prints: results as JSON (pretty on a terminal, compact when
//! piped), bare strings with `--raw`, tables, job progress, and errors with their details.

use std::io::{IsTerminal, Write};
use std::sync::Mutex;

use serde_json::Value;

use crate::client::{Error, JobProgress};
use crate::protocol::{ejson, errno};

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    /// Pretty JSON on a terminal (dates shown as ISO-8601), compact JSON when piped.
    Auto,
    /// Pretty JSON, values exactly as the server sent them.
    Json,
    /// One line of JSON, values exactly as the server sent them.
    Compact,
    /// A table, for a list of objects (falls back to JSON otherwise).
    Table,
    /// YAML (dates shown as ISO-8601).
    Yaml,
}

/// The first write to stdout that failed for another reason than a closed pipe (a full
/// disk: `> /dev/full`). Kept so the command does not end as a success: see
/// [`write_failure`].
static WRITE_FAILURE: Mutex<Option<String>> = Mutex::new(None);

/// Print `text` on stdout. A closed pipe (`midscript methods | head`) is not an error: what
/// is left is dropped quietly instead of panicking as `println!` would. Any other failed
/// write (a full disk) is remembered and turns the run into a failure ([`write_failure`]).
pub fn emit(text: &str) {
    try_emit(text);
}

/// [`emit`], returning `false` when stdout could not take `text` (it was closed, or the write
/// failed), so a command that follows a stream (`compose logs -f | head`) can stop.
pub fn try_emit(text: &str) -> bool {
    let mut out = std::io::stdout().lock();
    let written = out.write_all(text.as_bytes()).and_then(|()| out.flush());
    match written {
        Ok(()) => true,
        Err(e) => {
            record_failure(&e);
            false
        }
    }
}

fn record_failure(e: &std::io::Error) {
    if e.kind() == std::io::ErrorKind::BrokenPipe {
        return;
    }
    if let Ok(mut first) = WRITE_FAILURE.lock()
        && first.is_none()
    {
        *first = Some(format!("cannot write to stdout: {e}"));
    }
}

/// Why output was lost, if a write to stdout failed for another reason than a closed pipe
/// (after flushing what is buffered): the command line reports it and exits with
/// a failure instead of 0 with nothing written.
pub fn write_failure() -> Option<String> {
    if let Err(e) = std::io::stdout().lock().flush() {
        record_failure(&e);
    }
    WRITE_FAILURE.lock().ok().and_then(|f| f.clone())
}

/// Print `text` and a newline on stderr; a closed stderr is not an error either.
pub fn warn(text: &str) {
    let mut err = std::io::stderr().lock();
    let _ = writeln!(err, "{text}").and_then(|()| err.flush());
}

/// [`emit`] `text` and a newline (without copying `text`).
pub fn emit_line(text: &str) {
    let mut out = std::io::stdout().lock();
    let written = out
        .write_all(text.as_bytes())
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        record_failure(&e);
    }
}

/// Is `format` compact JSON here (`--output compact`, or `auto` with stdout not a terminal)?
/// Then a result can be printed from its JSON text ([`emit_json_text`]) without parsing it.
pub fn is_compact(format: Format) -> bool {
    match format {
        Format::Compact => true,
        Format::Auto => !std::io::stdout().is_terminal(),
        Format::Json | Format::Table | Format::Yaml => false,
    }
}

/// Can a result in `format` be printed from its JSON text ([`emit_json_text`])? Compact JSON
/// and `--output json` can; the others show dates as ISO-8601 or reshape the value.
pub fn prints_json_text(format: Format) -> bool {
    is_compact(format) || format == Format::Json
}

/// Print a result given as JSON text, as [`emit_value`] prints its value in `format` (compact
/// JSON, or pretty for `--output json`), and a newline: written in pieces as the text is
/// scanned, never parsed nor copied whole; with `raw`, a string result bare. Numbers are
/// printed as the server wrote them.
pub fn emit_json_text(text: &str, format: Format, raw: bool) {
    if raw
        && text.trim_start().starts_with('"')
        && let Ok(s) = serde_json::from_str::<String>(text)
    {
        return emit_line(&s);
    }
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let text = text.trim().as_bytes();
    let formatted = if is_compact(format) {
        write_compact(&mut out, text)
    } else {
        write_pretty(&mut out, text)
    };
    let written = formatted
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        record_failure(&e);
    }
}

/// Write JSON `text` without the whitespace between its tokens.
fn write_compact(out: &mut impl Write, text: &[u8]) -> std::io::Result<()> {
    let (mut in_string, mut escaped, mut start) = (false, false, 0);
    for (i, &b) in text.iter().enumerate() {
        if in_string {
            match b {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
        } else if b == b'"' {
            in_string = true;
        } else if matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
            out.write_all(&text[start..i])?;
            start = i + 1;
        }
    }
    out.write_all(&text[start..])
}

/// Where the string that starts at `text[start]` (a `"`) ends: the index after its closing
/// quote (the end of `text` if it has none).
fn string_end(text: &[u8], start: usize) -> usize {
    let mut escaped = false;
    for (i, &b) in text.iter().enumerate().skip(start + 1) {
        match b {
            _ if escaped => escaped = false,
            b'\\' => escaped = true,
            b'"' => return i + 1,
            _ => {}
        }
    }
    text.len()
}

/// Write JSON `text` indented as `serde_json::to_string_pretty` indents it: two spaces a
/// level, `": "` after keys, empty lists and objects as `[]` and `{}`.
fn write_pretty(out: &mut impl Write, text: &[u8]) -> std::io::Result<()> {
    let is_space = |b: &u8| matches!(b, b' ' | b'\n' | b'\r' | b'\t');
    let next_token = |from: usize| {
        text[from..]
            .iter()
            .position(|b| !is_space(b))
            .map_or(text.len(), |p| from + p)
    };
    let newline = |out: &mut dyn Write, depth: usize| -> std::io::Result<()> {
        out.write_all(b"\n")?;
        for _ in 0..depth {
            out.write_all(b"  ")?;
        }
        Ok(())
    };
    let (mut depth, mut i) = (0usize, 0usize);
    while i < text.len() {
        match text[i] {
            b'"' => {
                let end = string_end(text, i);
                out.write_all(&text[i..end])?;
                i = end;
                continue;
            }
            open @ (b'{' | b'[') => {
                let close = if open == b'{' { b'}' } else { b']' };
                let next = next_token(i + 1);
                if text.get(next) == Some(&close) {
                    out.write_all(&[open, close])?;
                    i = next + 1;
                    continue;
                }
                depth += 1;
                out.write_all(&[open])?;
                newline(out, depth)?;
            }
            close @ (b'}' | b']') => {
                depth = depth.saturating_sub(1);
                newline(out, depth)?;
                out.write_all(&[close])?;
            }
            b',' => {
                out.write_all(b",")?;
                newline(out, depth)?;
            }
            b':' => out.write_all(b": ")?,
            b if is_space(&b) => {}
            _ => {
                // A number or a literal: up to the next delimiter.
                let end = text[i..]
                    .iter()
                    .position(|b| matches!(b, b',' | b']' | b'}' | b':') || is_space(b))
                    .map_or(text.len(), |p| i + p);
                out.write_all(&text[i..end])?;
                i = end;
                continue;
            }
        }
        i += 1;
    }
    Ok(())
}

/// Print a result and a newline, as `emit_line(&render(value, format, raw))` would. Compact
/// and JSON output are serialized straight to stdout, so a big result is never held twice
/// (the value and its text).
pub fn emit_value(value: &Value, format: Format, raw: bool) {
    let pretty = match format {
        _ if raw && value.is_string() => return emit_line(&render(value, format, raw)),
        _ if is_compact(format) => false,
        Format::Json => true,
        Format::Compact | Format::Auto | Format::Table | Format::Yaml => {
            return emit_line(&render(value, format, raw));
        }
    };
    let mut out = std::io::BufWriter::with_capacity(64 << 10, std::io::stdout().lock());
    let serialized = if pretty {
        serde_json::to_writer_pretty(&mut out, value)
    } else {
        serde_json::to_writer(&mut out, value)
    };
    let written = serialized
        .map_err(std::io::Error::from)
        .and_then(|()| out.write_all(b"\n"))
        .and_then(|()| out.flush());
    if let Err(e) = written {
        record_failure(&e);
    }
}

/// A rendered compose diff for stdout: coloured on a terminal unless `NO_COLOR` is set.
pub fn diff_text(text: &str) -> String {
    crate::colour::diff(
        text,
        crate::colour::enabled(std::io::stdout().is_terminal()),
    )
}

/// Render a result for stdout: pretty JSON on a terminal (coloured unless `NO_COLOR`).
pub fn render(value: &Value, format: Format, raw: bool) -> String {
    if raw && let Value::String(s) = value {
        return s.clone();
    }
    match format {
        Format::Auto if std::io::stdout().is_terminal() => {
            crate::colour::json(&ejson::humanize(value), crate::colour::enabled(true))
        }
        Format::Auto | Format::Compact => value.to_string(),
        Format::Json => pretty(value),
        Format::Table => table(value).unwrap_or_else(|| pretty(&ejson::humanize(value))),
        Format::Yaml => yaml(&ejson::humanize(value)),
    }
}

/// YAML without the trailing newline; JSON (valid YAML too) should the serializer refuse.
fn yaml(value: &Value) -> String {
    match serde_saphyr::to_string(value) {
        Ok(s) => s.trim_end_matches('\n').to_owned(),
        Err(_) => pretty(value),
    }
}

fn pretty(value: &Value) -> String {
    serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string())
}

/// A plain-text table of a list of objects: the union of their keys as columns, in first-seen
/// order; nested values as compact JSON. `None` when the value is not a list of objects.
pub fn table(value: &Value) -> Option<String> {
    let rows = value.as_array()?;
    if rows.is_empty() || !rows.iter().all(Value::is_object) {
        return None;
    }
    let mut columns: Vec<String> = Vec::new();
    for row in rows {
        for key in row.as_object()?.keys() {
            if !columns.contains(key) {
                columns.push(key.clone());
            }
        }
    }
    let cell = |v: Option<&Value>| match v.map(ejson::humanize) {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    let cells: Vec<Vec<String>> = rows
        .iter()
        .map(|r| columns.iter().map(|c| cell(r.get(c))).collect())
        .collect();
    let widths: Vec<usize> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            cells
                .iter()
                .map(|r| r[i].chars().count())
                .chain([c.chars().count()])
                .max()
                .unwrap_or(0)
                .min(60)
        })
        .collect();
    let line = |items: &[String]| {
        items
            .iter()
            .zip(&widths)
            .map(|(s, w)| {
                let s: String = s.chars().take(*w).collect();
                format!("{s:<w$}")
            })
            .collect::<Vec<_>>()
            .join("  ")
            .trim_end()
            .to_owned()
    };
    let mut out = vec![line(&columns)];
    out.push(
        widths
            .iter()
            .map(|w| "-".repeat(*w))
            .collect::<Vec<_>>()
            .join("  "),
    );
    out.extend(cells.iter().map(|r| line(r)));
    Some(out.join("\n"))
}

/// How job progress is shown on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ProgressStyle {
    /// A redrawn bar on a terminal, lines otherwise.
    Auto,
    /// A redrawn bar.
    Bar,
    /// One line per change (for logs and systemd).
    Lines,
    /// Nothing.
    None,
}

/// `--quiet`: every [`ProgressPrinter`] shows no progress.
static QUIET: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Show no job progress from now on (`-q/--quiet`), whatever style a command asks for.
pub fn set_quiet() {
    QUIET.store(true, std::sync::atomic::Ordering::Relaxed);
}

/// Draws job progress on stderr.
pub struct ProgressPrinter {
    style: ProgressStyle,
    drawn: bool,
    /// Jobs whose start was announced.
    announced: std::collections::HashSet<i64>,
}

impl ProgressPrinter {
    /// A printer; `Auto` becomes a bar on a terminal and lines otherwise.
    pub fn new(style: ProgressStyle) -> ProgressPrinter {
        let style = match style {
            _ if QUIET.load(std::sync::atomic::Ordering::Relaxed) => ProgressStyle::None,
            ProgressStyle::Auto if std::io::stderr().is_terminal() => ProgressStyle::Bar,
            ProgressStyle::Auto => ProgressStyle::Lines,
            other => other,
        };
        ProgressPrinter {
            style,
            drawn: false,
            announced: Default::default(),
        }
    }

    /// Say that job `job_id` started, whatever the style (`--progress none` included), so a
    /// job whose waiting ends early can be found again (`midscript job --attach ID`).
    pub fn started(&mut self, job_id: i64, method: &str) {
        self.finish();
        self.announced.insert(job_id);
        warn(&format!("midscript: job {job_id} started ({method})"));
    }

    /// Say that this waits for job `job_id`, started elsewhere.
    pub fn attached(&mut self, job_id: i64, method: &str) {
        self.finish();
        self.announced.insert(job_id);
        let _ = writeln!(
            std::io::stderr(),
            "midscript: waiting for job {job_id} ({method})"
        );
    }

    /// Show one progress change.
    pub fn update(&mut self, p: &JobProgress) {
        if !self.announced.contains(&p.job_id) {
            self.finish();
            self.announced.insert(p.job_id);
            warn(&format!("midscript: job {} started", p.job_id));
        }
        let percent = p.percent.unwrap_or(0.0).clamp(0.0, 100.0);
        let description = p.description.as_deref().unwrap_or("");
        let mut err = std::io::stderr().lock();
        match self.style {
            ProgressStyle::Bar => {
                let filled = (percent / 100.0 * 30.0).round() as usize;
                let bar = format!("{}{}", "#".repeat(filled), "-".repeat(30 - filled));
                let _ = write!(err, "\r\x1b[2K[{bar}] {percent:>3.0}% {description}");
                self.drawn = true;
            }
            ProgressStyle::Lines => {
                let _ = writeln!(
                    err,
                    "job {} {} {percent:.0}% {description}",
                    p.job_id, p.state
                );
            }
            ProgressStyle::Auto | ProgressStyle::None => {}
        }
        let _ = err.flush();
    }

    /// Finish the bar line, if one was drawn.
    pub fn finish(&mut self) {
        if self.drawn {
            let _ = writeln!(std::io::stderr());
            self.drawn = false;
        }
    }
}

/// An error for stderr: one concise paragraph, validation details one per line, and the server
/// traceback only when `verbose`.
pub fn describe_error(err: &Error, verbose: bool) -> String {
    let mut out = err.to_string();
    if let Some(server) = err.server() {
        if server.is_rate_limited() {
            out.push_str(
                "\nRetry in a minute: the server allows 20 anonymous calls per method per minute \
                 from one address (each login spends one or two) and accepts them again when \
                 its 60 s window ends. For many calls, keep one connection: a script \
                 (midscript run) or the REPL. Against a `midscript mock`, start it with \
                 --no-rate-limit.",
            );
        }
        if let (Some(extra), true) = (&server.extra, server.validation().is_empty())
            && !extra.is_null()
            && verbose
        {
            out.push_str(&format!("\nextra: {extra}"));
        }
        if verbose {
            if let Some(code) = server.code {
                out.push_str(&format!("\ncode: {code} ({})", server.message));
            }
            if let Some(n) = server.errno {
                out.push_str(&format!("\nerrno: {n} ({})", errno::name(n)));
            }
            if let Some(tb) = server.traceback().filter(|tb| !tb.trim().is_empty()) {
                out.push_str("\nserver traceback:\n");
                out.push_str(tb.trim_end());
            }
        } else if server.traceback().is_some_and(|tb| !tb.trim().is_empty()) {
            out.push_str("\n(run with -v for the server traceback)");
        }
    }
    out
}

#[cfg(test)]
mod tests {

    #[test]
    fn json_text_is_indented_as_serde_json_indents_values() {
        let pretty = |text: &str| {
            let mut out = Vec::new();
            super::write_pretty(&mut out, text.as_bytes()).unwrap();
            String::from_utf8(out).unwrap()
        };
        for value in [
            serde_json::json!({"a": [1, {"b": null, "c": []}, {}], "d \"]}\\": "x, y: {z}", "e": -1.5e-7}),
            serde_json::json!([]),
            serde_json::json!("s"),
            serde_json::json!([[[]], [{"k": [true, false]}]]),
            serde_json::json!(12345678901234567u64),
        ] {
            let expected = serde_json::to_string_pretty(&value).unwrap();
            assert_eq!(pretty(&value.to_string()), expected);
            // Whitespace in the server's text does not matter.
            assert_eq!(pretty(&expected), expected);
        }
    }

    #[test]
    fn json_text_is_compacted_outside_strings_only() {
        let compact = |text: &str| {
            let mut out = Vec::new();
            super::write_compact(&mut out, text.as_bytes()).unwrap();
            String::from_utf8(out).unwrap()
        };
        assert_eq!(
            compact("{\"a b\": [1, 2.5e-05,\n\t\"x \\\" y\"], \"c\" : null}"),
            "{\"a b\":[1,2.5e-05,\"x \\\" y\"],\"c\":null}"
        );
        assert_eq!(compact("\"\\\\\" "), "\"\\\\\"");
        assert_eq!(compact("[]"), "[]");
    }

    use super::*;
    use serde_json::json;

    #[test]
    fn raw_strings_and_compact_json() {
        assert_eq!(render(&json!("pong"), Format::Compact, true), "pong");
        assert_eq!(render(&json!("pong"), Format::Compact, false), "\"pong\"");
        assert_eq!(render(&json!(true), Format::Compact, true), "true");
        assert_eq!(
            render(&json!({"t": {"$date": 0}}), Format::Compact, false),
            r#"{"t":{"$date":0}}"#
        );
    }

    #[test]
    fn the_traceback_hint_only_follows_a_traceback() {
        let with = |exception: &str| {
            let job = json!({"id": 1, "state": "FAILED", "error": "[EFAULT] boom", "exception": exception});
            Error::from(crate::client::ServerError::from_failed_job(
                "app.start",
                &job,
            ))
        };
        let hint = "(run with -v for the server traceback)";
        assert!(describe_error(&with("Traceback: …"), false).contains(hint));
        assert!(!describe_error(&with(""), false).contains(hint));
        assert!(!describe_error(&with("  \n"), true).contains("server traceback:"));
        let no_trace = json!({"id": 1, "state": "FAILED", "error": "[EFAULT] boom"});
        let e = Error::from(crate::client::ServerError::from_failed_job(
            "app.start",
            &no_trace,
        ));
        assert!(!describe_error(&e, false).contains(hint));
    }

    #[test]
    fn yaml_output() {
        assert_eq!(
            render(
                &json!({"name": "a", "ok": true, "s": "true", "t": {"$date": 0}, "l": [1, null]}),
                Format::Yaml,
                false
            ),
            "name: a\nok: true\ns: \"true\"\nt: \"1970-01-01T00:00:00.000Z\"\nl:\n- 1\n- null"
        );
    }

    #[test]
    fn rate_limit_errors_explain_the_window() {
        let e: crate::client::Error = crate::client::ServerError::from_object(
            "auth.login_ex",
            serde_json::from_value(json!({"code": -32001, "message": "Method call error", "data": {
                "error": 16, "errname": "EBUSY", "reason": "[EBUSY] Rate Limit Exceeded", "trace": null, "extra": null}}))
            .unwrap(),
        )
        .into();
        let text = describe_error(&e, false);
        assert!(
            text.starts_with("auth.login_ex: [EBUSY] Rate Limit Exceeded\n"),
            "{text}"
        );
        assert!(text.contains("60 s window"), "{text}");
        assert!(text.contains("one connection"), "{text}");
        assert!(text.contains("--no-rate-limit"), "{text}");
    }

    #[test]
    fn tables_union_columns() {
        let v = json!([{"name": "a", "state": "RUNNING"}, {"name": "bb", "extra": {"x": 1}, "time": {"$date": 0}}]);
        let t = table(&v).unwrap();
        assert_eq!(
            t,
            "name  state    extra    time\n----  -------  -------  ------------------------\na     RUNNING\nbb             {\"x\":1}  1970-01-01T00:00:00.000Z"
        );
        assert!(table(&json!([1, 2])).is_none());
        let t =
            table(&json!([{"name": "a", "locked": false}, {"name": "b", "locked": true}])).unwrap();
        assert_eq!(t, "name  locked\n----  ------\na     false\nb     true");
        assert!(table(&json!({"a": 1})).is_none());
    }
}
