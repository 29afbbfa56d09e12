//! Variable interpolation with docker compose's semantics (compose-spec "Interpolation"):
//!
//! | syntax | result |
//! |---|---|
//! | `$VAR`, `${VAR}` | the value; unset → empty string and a warning |
//! | `${VAR:-default}` | `default` when VAR is unset **or empty** |
//! | `${VAR-default}` | `default` when VAR is unset |
//! | `${VAR:?message}` | error quoting `message` when VAR is unset or empty |
//! | `${VAR?message}` | error when VAR is unset |
//! | `${VAR:+replacement}` | `replacement` when VAR is set and non-empty, else empty |
//! | `${VAR+replacement}` | `replacement` when VAR is set, else empty |
//! | `$$` | a literal `$` |
//!
//! Defaults and replacements are interpolated themselves (`${A:-${B:-x}}`). A `$` that starts
//! none of these (`$#`, `$1`, a trailing `$`) stays literal, as in compose-go; a `${` that does
//! not form a valid expression is an error. Only values are interpolated, never keys.
//!
//! Variables are looked up in this order (see [`Variables`]): `--var`/script variables, then
//! the environment, then the project's `.env`, as docker compose does (its shell environment
//! wins over `.env`). `COMPOSE_PROJECT_NAME` is always `ix-<app>`, the project TrueNAS runs.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;
use serde_json::Value;

use super::error::ComposeError;
use super::load::{SourceFile, dotted, pointer_index, pointer_key};
use crate::protocol::redact;

/// Where a variable's value came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Origin {
    /// `--var KEY=VALUE` or a script variable.
    Var,
    /// The project's `.env` (or `--env-file`).
    DotEnv,
    /// A service's `env_file:`.
    EnvFile,
    /// The process environment.
    Environment,
}

/// Something that resolves variable names.
pub trait Lookup {
    /// The value of `name` and where it came from; `None` when unset.
    fn get(&self, name: &str) -> Option<(String, Origin)>;
}

/// The variables interpolation sees: `vars`, then `environment`, then `dotenv`.
#[derive(Debug, Clone, Default)]
pub struct Variables {
    /// `--var KEY=VALUE` / script variables (highest precedence).
    pub vars: BTreeMap<String, String>,
    /// The project's `.env` file (lowest precedence, as in compose).
    pub dotenv: BTreeMap<String, String>,
    /// The environment: `None` reads the process environment (never modifying it);
    /// `Some(map)` uses exactly that map (tests, scripts).
    pub environment: Option<BTreeMap<String, String>>,
}

impl Lookup for Variables {
    fn get(&self, name: &str) -> Option<(String, Origin)> {
        if let Some(v) = self.vars.get(name) {
            return Some((v.clone(), Origin::Var));
        }
        let from_environment = match &self.environment {
            Some(env) => env.get(name).cloned(),
            None => std::env::var(name).ok(),
        };
        if let Some(v) = from_environment {
            return Some((v, Origin::Environment));
        }
        self.dotenv.get(name).map(|v| (v.clone(), Origin::DotEnv))
    }
}

/// A lookup that sees `local` first (e.g. earlier lines of the same env file), then `outer`.
pub struct Chain<'a> {
    /// Checked first.
    pub local: &'a BTreeMap<String, String>,
    /// The origin to report for `local` values.
    pub local_origin: Origin,
    /// Checked next.
    pub outer: &'a dyn Lookup,
}

impl Lookup for Chain<'_> {
    fn get(&self, name: &str) -> Option<(String, Origin)> {
        match self.local.get(name) {
            Some(v) => Some((v.clone(), self.local_origin)),
            None => self.outer.get(name),
        }
    }
}

/// The result of expanding one string.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Expanded {
    /// The text with every expression replaced and `$$` turned into `$`.
    pub text: String,
    /// Some value came from a variable whose name looks secret (`DB_PASS`): masked in every
    /// output, wherever it was used.
    pub tainted: bool,
    /// Variables that were used but unset (compose warns and substitutes "").
    pub unset: Vec<String>,
}

/// Why a string cannot be expanded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateError {
    /// `${VAR:?message}` / `${VAR?message}` with VAR missing.
    Missing {
        /// The variable.
        name: String,
        /// The message after `?`.
        message: String,
    },
    /// Not a valid expression.
    Invalid {
        /// The offending text.
        text: String,
        /// Why.
        reason: String,
    },
}

