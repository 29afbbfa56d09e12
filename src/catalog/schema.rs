//! Reading TrueNAS's argument schemas: the few helpers that both the docs and the validator use,
//! so that "what is this field's type / is it required / what are its properties" has one answer.
//!
//! The schemas are pydantic JSON schemas with TrueNAS's changes (see `docs/middleware.md` §6.1):
//! `$ref`s are inlined, every property carries `_name_` and `_required_`, objects carry
//! `_attrs_order_`, and array `items` is wrapped in a list (`"items": [{…}]`, or `[]` for "any").
//! Everything here is lenient: a missing or odd key reads as "no constraint".

use serde_json::Value;

/// The JSON types a schema declares, from `"type": "x"` or `"type": ["x", "null"]`.
/// TrueNAS's legacy schemas once say `"float"`; it is read as `"number"`.
pub(crate) fn declared_types(s: &Value) -> Vec<&str> {
    fn norm(t: &str) -> &str {
        if t == "float" { "number" } else { t }
    }
    match s.get("type") {
        Some(Value::String(t)) => vec![norm(t)],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).map(norm).collect(),
        _ => Vec::new(),
    }
}

/// The branches of an `anyOf` or `oneOf`, if any.
pub(crate) fn variants(s: &Value) -> Option<&[Value]> {
    s.get("anyOf")
        .or_else(|| s.get("oneOf"))
        .and_then(Value::as_array)
        .map(Vec::as_slice)
}

/// Whether a branch is exactly `{"type": "null"}` (the `None` half of an `Optional`).
pub(crate) fn is_null_branch(s: &Value) -> bool {
    declared_types(s) == ["null"] && s.get("enum").is_none() && s.get("const").is_none()
}

/// The branches that are not the null branch.
pub(crate) fn non_null_variants(s: &Value) -> Vec<&Value> {
    variants(s)
        .unwrap_or_default()
        .iter()
        .filter(|b| !is_null_branch(b))
        .collect()
}

/// The literal values a schema allows (`const`, else `enum`), if it restricts them.
pub(crate) fn literal_values(s: &Value) -> Option<Vec<&Value>> {
    if let Some(c) = s.get("const") {
        return Some(vec![c]);
    }
    s.get("enum")
        .and_then(Value::as_array)
        .map(|vs| vs.iter().collect())
}

/// The schema of an array's items: TrueNAS wraps it in a list; `[]` or `[{}]` mean "anything".
/// A plain standard `"items": {…}` is read too.
pub(crate) fn items(s: &Value) -> Option<&Value> {
    let it = match s.get("items")? {
        Value::Array(list) => list.first()?,
        other => other,
    };
    match it {
        Value::Object(m) if m.is_empty() => None,
        Value::Object(_) => Some(it),
        _ => None,
    }
}

/// The properties of an object schema, in `_attrs_order_` order (then any property that list
/// misses, in document order).
pub(crate) fn properties(s: &Value) -> Vec<(&str, &Value)> {
    let Some(props) = s.get("properties").and_then(Value::as_object) else {
        return Vec::new();
    };
    let mut out: Vec<(&str, &Value)> = Vec::with_capacity(props.len());
    if let Some(order) = s.get("_attrs_order_").and_then(Value::as_array) {
        for name in order.iter().filter_map(Value::as_str) {
            if let Some((k, v)) = props.get_key_value(name) {
                out.push((k.as_str(), v));
            }
        }
    }
    for (k, v) in props {
        if !out.iter().any(|(seen, _)| *seen == k.as_str()) {
            out.push((k.as_str(), v));
        }
    }
    out
}

/// Whether property `name` of object schema `parent` is required.
///
/// - `Some(true)`: listed in the parent's standard `required` list;
/// - `Some(false)`: not marked required at all;
/// - `None`: marked `_required_: true` but the parent has no `required` list. Pydantic always
///   writes that list when a field is required, so this is a legacy (pre-pydantic) schema, whose
///   export also marks fields of update (PATCH) schemas such as `ssh.update` that the server does
///   not require. The docs show these as required (what the schema says); the validator does not
///   enforce them.
pub(crate) fn property_required(parent: &Value, name: &str, prop: &Value) -> Option<bool> {
    if let Some(list) = parent.get("required").and_then(Value::as_array) {
        return Some(list.iter().any(|n| n.as_str() == Some(name)));
    }
    match prop.get("_required_").and_then(Value::as_bool) {
        Some(true) => None,
        _ => Some(false),
    }
}

/// Whether a positional argument is required (`_required_: true`; missing means optional, so that
/// a schema of another shape never produces a false "Field required").
pub(crate) fn is_required_arg(s: &Value) -> bool {
    s.get("_required_").and_then(Value::as_bool) == Some(true)
}

/// The name of positional argument `index`: `_name_`, else `title`, else `arg<index>`.
pub(crate) fn arg_name(s: &Value, index: usize) -> String {
    s.get("_name_")
        .or_else(|| s.get("title"))
        .and_then(Value::as_str)
        .map_or_else(|| format!("arg{index}"), str::to_owned)
}

/// The object schema to describe for a value: the schema itself if it has properties, else the
/// single non-null branch of an `Optional[Model]`.
pub(crate) fn object_with_properties(s: &Value) -> Option<&Value> {
    if s.get("properties").is_some_and(Value::is_object) {
        return Some(s);
    }
    match non_null_variants(s).as_slice() {
        [only] if only.get("properties").is_some_and(Value::is_object) => Some(only),
        _ => None,
    }
}

