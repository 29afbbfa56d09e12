//! The rustyline helper: completion, hints, highlighting and the incomplete-input validator.
//!
//! - Inside the first string of `call(`, `job(`, `subscribe(` (and the other bindings that take
//!   a method or event name) and after `.doc` / `.methods`, method names complete from the
//!   server's catalog; a hint shows the method's signature and one-line summary.
//! - Inside `import "`, the embedded stdlib modules complete.
//! - After a `.`, at the start of a line, the dot-commands complete.
//! - Elsewhere, Rhai keywords, registered functions, the session's own functions and the
//!   variables in scope complete.
//! - A line that does not parse yet because it ends too early (an open block, string or call)
//!   continues on the next line (Rhai reports it as an unexpected end of input).

use std::borrow::Cow;
use std::collections::BTreeSet;
use std::sync::{Arc, RwLock};

use rhai::{Engine, LexError, ParseErrorType};
use rustyline::completion::{Completer, Pair};
use rustyline::highlight::{CmdKind, Highlighter, MatchingBracketHighlighter};
use rustyline::hint::{Hint, Hinter};
use rustyline::validate::{ValidationContext, ValidationResult, Validator};
use rustyline::{Context, Helper};

use super::MethodCatalog;
use super::commands::COMMANDS;
use super::printer;
use crate::script::{STDLIB, register_call_syntax};

/// Bindings whose first argument is a method or event name.
const NAME_TAKERS: &[&str] = &[
    "call",
    "job",
    "job_start",
    "subscribe",
    "events",
    "wait_for",
    "rpc_raw",
    "job_raw",
];

/// Rhai's keywords (and the `call` syntax), offered by completion.
pub const KEYWORDS: &[&str] = &[
    "let",
    "const",
    "if",
    "else",
    "switch",
    "do",
    "while",
    "until",
    "loop",
    "for",
    "in",
    "break",
    "continue",
    "return",
    "throw",
    "try",
    "catch",
    "fn",
    "private",
    "import",
    "export",
    "as",
    "true",
    "false",
    "this",
    "is_def_var",
    "is_def_fn",
    "Fn",
    "call",
    "curry",
    "type_of",
    "print",
    "debug",
    "eval",
    "global",
];

/// The names completion offers besides methods: functions and variables, refreshed by the
/// REPL after every line.
#[derive(Debug, Clone, Default)]
pub struct Vocabulary {
    /// Registered and script-defined function names.
    pub functions: BTreeSet<String>,
    /// Variables and constants in scope.
    pub variables: BTreeSet<String>,
}

/// The REPL's rustyline helper.
pub struct ReplHelper {
    catalog: Arc<RwLock<MethodCatalog>>,
    vocabulary: Arc<RwLock<Vocabulary>>,
    parser: Engine,
    brackets: MatchingBracketHighlighter,
    color: bool,
}

impl ReplHelper {
    /// A helper reading method names from `catalog` and other names from `vocabulary`.
    pub fn new(
        catalog: Arc<RwLock<MethodCatalog>>,
        vocabulary: Arc<RwLock<Vocabulary>>,
        color: bool,
    ) -> ReplHelper {
        // Parse only: the same syntax as the evaluating engine (the `call` custom syntax), no
        // bindings, no strict variables (the scope lives elsewhere).
        let mut parser = Engine::new_raw();
        register_call_syntax(&mut parser);
        ReplHelper {
            catalog,
            vocabulary,
            parser,
            brackets: MatchingBracketHighlighter::new(),
            color,
        }
    }

