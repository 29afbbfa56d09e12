//! Argument validation that answers like the server.
//!
//! TrueNAS validates arguments with pydantic v2 (`api/base/handler/accept.py`) using a model
//! config with `extra="forbid"` and `strict=True` (`api/base/model.py`), and turns each pydantic
//! error into an `[attribute, message, errno]` triple with the location joined by dots. This module
//! walks the JSON schema of each positional argument and produces the same triples.
//!
//! What is checked (messages are pydantic v2's):
//! - types, strictly, as the server's `strict=True` does: `string`; `integer` (JSON integers only:
//!   `1.0` and `true` are not integers); `number` (`float` in legacy schemas; any JSON number);
//!   `boolean` (`true`/`false` only); `null`; `array`; `object`; type lists like
//!   `["string","null"]`;
//! - `minLength`/`maxLength` (counted in characters), `pattern` (the `regex` crate: pydantic-core
//!   uses the same engine and searches, unanchored, as `Regex::is_match` does), `minimum`,
//!   `maximum`, `exclusiveMinimum`, `exclusiveMaximum`, `minItems`, `maxItems`;
//! - `const` and `enum` ("Input should be 'A', 'B' or 'C'");
//! - objects: required properties (the `required` list) → "Field required", unknown keys
//!   with `additionalProperties: false` → "Extra inputs are not permitted", an
//!   `additionalProperties` schema is applied to the extra keys;
//! - array items (TrueNAS's `"items": [schema]`), located by index: `arg.field.0.name`;
//! - `anyOf` / `oneOf`: valid if any branch is. Otherwise, if the value's JSON kind fits one or
//!   more branches, the errors of the fitting branch with the fewest errors are reported; if it
//!   fits none, one entry at the union's location whose message joins each branch's first
//!   message with " or " (what `accept.py` does with pydantic's per-member union errors);
//! - discriminated unions (`oneOf` + `discriminator.propertyName`): missing tag → "Field
//!   required" at `<loc>.<tag field>` (as `accept.py` rewrites it), unknown tag → pydantic's
//!   `union_tag_invalid` message, a known tag → that branch, located under the tag
//!   (`provider.S3.access_key_id`, as pydantic does);
//! - too many positional arguments → "Too many arguments (expected N, found M)" with attribute
//!   `""` (`accept.py` adds it under the empty name).
//!
//! Accepted without checking (never a false error):
//! - a missing property marked `_required_` in an object without a `required` list: a legacy
//!   schema, which marks fields of update schemas (`ssh.update`) too (see
//!   `schema::property_required`);
//! - `format` (`uri`, `email`, `ipvanyaddress`, `date-time`, …): the pydantic types behind them
//!   are not reproduced;
//! - `uniqueItems` (a pydantic `set` de-duplicates rather than rejects);
//! - a `pattern` the `regex` crate cannot compile;
//! - `null` where the schema's `default` is `null` or `nullable` is true (legacy schemas allow
//!   it; pydantic never shows such a default without `None` in the type);
//! - a `type` name outside JSON Schema's, a schema without `type`/`anyOf`/`oneOf`/`enum`/`const`
//!   (`{}` means "any"), and a non-object schema;
//! - pydantic's `str_max_length=1024` model default: the schema does not say which strings are
//!   exempt (`LongString`), so only explicit `maxLength` is checked.
//!
//! Known difference: methods still declared with the legacy (pre-pydantic) schema in 25.04 coerce
//! some inputs (e.g. `"5"` for an integer); the strict check reports those as errors.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};

use regex::Regex;
use serde_json::Value;

use super::method::MethodInfo;
use super::schema::{self, kind_of, or_list, py_repr};
use crate::protocol::ValidationEntry;
use crate::protocol::errno::EINVAL;

