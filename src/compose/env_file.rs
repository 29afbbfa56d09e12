//! `.env` and `env_file:` files, read as docker compose reads them (compose-go's dotenv
//! format), and the inlining of `env_file:` into `environment:`.
//!
//! The format: `KEY=VALUE` per line (`KEY: VALUE` too), an optional `export ` prefix, `#`
//! comments (whole lines, or after whitespace in unquoted values), `'single quoted'` values
//! taken literally, `"double quoted"` values with `\n \r \t \\ \" \$` escapes, both allowed to
//! span lines, and `${VAR}` interpolation in unquoted and double-quoted values (earlier keys of
//! the same file first, then the project's variables). A bare `KEY` takes its value from the
//! project's variables (and is skipped when unset).
//!
//! dotenvy is not used: its expansion differs from compose's (it drops the `$` of `$#,##0.00`
//! and rejects `"… $A"`), and the values must be exactly what compose would inline.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};

use super::error::{ComposeError, Place};
use super::interpolate::{Chain, Lookup, Origin, Report, TemplateError, expand};
use super::load::read_text;
use crate::protocol::redact;

/// One `KEY=VALUE` of an env file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnvVar {
    /// The key.
    pub key: String,
    /// The value after quoting, escapes and interpolation.
    pub value: String,
}