fn is_name_start(b: u8) -> bool {
    b.is_ascii_alphabetic() || b == b'_'
}

fn is_name_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// Expand every expression in `s`.
pub fn expand(s: &str, lookup: &dyn Lookup) -> Result<Expanded, TemplateError> {
    let mut out = Expanded::default();
    out.text = expand_into(s, lookup, &mut out)?;
    Ok(out)
}

fn expand_into(s: &str, lookup: &dyn Lookup, st: &mut Expanded) -> Result<String, TemplateError> {
    let b = s.as_bytes();
    let mut res = String::with_capacity(s.len());
    let mut i = 0;
    while let Some(off) = s[i..].find('$') {
        let j = i + off;
        res.push_str(&s[i..j]);
        match b.get(j + 1) {
            Some(b'$') => {
                res.push('$');
                i = j + 2;
            }
            Some(b'{') => {
                let end = closing_brace(s, j + 2).ok_or_else(|| TemplateError::Invalid {
                    text: s[j..].to_owned(),
                    reason: "missing closing brace".into(),
                })?;
                res.push_str(&braced(&s[j + 2..end], &s[j..=end], lookup, st)?);
                i = end + 1;
            }
            Some(&c) if is_name_start(c) => {
                let mut k = j + 1;
                while k < b.len() && is_name_char(b[k]) {
                    k += 1;
                }
                res.push_str(&value_of(&s[j + 1..k], lookup, st).unwrap_or_default());
                i = k;
            }
            _ => {
                res.push('$');
                i = j + 1;
            }
        }
    }
    res.push_str(&s[i..]);
    Ok(res)
}

/// The index of the `}` closing a `${` whose content starts at `from` (nested `${…}` counted).
fn closing_brace(s: &str, from: usize) -> Option<usize> {
    let b = s.as_bytes();
    let mut depth = 1;
    let mut k = from;
    while k < b.len() {
        match b[k] {
            b'$' if b.get(k + 1) == Some(&b'{') => {
                depth += 1;
                k += 2;
                continue;
            }
            b'$' if b.get(k + 1) == Some(&b'$') => {
                k += 2;
                continue;
            }
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(k);
                }
            }
            _ => {}
        }
        k += 1;
    }
    None
}

/// Look a variable up, recording taint and unset names; `None` when unset.
fn value_of(name: &str, lookup: &dyn Lookup, st: &mut Expanded) -> Option<String> {
    match lookup.get(name) {
        Some((v, _)) => {
            if redact::looks_secret(name) {
                st.tainted = true;
            }
            Some(v)
        }
        None => {
            if !st.unset.iter().any(|n| n == name) {
                st.unset.push(name.to_owned());
            }
            None
        }
    }
}

fn braced(
    inner: &str,
    whole: &str,
    lookup: &dyn Lookup,
    st: &mut Expanded,
) -> Result<String, TemplateError> {
    let b = inner.as_bytes();
    if b.is_empty() || !is_name_start(b[0]) {
        return Err(TemplateError::Invalid {
            text: whole.to_owned(),
            reason: "expected a variable name after ${".into(),
        });
    }
    let mut k = 1;
    while k < b.len() && is_name_char(b[k]) {
        k += 1;
    }
    let name = &inner[..k];
    let rest = &inner[k..];
    let lookup_quiet = |st: &mut Expanded| -> Option<String> {
        // A variable with a default/replacement is not "unset" in compose's warning sense.
        let v = lookup.get(name);
        if v.is_some() && redact::looks_secret(name) {
            st.tainted = true;
        }
        v.map(|(v, _)| v)
    };
    let (op, arg) = if rest.is_empty() {
        ("", "")
    } else if let Some(a) = rest.strip_prefix(":-") {
        (":-", a)
    } else if let Some(a) = rest.strip_prefix(":?") {
        (":?", a)
    } else if let Some(a) = rest.strip_prefix(":+") {
        (":+", a)
    } else if let Some(a) = rest.strip_prefix('-') {
        ("-", a)
    } else if let Some(a) = rest.strip_prefix('?') {
        ("?", a)
    } else if let Some(a) = rest.strip_prefix('+') {
        ("+", a)
    } else {
        return Err(TemplateError::Invalid {
            text: whole.to_owned(),
            reason: format!("unexpected {rest:?} after the variable name"),
        });
    };
    Ok(match op {
        "" => value_of(name, lookup, st).unwrap_or_default(),
        ":-" => match lookup_quiet(st) {
            Some(v) if !v.is_empty() => v,
            _ => expand_into(arg, lookup, st)?,
        },
        "-" => match lookup_quiet(st) {
            Some(v) => v,
            None => expand_into(arg, lookup, st)?,
        },
        ":?" | "?" => match lookup_quiet(st) {
            Some(v) if op == "?" || !v.is_empty() => v,
            _ => {
                return Err(TemplateError::Missing {
                    name: name.to_owned(),
                    message: expand_into(arg, lookup, st)?,
                });
            }
        },
        ":+" => match lookup_quiet(st) {
            Some(v) if !v.is_empty() => expand_into(arg, lookup, st)?,
            _ => String::new(),
        },
        _ => match lookup_quiet(st) {
            Some(_) => expand_into(arg, lookup, st)?,
            None => String::new(),
        },
    })
}

