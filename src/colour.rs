//! ANSI colour for the terminal: JSON results and compose diffs, shared by the one-off
//! commands and the REPL. On only for a terminal, and never when `NO_COLOR` is set to
//! anything non-empty (<https://no-color.org>).

use std::fmt::Write as _;

use serde_json::Value;

/// The ANSI styles midscript uses.
pub mod style {
    /// Object keys.
    pub const KEY: &str = "\x1b[34m";
    /// Strings; added lines of a diff.
    pub const STRING: &str = "\x1b[32m";
    /// Numbers; changed lines of a diff.
    pub const NUMBER: &str = "\x1b[33m";
    /// `true`, `false`, `null`.
    pub const LITERAL: &str = "\x1b[35m";
    /// Hints and notes.
    pub const DIM: &str = "\x1b[2m";
    /// Headings.
    pub const BOLD: &str = "\x1b[1m";
    /// Errors; removed lines of a diff.
    pub const RED: &str = "\x1b[31m";
    /// Values that are not data (function pointers, handles), event lines.
    pub const CYAN: &str = "\x1b[36m";
    /// Back to plain text.
    pub const RESET: &str = "\x1b[0m";
}

/// Colour for output going to a terminal (`is_terminal`), unless `NO_COLOR` is set.
pub fn enabled(is_terminal: bool) -> bool {
    is_terminal && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
}

/// Wrap `text` in the ANSI style `code` when `on`.
pub fn paint(text: &str, code: &str, on: bool) -> String {
    if on {
        format!("{code}{text}{}", style::RESET)
    } else {
        text.to_owned()
    }
}

/// `value` as indented JSON (two spaces, as `serde_json`'s pretty printer), coloured when `on`.
pub fn json(value: &Value, on: bool) -> String {
    if !on {
        return serde_json::to_string_pretty(value).unwrap_or_else(|_| value.to_string());
    }
    let mut out = String::new();
    write_json(&mut out, value, 0);
    out
}

fn write_json(out: &mut String, value: &Value, depth: usize) {
    let pad = |d: usize| "  ".repeat(d);
    match value {
        Value::Null | Value::Bool(_) => {
            out.push_str(&paint(&value.to_string(), style::LITERAL, true))
        }
        Value::Number(n) => out.push_str(&paint(&n.to_string(), style::NUMBER, true)),
        Value::String(_) => out.push_str(&paint(&value.to_string(), style::STRING, true)),
        Value::Array(items) if items.is_empty() => out.push_str("[]"),
        Value::Object(map) if map.is_empty() => out.push_str("{}"),
        Value::Array(items) => {
            out.push_str("[\n");
            for (i, item) in items.iter().enumerate() {
                out.push_str(&pad(depth + 1));
                write_json(out, item, depth + 1);
                out.push_str(if i + 1 < items.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}]", pad(depth));
        }
        Value::Object(map) => {
            out.push_str("{\n");
            for (i, (k, v)) in map.iter().enumerate() {
                let key = Value::String(k.clone()).to_string();
                let _ = write!(out, "{}{}: ", pad(depth + 1), paint(&key, style::KEY, true));
                write_json(out, v, depth + 1);
                out.push_str(if i + 1 < map.len() { ",\n" } else { "\n" });
            }
            let _ = write!(out, "{}}}", pad(depth));
        }
    }
}

/// A rendered compose diff, coloured when `on`: added services green, removed ones red,
/// changes (and their indented details) yellow, notes dim.
pub fn diff(text: &str, on: bool) -> String {
    if !on {
        return text.to_owned();
    }
    let mut changing = false;
    let lines: Vec<String> = text
        .lines()
        .map(|line| {
            let code = if line.starts_with("+ ") {
                changing = false;
                Some(style::STRING)
            } else if line.starts_with("- ") {
                changing = false;
                Some(style::RED)
            } else if line.starts_with("~ ") {
                changing = true;
                Some(style::NUMBER)
            } else if line.starts_with("    ") && changing {
                Some(style::NUMBER)
            } else if line.starts_with("note: ") || line.starts_with('(') {
                changing = false;
                Some(style::DIM)
            } else {
                changing = false;
                None
            };
            match code {
                Some(c) => paint(line, c, true),
                None => line.to_owned(),
            }
        })
        .collect();
    lines.join("\n")
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_is_plain_without_colour_and_painted_with_it() {
        let v = json!({"a": [1, "x", true, null], "e": {}});
        assert_eq!(json(&v, false), serde_json::to_string_pretty(&v).unwrap());
        let painted = json(&v, true);
        assert!(painted.contains("\x1b[34m\"a\"\x1b[0m: ["), "{painted:?}");
        assert!(painted.contains("\x1b[33m1\x1b[0m"), "{painted:?}");
        assert!(painted.contains("\x1b[32m\"x\"\x1b[0m"), "{painted:?}");
        assert!(painted.contains("\x1b[35mnull\x1b[0m"), "{painted:?}");
        // Without the escapes it is the same text.
        let plain = painted.replace('\x1b', "");
        let stripped = regex::Regex::new(r"\[[0-9]+m")
            .unwrap()
            .replace_all(&plain, "");
        assert_eq!(stripped, serde_json::to_string_pretty(&v).unwrap());
    }

    #[test]
    fn diff_lines_are_coloured_by_kind() {
        let text = "+ web (image nginx:1.27)\n- old\n~ api\n    image: a -> b\nnote: x";
        assert_eq!(diff(text, false), text);
        let painted = diff(text, true);
        let lines: Vec<&str> = painted.lines().collect();
        assert_eq!(lines[0], "\x1b[32m+ web (image nginx:1.27)\x1b[0m");
        assert_eq!(lines[1], "\x1b[31m- old\x1b[0m");
        assert_eq!(lines[2], "\x1b[33m~ api\x1b[0m");
        assert_eq!(lines[3], "\x1b[33m    image: a -> b\x1b[0m");
        assert_eq!(lines[4], "\x1b[2mnote: x\x1b[0m");
        assert_eq!(diff("no changes", true), "no changes");
    }
}