/// Parse env-file text. `origin` is what values of this file count as for later lookups
/// (`.env` → [`Origin::DotEnv`], `env_file` → [`Origin::EnvFile`]); `raw` disables quotes,
/// escapes and interpolation (compose's `format: raw`).
pub fn parse_env(
    path: &Path,
    text: &str,
    outer: &dyn Lookup,
    origin: Origin,
    raw: bool,
) -> Result<Vec<EnvVar>, ComposeError> {
    let mut out: Vec<EnvVar> = Vec::new();
    let mut seen: BTreeMap<String, String> = BTreeMap::new();
    let chars: Vec<char> = text.chars().collect();
    let mut i = 0;
    let mut line = 1u64;
    let err = |line: u64, col: usize, msg: String| ComposeError::EnvFile {
        place: Place::at(path, line, col as u64),
        message: msg,
    };
    let col_of = |i: usize| -> usize {
        let mut c = 1;
        let mut k = i;
        while k > 0 && chars[k - 1] != '\n' {
            k -= 1;
            c += 1;
        }
        c
    };
    while i < chars.len() {
        // Skip blank space and empty lines.
        match chars[i] {
            '\n' => {
                line += 1;
                i += 1;
                continue;
            }
            c if c.is_whitespace() || c == '\u{feff}' => {
                i += 1;
                continue;
            }
            '#' => {
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                continue;
            }
            _ => {}
        }
        let start_line = line;
        // `export KEY=…`
        let rest: String = chars[i..chars.len().min(i + 7)].iter().collect();
        if rest.starts_with("export") && rest.chars().nth(6).is_some_and(|c| c == ' ' || c == '\t')
        {
            i += 7;
            while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                i += 1;
            }
        }
        let key_start = i;
        while i < chars.len() && !matches!(chars[i], '=' | ':' | '\n' | ' ' | '\t' | '#') {
            i += 1;
        }
        let key: String = chars[key_start..i].iter().collect();
        if key.is_empty() {
            return Err(err(
                line,
                col_of(i),
                "expected KEY=VALUE (a line must start with a variable name)".into(),
            ));
        }
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '\n' || chars[i] == '#' {
            // A bare KEY: take it from the project's variables.
            while i < chars.len() && chars[i] != '\n' {
                i += 1;
            }
            if let Some((v, _)) = outer.get(&key) {
                seen.insert(key.clone(), v.clone());
                out.push(EnvVar { key, value: v });
            }
            continue;
        }
        if !matches!(chars[i], '=' | ':') {
            return Err(err(
                line,
                col_of(i),
                format!("expected = after {key:?} (keys cannot contain spaces)"),
            ));
        }
        i += 1;
        while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
            i += 1;
        }
        let quote = chars
            .get(i)
            .copied()
            .filter(|c| !raw && (*c == '\'' || *c == '"'));
        let (template, literal) = match quote {
            Some(q) => {
                let open_line = line;
                let open_col = col_of(i);
                i += 1;
                let mut s = String::new();
                let mut closed = false;
                while i < chars.len() {
                    let c = chars[i];
                    if c == '\n' {
                        line += 1;
                    }
                    if c == q {
                        closed = true;
                        i += 1;
                        break;
                    }
                    // `\'` in single quotes (and `\"` in double ones) is the quote itself, as
                    // compose reads it; any other backslash stays in a single-quoted value.
                    if q == '\'' && c == '\\' && i + 1 < chars.len() {
                        let n = chars[i + 1];
                        if n == '\n' {
                            line += 1;
                        }
                        if n != q {
                            s.push('\\');
                        }
                        s.push(n);
                        i += 2;
                        continue;
                    }
                    if q == '"' && c == '\\' && i + 1 < chars.len() {
                        let n = chars[i + 1];
                        match n {
                            'n' => s.push('\n'),
                            'r' => s.push('\r'),
                            't' => s.push('\t'),
                            '\\' => s.push('\\'),
                            '"' => s.push('"'),
                            '$' => s.push_str("$$"),
                            other => {
                                s.push('\\');
                                s.push(other);
                            }
                        }
                        i += 2;
                        continue;
                    }
                    if q == '"' && c == '$' {
                        s.push('$');
                    } else {
                        s.push(c);
                    }
                    i += 1;
                }
                if !closed {
                    return Err(err(
                        open_line,
                        open_col,
                        format!("unterminated {q} quote in the value of {key}"),
                    ));
                }
                // Only a comment may follow the closing quote.
                while i < chars.len() && (chars[i] == ' ' || chars[i] == '\t') {
                    i += 1;
                }
                if i < chars.len() && chars[i] != '\n' && chars[i] != '#' {
                    return Err(err(
                        line,
                        col_of(i),
                        format!("unexpected text after the quoted value of {key}"),
                    ));
                }
                while i < chars.len() && chars[i] != '\n' {
                    i += 1;
                }
                (s, q == '\'')
            }
            None => {
                let mut s = String::new();
                while i < chars.len() && chars[i] != '\n' {
                    if chars[i] == '#' && !raw && s.ends_with([' ', '\t']) {
                        while i < chars.len() && chars[i] != '\n' {
                            i += 1;
                        }
                        break;
                    }
                    s.push(chars[i]);
                    i += 1;
                }
                (s.trim_end().to_owned(), raw)
            }
        };
        let value = if literal {
            template
        } else {
            let chain = Chain {
                local: &seen,
                local_origin: origin,
                outer,
            };
            match expand(&template, &chain) {
                Ok(e) => e.text,
                Err(TemplateError::Missing { name, message }) => {
                    return Err(ComposeError::MissingVariable {
                        place: Place::at(path, start_line, 1),
                        name,
                        message,
                        snippet: String::new(),
                    });
                }
                Err(TemplateError::Invalid { text, reason }) => {
                    return Err(ComposeError::BadTemplate {
                        place: Place::at(path, start_line, 1),
                        text,
                        reason,
                    });
                }
            }
        };
        seen.insert(key.clone(), value.clone());
        out.retain(|v| v.key != key);
        out.push(EnvVar { key, value });
    }
    Ok(out)
}

/// Read an env file.
pub fn load_env(
    path: &Path,
    outer: &dyn Lookup,
    origin: Origin,
    raw: bool,
) -> Result<Vec<EnvVar>, ComposeError> {
    let text = read_text(path)?;
    parse_env(path, &text, outer, origin, raw)
}

/// One `env_file:` entry.
#[derive(Debug, Clone)]
struct EnvFileRef {
    path: PathBuf,
    required: bool,
    raw: bool,
}