    /// Is `input` complete, or does it need more lines?
    pub fn is_complete(&self, input: &str) -> bool {
        let trimmed = input.trim();
        if trimmed.is_empty() || trimmed.starts_with('.') {
            return true;
        }
        let Err(err) = self.parser.compile(input) else {
            return true;
        };
        let at_end = |pos: rhai::Position| match pos.line() {
            None => true,
            Some(line) => {
                let lines: Vec<&str> = input.trim_end().lines().collect();
                line >= lines.len()
                    && pos
                        .position()
                        .is_none_or(|col| col > lines.last().map_or(0, |l| l.chars().count()))
            }
        };
        match err.err_type() {
            ParseErrorType::UnexpectedEOF => false,
            ParseErrorType::MissingToken(..) => !at_end(err.position()),
            // An open back-tick string spans lines; a plain string does not.
            ParseErrorType::BadInput(LexError::UnterminatedString) => {
                input.matches('`').count().is_multiple_of(2)
            }
            _ => true,
        }
    }

    /// Completion candidates at `pos`: the start of the replaced text and the candidates.
    pub fn candidates(&self, line: &str, pos: usize) -> (usize, Vec<Pair>) {
        let before = &line[..pos];
        // Dot-commands.
        if let Some(cmd) = before.strip_prefix('.')
            && !cmd.contains(char::is_whitespace)
        {
            let pairs = COMMANDS
                .iter()
                .filter(|(name, _)| name.starts_with(cmd))
                .map(|(name, about)| Pair {
                    display: format!(".{name}  {about}"),
                    replacement: format!(".{name}"),
                })
                .collect();
            return (0, pairs);
        }
        // `.doc NAME`, `.methods NAME`.
        for cmd in [".doc ", ".methods "] {
            if let Some(arg) = before.strip_prefix(cmd)
                && !arg.trim_start().contains(char::is_whitespace)
            {
                let start = pos - arg.trim_start().len();
                return (start, self.method_pairs(arg.trim_start()));
            }
        }
        if let Some((start, callee)) = open_string(before) {
            let prefix = &before[start..];
            if callee == "import" {
                let pairs = STDLIB
                    .iter()
                    .filter(|m| m.name.starts_with(prefix))
                    .map(|m| Pair {
                        display: m.name.to_owned(),
                        replacement: m.name.to_owned(),
                    })
                    .collect();
                return (start, pairs);
            }
            if NAME_TAKERS.contains(&callee.as_str()) {
                return (start, self.method_pairs(prefix));
            }
            return (pos, Vec::new());
        }
        // Identifiers.
        let start = before
            .char_indices()
            .rev()
            .take_while(|(_, c)| c.is_alphanumeric() || *c == '_')
            .last()
            .map_or(pos, |(i, _)| i);
        let prefix = &before[start..];
        if prefix.is_empty() || before[..start].ends_with("::") || before[..start].ends_with('.') {
            return (pos, Vec::new());
        }
        let mut names: BTreeSet<String> = KEYWORDS
            .iter()
            .filter(|k| k.starts_with(prefix))
            .map(|k| (*k).to_owned())
            .collect();
        if let Ok(v) = self.vocabulary.read() {
            names.extend(
                v.functions
                    .iter()
                    .chain(&v.variables)
                    .filter(|n| n.starts_with(prefix) && !n.starts_with("__"))
                    .cloned(),
            );
        }
        let pairs = names
            .into_iter()
            .map(|n| Pair {
                display: n.clone(),
                replacement: n,
            })
            .collect();
        (start, pairs)
    }

    fn method_pairs(&self, prefix: &str) -> Vec<Pair> {
        let Ok(catalog) = self.catalog.read() else {
            return Vec::new();
        };
        catalog
            .get()
            .names()
            .filter(|name| name.starts_with(prefix))
            .map(|name| Pair {
                display: name.to_owned(),
                replacement: name.to_owned(),
            })
            .collect()
    }