/// Python's `repr` of a JSON value, as pydantic writes literals in messages (`'A'`, `1`, `True`,
/// `None`).
pub(crate) fn py_repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("'{s}'"),
        Value::Bool(true) => "True".into(),
        Value::Bool(false) => "False".into(),
        Value::Null => "None".into(),
        other => other.to_string(),
    }
}

/// Pydantic's way to list alternatives: `'A'`, `'A' or 'B'`, `'A', 'B' or 'C'`.
pub(crate) fn or_list(items: &[String]) -> String {
    match items {
        [] => String::new(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} or {last}", init.join(", ")),
    }
}

/// The JSON-schema type name of a value (`integer` for whole numbers).
pub(crate) fn kind_of(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Literal lists longer than this are not spelled out in a type name (the docs list them).
const MAX_INLINE_LITERALS: usize = 6;

/// A short human type name: `string`, `integer | null`, `list[object]`, `"pong"`,
/// `"A" | "B"`, `any`.
pub(crate) fn type_name(s: &Value) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut push = |p: String| {
        if !parts.contains(&p) {
            parts.push(p);
        }
    };
    let literals = literal_values(s);
    if let Some(lits) = literals.as_ref().filter(|l| l.len() <= MAX_INLINE_LITERALS) {
        lits.iter().for_each(|l| push(l.to_string()));
    } else if let Some(branches) = variants(s) {
        branches.iter().for_each(|b| push(type_name(b)));
    } else {
        for t in declared_types(s) {
            push(match t {
                "array" => match items(s) {
                    Some(it) => format!("list[{}]", type_name(it)),
                    None => "list".into(),
                },
                other => other.to_owned(),
            });
        }
        // A long untyped literal list: name the kinds of its values.
        if let Some(lits) = literals.filter(|_| declared_types(s).is_empty()) {
            lits.iter().for_each(|l| push(kind_of(l).into()));
        }
    }
    if s.get("nullable").and_then(Value::as_bool) == Some(true) {
        push("null".into());
    }
    if parts.is_empty() {
        return "any".into();
    }
    // "null" reads best last: `string | null`.
    if let Some(i) = parts.iter().position(|p| p == "null")
        && parts.len() > 1
    {
        let n = parts.remove(i);
        parts.push(n);
    }
    parts.join(" | ")
}

/// Human notes on a schema's constraints, for the docs: pattern, lengths, bounds, long literal
/// lists, format. Constraints of the only non-null branch of an `Optional` are included.
pub(crate) fn constraints(s: &Value) -> Vec<String> {
    let mut out = Vec::new();
    collect_constraints(s, &mut out);
    if let [only] = non_null_variants(s).as_slice() {
        collect_constraints(only, &mut out);
    }
    out
}

fn collect_constraints(s: &Value, out: &mut Vec<String>) {
    let num = |k: &str| s.get(k).filter(|v| v.is_number()).map(Value::to_string);
    if let Some(p) = s.get("pattern").and_then(Value::as_str) {
        out.push(format!("pattern '{p}'"));
    }
    if let Some(n) = num("minLength") {
        out.push(format!("min length {n}"));
    }
    if let Some(n) = num("maxLength") {
        out.push(format!("max length {n}"));
    }
    for (key, op) in [
        ("minimum", ">="),
        ("exclusiveMinimum", ">"),
        ("maximum", "<="),
        ("exclusiveMaximum", "<"),
    ] {
        if let Some(n) = num(key) {
            out.push(format!("{op} {n}"));
        }
    }
    if let Some(n) = num("minItems") {
        out.push(format!("min items {n}"));
    }
    if let Some(n) = num("maxItems") {
        out.push(format!("max items {n}"));
    }
    if let Some(lits) = literal_values(s)
        && lits.len() > MAX_INLINE_LITERALS
    {
        let shown: Vec<String> = lits.iter().map(|l| l.to_string()).collect();
        out.push(format!("one of {}", shown.join(", ")));
    }
    if let Some(f) = s.get("format").and_then(Value::as_str) {
        out.push(format!("format {f}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn type_names() {
        assert_eq!(
            type_name(&json!({"const": "pong", "type": "string"})),
            "\"pong\""
        );
        assert_eq!(
            type_name(&json!({"type": ["string", "null"]})),
            "string | null"
        );
        assert_eq!(
            type_name(&json!({"anyOf": [{"type": "null"}, {"type": "integer"}]})),
            "integer | null"
        );
        assert_eq!(
            type_name(&json!({"type": "array", "items": [{"type": "object"}]})),
            "list[object]"
        );
        assert_eq!(type_name(&json!({"type": "array", "items": []})), "list");
        assert_eq!(type_name(&json!({})), "any");
        assert_eq!(type_name(&json!({"type": "float"})), "number");
        assert_eq!(
            type_name(&json!({"type": "string", "nullable": true})),
            "string | null"
        );
        assert_eq!(
            type_name(&json!({"type": "string", "enum": ["A", "B"]})),
            "\"A\" | \"B\""
        );
        assert_eq!(
            type_name(&json!({"type": "string", "enum": ["1", "2", "3", "4", "5", "6", "7"]})),
            "string"
        );
    }

    #[test]
    fn or_lists() {
        let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
        assert_eq!(or_list(&s(&["'A'"])), "'A'");
        assert_eq!(or_list(&s(&["'A'", "'B'"])), "'A' or 'B'");
        assert_eq!(or_list(&s(&["'A'", "'B'", "'C'"])), "'A', 'B' or 'C'");
    }

    #[test]
    fn properties_follow_attrs_order() {
        let s = json!({"properties": {"b": {}, "a": {}, "c": {}}, "_attrs_order_": ["a", "b"]});
        let names: Vec<&str> = properties(&s).into_iter().map(|(k, _)| k).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }
}