fn env_file_refs(v: &Value, dir: &Path, service: &str) -> Result<Vec<EnvFileRef>, String> {
    let item = |x: &Value| -> Result<EnvFileRef, String> {
        match x {
            Value::String(p) => Ok(EnvFileRef {
                path: dir.join(p),
                required: true,
                raw: false,
            }),
            Value::Object(m) => {
                let p = m
                    .get("path")
                    .and_then(Value::as_str)
                    .ok_or_else(|| format!("services.{service}.env_file: an entry needs path:"))?;
                Ok(EnvFileRef {
                    path: dir.join(p),
                    required: m.get("required").and_then(Value::as_bool).unwrap_or(true),
                    raw: m.get("format").and_then(Value::as_str) == Some("raw"),
                })
            }
            _ => Err(format!(
                "services.{service}.env_file: entries must be paths or {{path, required}}"
            )),
        }
    };
    match v {
        Value::Array(items) => items.iter().map(item).collect(),
        other => Ok(vec![item(other)?]),
    }
}

/// `environment:` in either form as an ordered map. `KEY` without a value (list form) or a
/// null value takes its value from the project's variables, as compose does; it stays null
/// (unset in the container) when the variable is unset.
pub fn environment_map(
    v: Option<&Value>,
    lookup: &dyn Lookup,
    report: &mut Report,
) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    let from_lookup = |key: &str, out: &mut Map<String, Value>, report: &mut Report| {
        let value = match lookup.get(key) {
            Some((v, _)) => {
                if redact::looks_secret(key) {
                    report.tainted.insert(v.clone());
                }
                Value::String(v)
            }
            None => Value::Null,
        };
        out.insert(key.to_owned(), value);
    };
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Object(m)) => {
            for (k, v) in m {
                if v.is_null() {
                    from_lookup(k, &mut out, report);
                } else {
                    out.insert(k.clone(), v.clone());
                }
            }
        }
        Some(Value::Array(items)) => {
            for item in items {
                let Some(s) = item.as_str() else {
                    return Err("environment list entries must be KEY=VALUE strings".into());
                };
                match s.split_once('=') {
                    Some((k, val)) => {
                        if report.tainted.contains(s) {
                            report.tainted.insert(val.to_owned());
                        }
                        out.insert(k.to_owned(), Value::String(val.to_owned()));
                    }
                    None => from_lookup(s, &mut out, report),
                }
            }
        }
        Some(_) => return Err("environment must be a mapping or a list of KEY=VALUE".into()),
    }
    Ok(out)
}