    /// The hint at `pos`: for a method name being typed, its signature and summary (and the
    /// rest of the name when only one method starts so).
    pub fn method_hint(&self, line: &str, pos: usize) -> Option<MethodHint> {
        if pos != line.len() {
            return None;
        }
        let prefix = match open_string(line) {
            Some((start, callee)) if NAME_TAKERS.contains(&callee.as_str()) => &line[start..],
            _ => line
                .strip_prefix(".doc ")
                .or_else(|| line.strip_prefix(".methods "))?
                .trim_start(),
        };
        if prefix.is_empty() {
            return None;
        }
        let catalog = self.catalog.read().ok()?;
        let catalog = catalog.get();
        let (method, rest) = match catalog.get(prefix) {
            Some(m) => (m, ""),
            None => {
                let mut found = catalog.names().filter(|name| name.starts_with(prefix));
                let only = found.next()?;
                if found.next().is_some() {
                    return None;
                }
                (catalog.get(only)?, &only[prefix.len()..])
            }
        };
        let mut text = format!("  # {}", method.signature());
        let summary = method.summary();
        if !summary.is_empty() {
            text.push_str(" — ");
            text.push_str(&summary);
        }
        Some(MethodHint {
            display: format!("{rest}{text}"),
            completion: rest.to_owned(),
        })
    }
}

/// If `before` ends inside a `"` string, the byte offset where the string's text starts, and
/// the identifier right before its `(` (or `import` for `import "`); `None` otherwise.
fn open_string(before: &str) -> Option<(usize, String)> {
    let mut open: Option<usize> = None;
    let mut escaped = false;
    let mut in_backtick = false;
    for (i, c) in before.char_indices() {
        match (open, c) {
            (Some(_), '\\') if !escaped => {
                escaped = true;
                continue;
            }
            (Some(_), '"') if !escaped => open = None,
            (None, '`') => in_backtick = !in_backtick,
            (None, '"') if !in_backtick => open = Some(i + 1),
            _ => {}
        }
        escaped = false;
    }
    let start = open?;
    let head = before[..start - 1].trim_end();
    let callee_of = |s: &str| -> String {
        s.chars()
            .rev()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect::<Vec<_>>()
            .into_iter()
            .rev()
            .collect()
    };
    if let Some(h) = head.strip_suffix('(') {
        return Some((start, callee_of(h.trim_end())));
    }
    Some((start, callee_of(head)))
}

/// A hint: what is shown, and what the right arrow inserts.
pub struct MethodHint {
    display: String,
    completion: String,
}

impl Hint for MethodHint {
    fn display(&self) -> &str {
        &self.display
    }

    fn completion(&self) -> Option<&str> {
        (!self.completion.is_empty()).then_some(self.completion.as_str())
    }
}

impl Completer for ReplHelper {
    type Candidate = Pair;

    fn complete(
        &self,
        line: &str,
        pos: usize,
        _ctx: &Context<'_>,
    ) -> rustyline::Result<(usize, Vec<Pair>)> {
        Ok(self.candidates(line, pos))
    }
}

impl Hinter for ReplHelper {
    type Hint = MethodHint;

    fn hint(&self, line: &str, pos: usize, _ctx: &Context<'_>) -> Option<MethodHint> {
        self.method_hint(line, pos)
    }
}

impl Highlighter for ReplHelper {
    fn highlight<'l>(&self, line: &'l str, pos: usize) -> Cow<'l, str> {
        if self.color {
            self.brackets.highlight(line, pos)
        } else {
            Cow::Borrowed(line)
        }
    }

    fn highlight_hint<'h>(&self, hint: &'h str) -> Cow<'h, str> {
        if self.color {
            Cow::Owned(printer::dim(hint, true))
        } else {
            Cow::Borrowed(hint)
        }
    }

    fn highlight_char(&self, line: &str, pos: usize, kind: CmdKind) -> bool {
        self.color && self.brackets.highlight_char(line, pos, kind)
    }
}

impl Validator for ReplHelper {
    fn validate(&self, ctx: &mut ValidationContext) -> rustyline::Result<ValidationResult> {
        Ok(if self.is_complete(ctx.input()) {
            ValidationResult::Valid(None)
        } else {
            ValidationResult::Incomplete
        })
    }
}

impl Helper for ReplHelper {}

#[cfg(test)]
mod tests {
    use super::*;

