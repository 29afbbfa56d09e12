//! JSON values to Rhai values and back (`rust-design.md` §1.5).
//!
//! - `null` is `()`, objects are maps, arrays are arrays, strings, booleans as they are.
//! - Integers that fit an `i64` stay integers; floats stay floats, so `1.0` comes back as
//!   `1.0` and `1` as `1`. An integer above `i64::MAX` (never seen from TrueNAS) becomes a float.
//! - Rhai maps are sorted by key, so key order is not kept inside scripts.
//! - Going back, characters become one-character strings and blobs arrays of bytes; function
//!   pointers, NaN and infinities, timestamps and handles cannot be JSON and are refused.

use rhai::{Array, Blob, Dynamic, FnPtr, INT, ImmutableString, Map};
use serde_json::{Number, Value};

/// A Rhai value that cannot be turned into JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} cannot be sent as JSON{at}", at = if path.is_empty() { String::new() } else { format!(" (at {path})") })]
pub struct NotJson {
    /// What was found, e.g. "a function pointer".
    pub what: String,
    /// Where in the value, e.g. `[1].name`; empty at the top.
    pub path: String,
}

/// Turn a JSON value into a Rhai value.
pub fn to_dynamic(value: &Value) -> Dynamic {
    match value {
        Value::Null => Dynamic::UNIT,
        Value::Bool(b) => Dynamic::from_bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => Dynamic::from_int(i as INT),
            None => Dynamic::from_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => Dynamic::from(ImmutableString::from(s.as_str())),
        Value::Array(items) => Dynamic::from_array(items.iter().map(to_dynamic).collect()),
        Value::Object(m) => {
            let mut map = Map::new();
            for (k, v) in m {
                map.insert(k.as_str().into(), to_dynamic(v));
            }
            Dynamic::from_map(map)
        }
    }
}

/// Turn a Rhai value into JSON.
pub fn from_dynamic(value: &Dynamic) -> Result<Value, NotJson> {
    convert(value, &mut String::new())
}

fn convert(value: &Dynamic, path: &mut String) -> Result<Value, NotJson> {
    if value.is_unit() {
        return Ok(Value::Null);
    }
    if let Ok(b) = value.as_bool() {
        return Ok(Value::Bool(b));
    }
    if let Ok(i) = value.as_int() {
        return Ok(Value::Number(i.into()));
    }
    if let Ok(f) = value.as_float() {
        return Number::from_f64(f)
            .map(Value::Number)
            .ok_or_else(|| NotJson {
                what: format!("the number {f}"),
                path: path.clone(),
            });
    }
    if let Ok(c) = value.as_char() {
        return Ok(Value::String(c.to_string()));
    }
    if value.is_string() {
        let s = value.read_lock::<ImmutableString>();
        return Ok(Value::String(
            s.as_deref().map(|s| s.to_string()).unwrap_or_default(),
        ));
    }
    if value.is_array() {
        let Some(items) = value.read_lock::<Array>() else {
            return Err(locked(path));
        };
        let mut out = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let len = path.len();
            path.push_str(&format!("[{i}]"));
            out.push(convert(item, path)?);
            path.truncate(len);
        }
        return Ok(Value::Array(out));
    }
    if value.is_blob() {
        let Some(bytes) = value.read_lock::<Blob>() else {
            return Err(locked(path));
        };
        return Ok(Value::Array(
            bytes.iter().map(|b| Value::from(*b)).collect(),
        ));
    }
    if value.is_map() {
        let Some(map) = value.read_lock::<Map>() else {
            return Err(locked(path));
        };
        let mut out = serde_json::Map::with_capacity(map.len());
        for (k, v) in map.iter() {
            let len = path.len();
            if path.is_empty() {
                path.push_str(k);
            } else {
                path.push('.');
                path.push_str(k);
            }
            out.insert(k.to_string(), convert(v, path)?);
            path.truncate(len);
        }
        return Ok(Value::Object(out));
    }
    let what = if value.is::<FnPtr>() {
        "a function pointer".to_owned()
    } else {
        format!("a value of type {}", value.type_name())
    };
    Err(NotJson {
        what,
        path: path.clone(),
    })
}

fn locked(path: &str) -> NotJson {
    NotJson {
        what: "a value that is being changed".into(),
        path: path.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn json_round_trips() {
        let v = json!({
            "null": null, "t": true, "i": -42, "big": 9_007_199_254_740_993_i64, "f": 1.0, "g": 0.25,
            "s": "x\u{e9}", "a": [1, [2, {"b": null}]], "date": {"$date": 1_700_000_000_000_i64}, "empty": {}
        });
        let d = to_dynamic(&v);
        assert_eq!(from_dynamic(&d).unwrap(), v);
    }

    #[test]
    fn null_is_unit_and_floats_stay_floats() {
        assert!(to_dynamic(&Value::Null).is_unit());
        assert!(to_dynamic(&json!(1.0)).is_float());
        assert!(to_dynamic(&json!(1)).is_int());
        assert_eq!(
            from_dynamic(&Dynamic::from_float(1.0)).unwrap().to_string(),
            "1.0"
        );
    }

    #[test]
    fn non_json_values_are_refused_with_a_path() {
        let mut m = Map::new();
        m.insert("cb".into(), Dynamic::from(FnPtr::new("f").unwrap()));
        let arr = Dynamic::from_array(vec![Dynamic::UNIT, Dynamic::from_map(m)]);
        let e = from_dynamic(&arr).unwrap_err();
        assert_eq!(
            e.to_string(),
            "a function pointer cannot be sent as JSON (at [1].cb)"
        );
        let e = from_dynamic(&Dynamic::from_float(f64::NAN)).unwrap_err();
        assert_eq!(e.to_string(), "the number NaN cannot be sent as JSON");
    }

    #[test]
    fn chars_and_blobs_become_strings_and_arrays() {
        assert_eq!(from_dynamic(&Dynamic::from_char('x')).unwrap(), json!("x"));
        assert_eq!(
            from_dynamic(&Dynamic::from_blob(vec![1, 2])).unwrap(),
            json!([1, 2])
        );
    }
}