/// Replace every service's `env_file:` by its variables in `environment:` (explicit
/// `environment` entries win, later files win over earlier ones) and normalise `environment`
/// to a mapping. Env-file values are recorded as secret-sourced in `report`.
pub fn inline_env_files(
    doc: &mut Value,
    project_dir: &Path,
    main_file: &Path,
    lookup: &dyn Lookup,
    report: &mut Report,
) -> Result<(), ComposeError> {
    let Some(services) = doc.get_mut("services").and_then(Value::as_object_mut) else {
        return Ok(());
    };
    for (name, svc) in services.iter_mut() {
        let Some(svc) = svc.as_object_mut() else {
            continue;
        };
        let invalid = |message: String| ComposeError::Invalid {
            place: Place::file(main_file),
            message,
        };
        let explicit = environment_map(svc.get("environment"), lookup, report)
            .map_err(|m| invalid(format!("services.{name}.environment: {m}")))?;
        let mut env = Map::new();
        if let Some(files) = svc.shift_remove("env_file") {
            for r in env_file_refs(&files, project_dir, name).map_err(invalid)? {
                if !r.path.is_file() {
                    if r.required {
                        return Err(ComposeError::Read {
                            path: r.path,
                            source: std::io::Error::new(
                                std::io::ErrorKind::NotFound,
                                format!(
                                    "env_file of service {name} not found (mark it required: false if it is optional)"
                                ),
                            ),
                        });
                    }
                    continue;
                }
                for var in load_env(&r.path, lookup, Origin::EnvFile, r.raw)? {
                    if redact::looks_secret(&var.key) {
                        report.tainted.insert(var.value.clone());
                        report.raw.insert(var.value.clone());
                    }
                    env.insert(var.key, Value::String(var.value));
                }
            }
        } else if !svc.contains_key("environment") {
            continue;
        }
        for (k, v) in explicit {
            env.insert(k, v);
        }
        svc.insert("environment".into(), Value::Object(env));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compose::interpolate::Variables;

    fn env(text: &str) -> Vec<(String, String)> {
        let v = Variables {
            environment: Some(BTreeMap::from([("HOME".to_owned(), "/root".to_owned())])),
            ..Default::default()
        };
        parse_env(Path::new(".env"), text, &v, Origin::DotEnv, false)
            .unwrap()
            .into_iter()
            .map(|e| (e.key, e.value))
            .collect()
    }

    fn pairs(p: &[(&str, &str)]) -> Vec<(String, String)> {
        p.iter()
            .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
            .collect()
    }

    #[test]
    fn compose_dotenv_format() {
        let got = env(concat!(
            "# comment\n",
            "\n",
            "A=1\n",
            "export B = two words  \n",
            "C='single $A # not a comment'\n",
            "D=\"double $A\\n\\\"q\\\" \\$A\"\n",
            "E=x # trailing comment\n",
            "F=a#b\n",
            "G=$#,##0.00\n",
            "H=${A}-${MISSING:-dflt}-$HOME\n",
            "I=\"multi\nline\"\n",
            "HOME\n",
            "J:colon\n",
            "A=override\n",
        ));
        assert_eq!(
            got,
            pairs(&[
                ("B", "two words"),
                ("C", "single $A # not a comment"),
                ("D", "double 1\n\"q\" $A"),
                ("E", "x"),
                ("F", "a#b"),
                ("G", "$#,##0.00"),
                ("H", "1-dflt-/root"),
                ("I", "multi\nline"),
                ("HOME", "/root"),
                ("J", "colon"),
                ("A", "override"),
            ])
        );
    }

    #[test]
    fn escaped_quotes_in_single_quotes() {
        assert_eq!(
            env("K='Let\\'s go!'\nL='a\\b\\\\c'\n"),
            pairs(&[("K", "Let's go!"), ("L", "a\\b\\\\c")])
        );
    }

    #[test]
    fn env_file_errors_name_the_line() {
        let v = Variables {
            environment: Some(BTreeMap::new()),
            ..Default::default()
        };
        let e = parse_env(
            Path::new("x.env"),
            "A=1\nB C=2\n",
            &v,
            Origin::EnvFile,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("x.env:2:"), "{e}");
        let e = parse_env(
            Path::new("x.env"),
            "A=1\nB=\"open\n",
            &v,
            Origin::EnvFile,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(
            e.starts_with("x.env:2:3") && e.contains("unterminated"),
            "{e}"
        );
        let e = parse_env(
            Path::new("x.env"),
            "\nT=${REQ:?needed}\n",
            &v,
            Origin::EnvFile,
            false,
        )
        .unwrap_err()
        .to_string();
        assert!(e.starts_with("x.env:2:1") && e.contains("needed"), "{e}");
    }

    #[test]
    fn raw_format_is_literal() {
        let v = Variables {
            environment: Some(BTreeMap::new()),
            ..Default::default()
        };
        let got = parse_env(Path::new("r"), "A='$x' # c\n", &v, Origin::EnvFile, true).unwrap();
        assert_eq!(got[0].value, "'$x' # c");
    }

    #[test]
    fn environment_forms() {
        let v = Variables {
            environment: Some(BTreeMap::from([("FROM_ENV".to_owned(), "e".to_owned())])),
            ..Default::default()
        };
        let mut r = Report::default();
        let m = environment_map(
            Some(&serde_json::json!(["A=1", "B=x=y", "FROM_ENV", "NOPE"])),
            &v,
            &mut r,
        )
        .unwrap();
        assert_eq!(
            Value::Object(m),
            serde_json::json!({"A": "1", "B": "x=y", "FROM_ENV": "e", "NOPE": null})
        );
    }
}
