//! The form that is sent and compared: JSON with every literal `$` written `$$`, because the
//! server runs docker compose, which interpolates again, on what it stores.

use serde_json::{Value, json};

/// The message limit of an authenticated connection, in characters (docs/apps.md §1.10).
pub const MESSAGE_LIMIT: usize = 65_536;

/// Write every literal `$` of every string value as `$$` (keys are not interpolated by
/// compose and stay as they are).
pub fn escape_dollars(v: &mut Value) {
    match v {
        Value::String(s) if s.contains('$') => *s = s.replace('$', "$$"),
        Value::Array(items) => items.iter_mut().for_each(escape_dollars),
        Value::Object(m) => m.values_mut().for_each(escape_dollars),
        _ => {}
    }
}

/// Equal as compose documents: mappings regardless of key order, numbers by value
/// (`1` equals `1.0`, as after a YAML round trip on the server).
pub fn semantic_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => {
            x == y || matches!((x.as_f64(), y.as_f64()), (Some(p), Some(q)) if p == q)
        }
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| semantic_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| semantic_eq(v, w)))
        }
        _ => a == b,
    }
}

/// The `app.create` parameters for a custom app.
pub fn create_params(app: &str, doc: &Value) -> Value {
    json!({"app_name": app, "custom_app": true, "custom_compose_config": doc})
}

/// Characters of the whole `app.create` request as sent (with a generous id), which must stay
/// within [`MESSAGE_LIMIT`].
pub fn request_chars(app: &str, doc: &Value) -> usize {
    let req = json!({
        "jsonrpc": "2.0",
        "id": "00000000-0000-0000-0000-000000000000",
        "method": "app.create",
        "params": [create_params(app, doc)],
    });
    req.to_string().chars().count()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dollars_are_escaped_in_values_only() {
        let mut v = json!({"a$": "x$y", "l": ["$$", 1], "n": {"k": "${A}"}});
        escape_dollars(&mut v);
        assert_eq!(
            v,
            json!({"a$": "x$$y", "l": ["$$$$", 1], "n": {"k": "$${A}"}})
        );
    }

    #[test]
    fn semantic_equality() {
        assert!(semantic_eq(
            &json!({"a": 1, "b": [1.0]}),
            &json!({"b": [1], "a": 1.0})
        ));
        assert!(!semantic_eq(&json!({"a": "1"}), &json!({"a": 1})));
        assert!(!semantic_eq(&json!([1, 2]), &json!([2, 1])));
        assert!(!semantic_eq(&json!({"a": 1}), &json!({"a": 1, "b": null})));
    }

    #[test]
    fn size_counts_characters() {
        let small = request_chars("a", &json!({"services": {}}));
        let wide = request_chars("a", &json!({"services": {}, "x": "ééé"}));
        assert_eq!(wide - small, r#","x":"ééé""#.chars().count());
    }
}
