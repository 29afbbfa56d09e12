//! What the REPL prints: results as indented JSON (coloured on a terminal unless `NO_COLOR`),
//! events above the prompt (through rustyline's external printer), and the console the
//! script bindings write to, which also keeps track of running jobs for Ctrl-C.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use rhai::Dynamic;
use serde_json::Value;

use crate::client::{Event, JobProgress};
use crate::protocol::ejson;
use crate::script::{self, Console, StdConsole};

use crate::colour::{paint, style};

/// Colour on a terminal, unless `NO_COLOR` is set to anything non-empty (<https://no-color.org>).
pub fn color_enabled(is_terminal: bool) -> bool {
    crate::colour::enabled(is_terminal)
}

/// Dimmed text (hints, notes).
pub fn dim(text: &str, color: bool) -> String {
    paint(text, style::DIM, color)
}

/// Bold text (headings).
pub fn bold(text: &str, color: bool) -> String {
    paint(text, style::BOLD, color)
}

/// Red text (errors).
pub fn red(text: &str, color: bool) -> String {
    paint(text, style::RED, color)
}

/// `value` as indented JSON (two spaces, like `serde_json`'s pretty printer), TrueNAS
/// `{"$date": ms}` values shown as ISO-8601, coloured when `color`.
pub fn json(value: &Value, color: bool) -> String {
    crate::colour::json(&ejson::humanize(value), color)
}

/// A value that is not data (a function pointer, a subscription handle), as Rhai shows it.
pub fn other(text: &str, color: bool) -> String {
    paint(text, style::CYAN, color)
}

/// A line's result for the terminal: `None` for `()`, JSON for JSON-shaped values, Rhai's
/// own text for the rest (function pointers, subscriptions, timestamps…).
pub fn result(value: &Dynamic, color: bool) -> Option<String> {
    if value.is_unit() {
        return None;
    }
    match script::from_dynamic(value) {
        Ok(v) => Some(json(&v, color)),
        Err(_) => Some(match script::display(value) {
            Ok(text) => paint(&text, style::CYAN, color),
            Err(e) => paint(&e.to_string(), style::CYAN, color),
        }),
    }
}

/// How much of an event's fields an event line shows (the rest is `…`; `events()` or a
/// callback sees everything).
const EVENT_FIELDS: usize = 400;

/// One event, as printed above the prompt:
/// `event core.get_jobs changed (id 3): {"state":"RUNNING",…}`.
pub fn event_line(ev: &Event, color: bool) -> String {
    let mut head = format!("event {} {}", ev.collection, ev.msg.as_str());
    if let Some(id) = &ev.id {
        let _ = write!(head, " (id {})", id);
    }
    let mut line = paint(&head, style::CYAN, color);
    if let Some(fields) = &ev.fields {
        let text = ejson::humanize(fields).to_string();
        let _ = write!(
            line,
            ": {}",
            text.chars().take(EVENT_FIELDS).collect::<String>()
        );
        if text.chars().nth(EVENT_FIELDS).is_some() {
            line.push('…');
        }
    }
    line
}

/// Where text printed while the user may be typing goes.
pub trait Sink: Send + Sync {
    /// Print `text` (one or more lines, without the final newline) above the prompt.
    fn print(&self, text: String);
}

/// Prints through rustyline's external printer: above the prompt, the line being typed kept.
pub struct ExternalSink<P: rustyline::ExternalPrinter + Send>(pub Mutex<P>);

impl<P: rustyline::ExternalPrinter + Send> Sink for ExternalSink<P> {
    fn print(&self, text: String) {
        if let Ok(mut p) = self.0.lock() {
            let _ = p.print(format!("{text}\n"));
        }
    }
}

/// Prints to stdout (when stdin is not a terminal and there is no prompt to protect).
pub struct StdoutSink;

impl Sink for StdoutSink {
    fn print(&self, text: String) {
        crate::output::emit_line(&text);
    }
}