/// Check `params` against `m.accepts`, positional argument by argument. `Ok(())` when the server
/// would accept them; otherwise the `extra` triples it would send (errno 22 each).
pub fn validate_params(m: &MethodInfo, params: &[Value]) -> Result<(), Vec<ValidationEntry>> {
    if let Some(msg) = too_many_arguments(m, params) {
        return Err(vec![ValidationEntry {
            attribute: Some(String::new()),
            message: msg,
            errno: EINVAL,
        }]);
    }
    let mut errors = Vec::new();
    for (i, s) in m.accepts.iter().enumerate() {
        let name = schema::arg_name(s, i);
        match params.get(i) {
            Some(v) => check(s, v, &name, &mut errors),
            None if schema::is_required_arg(s) => push(&mut errors, &name, "Field required"),
            None => {}
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(errors)
    }
}

/// "Too many arguments (expected N, found M)" when more params are given than the method accepts.
pub fn too_many_arguments(m: &MethodInfo, params: &[Value]) -> Option<String> {
    (params.len() > m.accepts.len()).then(|| {
        format!(
            "Too many arguments (expected {}, found {})",
            m.accepts.len(),
            params.len()
        )
    })
}

fn push(errors: &mut Vec<ValidationEntry>, path: &str, message: impl Into<String>) {
    errors.push(ValidationEntry {
        attribute: Some(path.to_owned()),
        message: message.into(),
        errno: EINVAL,
    });
}

fn join(path: &str, key: impl std::fmt::Display) -> String {
    format!("{path}.{key}")
}

/// Validate `v` against `s` at `path`, appending errors.
fn check(s: &Value, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    if !s.is_object() {
        return; // `true` or something unknown: accept.
    }
    if v.is_null() && allows_null(s) {
        return;
    }
    if let Some(lits) = schema::literal_values(s) {
        if !lits.contains(&v) {
            let shown: Vec<String> = lits.iter().map(|l| py_repr(l)).collect();
            push(errors, path, format!("Input should be {}", or_list(&shown)));
        }
        return;
    }
    if schema::variants(s).is_some() {
        check_union(s, v, path, errors);
        return;
    }
    let types = schema::declared_types(s);
    match types.as_slice() {
        [] => {} // no type: any value.
        [t] => check_type(s, t, v, path, errors),
        many => {
            // `["string", "null"]`: null is handled above; the value must fit one of the others.
            let fits = many.iter().find(|t| kind_fits(t, v));
            let t = fits.or_else(|| many.iter().find(|t| **t != "null"));
            if let Some(t) = t {
                check_type(s, t, v, path, errors);
            }
        }
    }
}

/// Whether `null` is fine for `s` without further checks.
fn allows_null(s: &Value) -> bool {
    schema::declared_types(s).contains(&"null")
        || s.get("nullable").and_then(Value::as_bool) == Some(true)
        || s.get("default").is_some_and(Value::is_null)
        || schema::variants(s).is_some_and(|b| b.iter().any(schema::is_null_branch))
        || schema::literal_values(s).is_some_and(|l| l.contains(&&Value::Null))
        || (schema::declared_types(s).is_empty()
            && schema::variants(s).is_none()
            && schema::literal_values(s).is_none())
}

/// Whether value `v` has the JSON kind named by schema type `t`.
fn kind_fits(t: &str, v: &Value) -> bool {
    match t {
        "string" => v.is_string(),
        "integer" => v.is_i64() || v.is_u64(),
        "number" => v.is_number(),
        "boolean" => v.is_boolean(),
        "null" => v.is_null(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        _ => true, // unknown type name: don't claim a mismatch.
    }
}

/// Whether `v` could belong to branch `s` by its JSON kind alone.
fn branch_fits(s: &Value, v: &Value) -> bool {
    if let Some(lits) = schema::literal_values(s) {
        return lits
            .iter()
            .any(|l| kind_of(l) == kind_of(v) || (l.is_number() && v.is_number()));
    }
    if let Some(branches) = schema::variants(s) {
        return branches.iter().any(|b| branch_fits(b, v));
    }
    let types = schema::declared_types(s);
    types.is_empty() || types.iter().any(|t| kind_fits(t, v))
}

fn check_type(s: &Value, t: &str, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    match t {
        "string" => check_string(s, v, path, errors),
        "integer" | "number" => check_number(s, t, v, path, errors),
        "boolean" if !v.is_boolean() => push(errors, path, "Input should be a valid boolean"),
        "null" if !v.is_null() => push(errors, path, "Input should be None"),
        "array" => check_array(s, v, path, errors),
        "object" => check_object(s, v, path, errors),
        _ => {}
    }
}

fn check_string(s: &Value, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    let Some(text) = v.as_str() else {
        push(errors, path, "Input should be a valid string");
        return;
    };
    let len = text.chars().count() as u64;
    let plural = |n: u64| if n == 1 { "" } else { "s" };
    if let Some(min) = s.get("minLength").and_then(Value::as_u64)
        && len < min
    {
        let msg = format!("String should have at least {min} character{}", plural(min));
        push(errors, path, msg);
    }
    if let Some(max) = s.get("maxLength").and_then(Value::as_u64)
        && len > max
    {
        let msg = format!("String should have at most {max} character{}", plural(max));
        push(errors, path, msg);
    }
    if let Some(pat) = s.get("pattern").and_then(Value::as_str)
        && matches_pattern(pat, text) == Some(false)
    {
        push(errors, path, format!("String should match pattern '{pat}'"));
    }
}

/// `Some(matched)`, or `None` when the pattern does not compile (then it is not checked).
/// Compiled patterns are cached: the dump has a handful.
fn matches_pattern(pat: &str, text: &str) -> Option<bool> {
    static CACHE: OnceLock<Mutex<HashMap<String, Option<Regex>>>> = OnceLock::new();
    let cache = CACHE.get_or_init(Default::default);
    // A poisoned lock only means another thread panicked mid-insert; the map is still usable.
    let mut cache = cache.lock().unwrap_or_else(|e| e.into_inner());
    let re = cache
        .entry(pat.to_owned())
        .or_insert_with(|| Regex::new(pat).ok());
    re.as_ref().map(|re| re.is_match(text))
}

/// A numeric bound: schema key, test on (value, bound), pydantic's words.
type Rule = (&'static str, fn(f64, f64) -> bool, &'static str);

fn check_number(s: &Value, t: &str, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    if t == "integer" && !(v.is_i64() || v.is_u64()) {
        push(errors, path, "Input should be a valid integer");
        return;
    }
    let Some(x) = v.as_f64() else {
        push(errors, path, "Input should be a valid number");
        return;
    };
    let bound = |k: &str| s.get(k).filter(|b| b.is_number());
    let cmp = |b: &Value| b.as_f64().unwrap_or(f64::NAN);
    let rules: [Rule; 4] = [
        ("minimum", |x, b| x >= b, "greater than or equal to"),
        ("exclusiveMinimum", |x, b| x > b, "greater than"),
        ("maximum", |x, b| x <= b, "less than or equal to"),
        ("exclusiveMaximum", |x, b| x < b, "less than"),
    ];
    for (key, ok, words) in rules {
        if let Some(b) = bound(key)
            && !ok(x, cmp(b))
            && !int_ok(key, v, b)
        {
            push(errors, path, format!("Input should be {words} {b}"));
        }
    }
}

/// Exact comparison for integers (f64 loses precision above 2^53).
fn int_ok(key: &str, v: &Value, b: &Value) -> bool {
    let (Some(x), Some(b)) = (as_i128(v), as_i128(b)) else {
        return false;
    };
    match key {
        "minimum" => x >= b,
        "exclusiveMinimum" => x > b,
        "maximum" => x <= b,
        _ => x < b,
    }
}

fn as_i128(v: &Value) -> Option<i128> {
    v.as_i64()
        .map(i128::from)
        .or_else(|| v.as_u64().map(i128::from))
}

fn check_array(s: &Value, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    let Some(list) = v.as_array() else {
        push(errors, path, "Input should be a valid list");
        return;
    };
    let n = list.len() as u64;
    let plural = |n: u64| if n == 1 { "item" } else { "items" };
    if let Some(min) = s.get("minItems").and_then(Value::as_u64)
        && n < min
    {
        let msg = format!(
            "List should have at least {min} {} after validation, not {n}",
            plural(min)
        );
        push(errors, path, msg);
    }
    if let Some(max) = s.get("maxItems").and_then(Value::as_u64)
        && n > max
    {
        let msg = format!(
            "List should have at most {max} {} after validation, not {n}",
            plural(max)
        );
        push(errors, path, msg);
    }
    if let Some(item) = schema::items(s) {
        for (i, x) in list.iter().enumerate() {
            check(item, x, &join(path, i), errors);
        }
    }
}

fn check_object(s: &Value, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    let Some(obj) = v.as_object() else {
        push(errors, path, "Input should be a valid dictionary");
        return;
    };
    let props = schema::properties(s);
    for (name, prop) in &props {
        match obj.get(*name) {
            Some(x) => check(prop, x, &join(path, name), errors),
            None if schema::property_required(s, name, prop) == Some(true) => {
                push(errors, &join(path, name), "Field required");
            }
            None => {}
        }
    }
    let extra = s.get("additionalProperties");
    for (key, x) in obj {
        if props.iter().any(|(n, _)| n == key) {
            continue;
        }
        match extra {
            Some(Value::Bool(false)) => {
                push(errors, &join(path, key), "Extra inputs are not permitted");
            }
            Some(extra_schema @ Value::Object(_)) => {
                check(extra_schema, x, &join(path, key), errors)
            }
            _ => {}
        }
    }
}

fn check_union(s: &Value, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    if let Some(tag) = s
        .get("discriminator")
        .and_then(|d| d.get("propertyName"))
        .and_then(Value::as_str)
    {
        check_tagged(s, tag, v, path, errors);
        return;
    }
    let branches = schema::non_null_variants(s);
    if let [only] = branches.as_slice() {
        check(only, v, path, errors); // `Optional[X]`: pydantic reports X's errors directly.
        return;
    }
    let mut fitting: Option<Vec<ValidationEntry>> = None;
    let mut first_messages: Vec<String> = Vec::new();
    for b in &branches {
        let mut errs = Vec::new();
        check(b, v, path, &mut errs);
        if errs.is_empty() {
            return;
        }
        if branch_fits(b, v) {
            if fitting.as_ref().is_none_or(|f| errs.len() < f.len()) {
                fitting = Some(errs);
            }
        } else if let Some(first) = errs.into_iter().next()
            && !first_messages.contains(&first.message)
        {
            first_messages.push(first.message);
        }
    }
    match fitting {
        Some(errs) => errors.extend(errs),
        None if !first_messages.is_empty() => push(errors, path, first_messages.join(" or ")),
        None => {} // no non-null branch at all (only `null`, already allowed): accept.
    }
}

fn check_tagged(s: &Value, tag: &str, v: &Value, path: &str, errors: &mut Vec<ValidationEntry>) {
    let Some(obj) = v.as_object() else {
        push(
            errors,
            path,
            "Input should be a valid dictionary or object to extract fields from",
        );
        return;
    };
    let Some(found) = obj.get(tag) else {
        push(errors, &join(path, tag), "Field required");
        return;
    };
    let branches = schema::variants(s).unwrap_or_default();
    fn tag_of<'s>(b: &'s Value, tag: &str) -> Vec<&'s Value> {
        b.get("properties")
            .and_then(|p| p.get(tag))
            .and_then(schema::literal_values)
            .unwrap_or_default()
    }
    if let Some(b) = branches.iter().find(|b| tag_of(b, tag).contains(&found)) {
        let label = found
            .as_str()
            .map_or_else(|| found.to_string(), str::to_owned);
        check(b, v, &join(path, label), errors);
        return;
    }
    let expected: Vec<String> = branches
        .iter()
        .flat_map(|b| tag_of(b, tag))
        .map(py_repr)
        .collect();
    if expected.is_empty() {
        return; // branches we cannot read: accept.
    }
    let shown = found
        .as_str()
        .map_or_else(|| found.to_string(), str::to_owned);
    push(
        errors,
        path,
        format!(
            "Input tag '{shown}' found using '{tag}' does not match any of the expected tags: {}",
            expected.join(", ")
        ),
    );
}