    fn helper() -> ReplHelper {
        let vocabulary = Vocabulary {
            functions: ["json_parse_x".to_owned(), "jobs_helper".to_owned()].into(),
            variables: ["info".to_owned(), "items".to_owned()].into(),
        };
        ReplHelper::new(
            Arc::new(RwLock::new(MethodCatalog::Bundled)),
            Arc::new(RwLock::new(vocabulary)),
            false,
        )
    }

    fn replacements(h: &ReplHelper, line: &str) -> (usize, Vec<String>) {
        let (start, pairs) = h.candidates(line, line.len());
        (start, pairs.into_iter().map(|p| p.replacement).collect())
    }

    #[test]
    fn method_names_complete_inside_the_first_string_of_the_bindings() {
        let h = helper();
        let (start, names) = replacements(&h, "let x = call(\"system.in");
        assert_eq!(start, "let x = call(\"".len());
        assert!(names.contains(&"system.info".to_owned()), "{names:?}");
        assert!(names.iter().all(|n| n.starts_with("system.in")));
        for line in [
            "job(\"app.cre",
            "subscribe( \"app.cre",
            "job_start(\"app.cre",
        ] {
            let (_, names) = replacements(&h, line);
            assert!(
                names.contains(&"app.create".to_owned()),
                "{line}: {names:?}"
            );
        }
        // Not in other strings, nor in the second argument.
        assert!(replacements(&h, "print(\"system.in").1.is_empty());
        assert!(replacements(&h, "call(\"x\", \"system.in").1.is_empty());
    }

    #[test]
    fn identifiers_commands_and_modules_complete() {
        let h = helper();
        let (start, names) = replacements(&h, "let y = it");
        assert_eq!(start, 8);
        assert_eq!(names, ["items"]);
        let (_, names) = replacements(&h, "wh");
        assert!(names.contains(&"while".to_owned()), "{names:?}");
        let (_, names) = replacements(&h, "jo");
        assert!(names.contains(&"jobs_helper".to_owned()), "{names:?}");
        let (start, names) = replacements(&h, ".me");
        assert_eq!((start, names), (0, vec![".methods".to_owned()]));
        let (start, names) = replacements(&h, ".doc user.upd");
        assert_eq!(start, 5);
        assert!(names.contains(&"user.update".to_owned()), "{names:?}");
        let (_, names) = replacements(&h, "import \"ap");
        assert_eq!(names, ["apps"]);
        assert!(replacements(&h, "x.le").1.is_empty());
        assert!(replacements(&h, "").1.is_empty());
    }

    #[test]
    fn hints_show_the_signature_and_summary() {
        let h = helper();
        let hint = h.method_hint("call(\"system.info", 17).unwrap();
        assert!(
            hint.display().starts_with("  # system.info("),
            "{}",
            hint.display()
        );
        assert_eq!(hint.completion(), None);
        let line = "job(\"app.creat";
        let hint = h.method_hint(line, line.len()).unwrap();
        assert!(
            hint.display().starts_with("e  # app.create("),
            "{}",
            hint.display()
        );
        assert_eq!(hint.completion(), Some("e"));
        assert!(h.method_hint("call(\"app.", 10).is_none());
        assert!(h.method_hint("print(\"system.info", 18).is_none());
        let line = ".doc core.ping";
        assert!(h.method_hint(line, line.len()).is_some());
    }

    #[test]
    fn incomplete_input_continues_on_the_next_line() {
        let h = helper();
        for open in [
            "fn f() {",
            "let x = 1 +",
            "if true {\n  print(1);",
            "let s = `multi",
            "call(\"system.info\",",
            "call(",
            "let a = [1, 2,",
            "let m = #{a: 1,",
            "foo(1,",
        ] {
            assert!(!h.is_complete(open), "{open:?} counts as complete");
        }
        for done in [
            "",
            "   ",
            ".doc app.create",
            "let x = 1",
            "let x = 1; x)",
            "fn f() { 1 }",
            "call(\"system.info\")",
            "let s = \"unterminated",
            "1 +* 2",
            "let s = `multi\nline`",
        ] {
            assert!(h.is_complete(done), "{done:?} counts as incomplete");
        }
    }
}