/// The console the script bindings of the REPL write to: [`StdConsole`] (stdout, stderr,
/// progress), and a list of the jobs a line is waiting for, so Ctrl-C can name them.
pub struct ReplConsole {
    inner: StdConsole,
    jobs: Mutex<BTreeMap<i64, String>>,
}

impl ReplConsole {
    /// A console like `midscript run`'s.
    pub fn new() -> ReplConsole {
        ReplConsole {
            inner: StdConsole::new(crate::output::ProgressStyle::Auto),
            jobs: Mutex::default(),
        }
    }

    /// Jobs the running line waits for (id, method), as last reported.
    pub fn running_jobs(&self) -> Vec<(i64, String)> {
        self.jobs
            .lock()
            .map(|j| j.iter().map(|(id, m)| (*id, m.clone())).collect())
            .unwrap_or_default()
    }

    /// Forget jobs (after a line ends).
    pub fn clear_jobs(&self) {
        if let Ok(mut j) = self.jobs.lock() {
            j.clear();
        }
    }
}

impl Default for ReplConsole {
    fn default() -> Self {
        ReplConsole::new()
    }
}

impl Console for ReplConsole {
    fn out(&self, line: &str) {
        self.inner.out(line);
    }

    fn err(&self, line: &str) {
        self.inner.err(line);
    }

    fn job_progress(&self, method: &str, progress: &JobProgress) {
        if let Ok(mut j) = self.jobs.lock() {
            j.insert(progress.job_id, method.to_owned());
        }
        self.inner.job_progress(method, progress);
    }

    fn job_started(&self, method: &str, job_id: i64) {
        self.inner.job_started(method, job_id);
    }

    fn job_finished(&self, job_id: i64) {
        if let Ok(mut j) = self.jobs.lock() {
            j.remove(&job_id);
        }
        self.inner.job_finished(job_id);
    }
}

/// A shared sink.
pub type SharedSink = Arc<dyn Sink>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn plain_json_is_serde_pretty_with_dates_shown() {
        let v = json!({"a": [1, "x"], "t": {"$date": 0}, "e": {}});
        assert_eq!(
            json(&v, false),
            "{\n  \"a\": [\n    1,\n    \"x\"\n  ],\n  \"t\": \"1970-01-01T00:00:00.000Z\",\n  \"e\": {}\n}"
        );
    }

    #[test]
    fn coloured_json_has_the_same_text_under_the_colours() {
        let v = json!({"name": "web", "n": [1, 2.5, null, true], "o": {"k": []}});
        let coloured = json(&v, true);
        assert!(coloured.contains("\x1b[34m\"name\"\x1b[0m: \x1b[32m\"web\"\x1b[0m"));
        let stripped = regex::Regex::new("\x1b\\[[0-9;]*m")
            .unwrap()
            .replace_all(&coloured, "");
        assert_eq!(stripped, json(&v, false));
    }

    #[test]
    fn results_unit_json_and_others() {
        assert_eq!(result(&Dynamic::UNIT, false), None);
        assert_eq!(result(&Dynamic::from(3_i64), false).as_deref(), Some("3"));
        let fp = Dynamic::from(rhai::FnPtr::new("f").unwrap());
        assert!(result(&fp, false).unwrap().contains('f'));
    }

    #[test]
    fn events_are_one_line() {
        let ev: Event = serde_json::from_value(json!({
            "msg": "changed", "collection": "core.get_jobs", "id": 3, "fields": {"state": "RUNNING"}
        }))
        .unwrap();
        assert_eq!(
            event_line(&ev, false),
            "event core.get_jobs changed (id 3): {\"state\":\"RUNNING\"}"
        );
        let long: Event = serde_json::from_value(json!({
            "msg": "added", "collection": "x", "fields": {"s": "y".repeat(1000)}
        }))
        .unwrap();
        let line = event_line(&long, false);
        assert!(line.ends_with('…') && line.chars().count() < 450, "{line}");
    }
}