/// What interpolating a document found besides the result.
#[derive(Debug, Default)]
pub struct Report {
    /// Expanded strings that contain values of secret-named variables.
    pub tainted: BTreeSet<String>,
    /// The raw values of secret-named variables (found inside other strings too).
    pub raw: BTreeSet<String>,
    /// Warnings (unset variables).
    pub warnings: Vec<String>,
}

/// Interpolate every string value of a parsed file; errors name the file, line and column.
pub fn interpolate_file(
    file: &SourceFile,
    lookup: &dyn Lookup,
    report: &mut Report,
) -> Result<Value, ComposeError> {
    walk(&file.value, String::new(), file, lookup, report)
}

fn walk(
    v: &Value,
    pointer: String,
    file: &SourceFile,
    lookup: &dyn Lookup,
    report: &mut Report,
) -> Result<Value, ComposeError> {
    Ok(match v {
        Value::String(s) => {
            if !s.contains('$') {
                return Ok(v.clone());
            }
            match expand(s, lookup) {
                Ok(e) => {
                    for name in &e.unset {
                        report.warnings.push(format!(
                            "{}: variable {name} is not set; substituting an empty string ({})",
                            file.place(&pointer, true),
                            dotted(&pointer)
                        ));
                    }
                    if e.tainted {
                        report.tainted.insert(e.text.clone());
                    }
                    Value::String(e.text)
                }
                Err(TemplateError::Missing { name, message }) => {
                    let place = file.place(&pointer, true);
                    return Err(ComposeError::MissingVariable {
                        snippet: file.snippet(&place),
                        place,
                        name,
                        message,
                    });
                }
                Err(TemplateError::Invalid { text, reason }) => {
                    return Err(ComposeError::BadTemplate {
                        place: file.place(&pointer, true),
                        text,
                        reason,
                    });
                }
            }
        }
        Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| walk(x, pointer_index(&pointer, i), file, lookup, report))
                .collect::<Result<_, _>>()?,
        ),
        Value::Object(m) => {
            let mut out = serde_json::Map::new();
            for (k, x) in m {
                out.insert(
                    k.clone(),
                    walk(x, pointer_key(&pointer, k), file, lookup, report)?,
                );
            }
            Value::Object(out)
        }
        other => other.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Variables {
        Variables {
            environment: Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..Variables::default()
        }
    }

    fn ex(s: &str, v: &Variables) -> String {
        expand(s, v).unwrap().text
    }

    /// The examples of the compose-spec "Interpolation" page.
    #[test]
    fn compose_spec_examples() {
        let v = vars(&[("TAG", "v1.5"), ("EMPTY", ""), ("FOO", "foo")]);
        assert_eq!(ex("webapp:${TAG}", &v), "webapp:v1.5");
        assert_eq!(ex("webapp:$TAG", &v), "webapp:v1.5");
        // Default when unset or empty vs only when unset.
        assert_eq!(ex("${UNSET:-default}", &v), "default");
        assert_eq!(ex("${EMPTY:-default}", &v), "default");
        assert_eq!(ex("${UNSET-default}", &v), "default");
        assert_eq!(ex("${EMPTY-default}", &v), "");
        assert_eq!(ex("${TAG:-default}", &v), "v1.5");
        // Replacement.
        assert_eq!(ex("${TAG:+replacement}", &v), "replacement");
        assert_eq!(ex("${EMPTY:+replacement}", &v), "");
        assert_eq!(ex("${EMPTY+replacement}", &v), "replacement");
        assert_eq!(ex("${UNSET+replacement}", &v), "");
        // Nested.
        assert_eq!(ex("${VARIABLE:-${FOO}}", &v), "foo");
        assert_eq!(
            expand("${VARIABLE?$FOO}", &v).unwrap_err(),
            TemplateError::Missing {
                name: "VARIABLE".into(),
                message: "foo".into()
            }
        );
        assert_eq!(ex("${VARIABLE:-${FOO:-default}}", &v), "foo");
        assert_eq!(ex("${VARIABLE:-${UNSET:-default}}", &v), "default");
        // $$ is a literal $.
        assert_eq!(
            ex("$$VAR_NOT_INTERPOLATED_BY_COMPOSE", &v),
            "$VAR_NOT_INTERPOLATED_BY_COMPOSE"
        );
        assert_eq!(
            ex("pg_isready -U $${POSTGRES_USER}", &v),
            "pg_isready -U ${POSTGRES_USER}"
        );
        // Unbraced names stop at the first non-name character.
        assert_eq!(ex("$FOO-bar", &v), "foo-bar");
        assert_eq!(ex("$FOO.bar", &v), "foo.bar");
        // A $ that starts no expression stays literal.
        assert_eq!(ex("$#,##0.00", &v), "$#,##0.00");
        assert_eq!(ex("cost: $5 $", &v), "cost: $5 $");
    }

    #[test]
    fn required_variables() {
        let v = vars(&[("EMPTY", "")]);
        let e = expand("${API_TOKEN:?set API_TOKEN before deploying}", &v).unwrap_err();
        assert_eq!(
            e,
            TemplateError::Missing {
                name: "API_TOKEN".into(),
                message: "set API_TOKEN before deploying".into()
            }
        );
        assert!(expand("${EMPTY:?x}", &v).is_err());
        assert_eq!(expand("${EMPTY?x}", &v).unwrap().text, "");
        assert!(expand("${UNSET?}", &v).is_err());
    }

    #[test]
    fn invalid_templates() {
        let v = vars(&[]);
        for bad in ["${", "${}", "${1A}", "${A B}", "${A:x}", "x ${A"] {
            assert!(
                matches!(expand(bad, &v), Err(TemplateError::Invalid { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn unset_is_reported_and_taint_tracked() {
        // Taint follows the variable's name, wherever its value came from.
        let mut v = vars(&[("E", "e"), ("ENV_TOKEN", "t")]);
        v.dotenv.insert("DB_PASS".into(), "d".into());
        v.dotenv.insert("TAG".into(), "1.27".into());
        v.vars.insert("D2".into(), "x".into());
        let e = expand("$U ${U} ${E}", &v).unwrap();
        assert_eq!(e.unset, vec!["U".to_owned()]);
        assert!(!e.tainted);
        assert!(expand("${DB_PASS}", &v).unwrap().tainted);
        assert!(expand("${U:-$DB_PASS}", &v).unwrap().tainted);
        assert!(expand("x${ENV_TOKEN}", &v).unwrap().tainted);
        assert!(!expand("${D2}", &v).unwrap().tainted);
        assert!(!expand("nginx:${TAG}", &v).unwrap().tainted);
        // Defaults do not count as unset.
        assert!(expand("${U:-x}", &v).unwrap().unset.is_empty());
    }

    #[test]
    fn precedence_is_vars_then_environment_then_dotenv() {
        let mut v = vars(&[("A", "env"), ("B", "env")]);
        v.dotenv.insert("A".into(), "dotenv".into());
        v.dotenv.insert("B".into(), "dotenv".into());
        v.dotenv.insert("C".into(), "dotenv".into());
        v.vars.insert("A".into(), "var".into());
        assert_eq!(ex("$A $B $C", &v), "var env dotenv");
    }

    #[test]
    fn unicode_is_kept() {
        let v = vars(&[("X", "ü")]);
        assert_eq!(ex("é$X€${X}ß", &v), "éü€üß");
    }
}
