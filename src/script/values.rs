//! JSON values to Rhai values and back.
//!
//! - `null` is `()`, objects are maps, arrays are arrays, strings, booleans as they are.
//! - Integers that fit an `i64` stay integers; floats stay floats, so `1.0` comes back as
//!   `1.0` and `1` as `1`. An integer above `i64::MAX` (never seen from TrueNAS) becomes a float.
//! - Rhai maps are sorted by key, so key order is not kept inside scripts.
//! - Going back, characters become one-character strings and blobs arrays of bytes; function
//!   pointers, NaN and infinities, timestamps and handles cannot be JSON and are refused.
//! - Nesting is bounded: a value nested deeper than [`MAX_DEPTH`] levels is refused (by the
//!   conversion and by [`display`], which `print`, `to_string` and the REPL use) instead of
//!   overflowing the stack. JSON read by `serde_json` has the same bound.

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

/// How deeply arrays and maps may nest in a value that is converted or printed: the depth
/// `serde_json` accepts when it reads JSON back.
pub const MAX_DEPTH: usize = 128;

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
    convert(value, &mut String::new(), 0)
}

/// The error for a value nested deeper than [`MAX_DEPTH`], at `path`.
fn too_deep(path: &str) -> NotJson {
    NotJson {
        what: format!("a value nested deeper than {MAX_DEPTH} levels"),
        path: shorten(path),
    }
}

/// A path of [`MAX_DEPTH`] steps is long: keep its start and its end.
fn shorten(path: &str) -> String {
    const KEEP: usize = 40;
    let chars: Vec<char> = path.chars().collect();
    if chars.len() <= 2 * KEEP {
        return path.to_owned();
    }
    let head: String = chars[..KEEP].iter().collect();
    let tail: String = chars[chars.len() - KEEP..].iter().collect();
    format!("{head}…{tail}")
}

fn convert(value: &Dynamic, path: &mut String, depth: usize) -> Result<Value, NotJson> {
    if (value.is_array() || value.is_map()) && depth >= MAX_DEPTH {
        return Err(too_deep(path));
    }
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
            out.push(convert(item, path, depth + 1)?);
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
            out.insert(k.to_string(), convert(v, path, depth + 1)?);
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

/// A value too deeply nested to print.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the value is nested deeper than {MAX_DEPTH} levels and cannot be printed")]
pub struct TooDeep;

/// A value as Rhai prints it (`[1, "a", #{"k": ()}]`), with arrays and maps nested at most
/// [`MAX_DEPTH`] levels: Rhai's own printing recurses without a bound.
pub fn display(value: &Dynamic) -> Result<String, TooDeep> {
    let mut out = String::new();
    write_value(value, &mut out, 0)?;
    Ok(out)
}

/// [`display`] for an array (Rhai's `to_string` of an array).
pub fn display_array(items: &[Dynamic]) -> Result<String, TooDeep> {
    let mut out = String::new();
    write_array(items, &mut out, 0)?;
    Ok(out)
}

/// [`display`] for a map (Rhai's `to_string` of a map).
pub fn display_map(map: &Map) -> Result<String, TooDeep> {
    let mut out = String::new();
    write_map(map, &mut out, 0)?;
    Ok(out)
}

fn write_value(value: &Dynamic, out: &mut String, depth: usize) -> Result<(), TooDeep> {
    if value.is_array() {
        match value.read_lock::<Array>() {
            Some(items) => write_array(&items, out, depth),
            None => {
                out.push_str("[<locked>]");
                Ok(())
            }
        }
    } else if value.is_map() {
        match value.read_lock::<Map>() {
            Some(map) => write_map(&map, out, depth),
            None => {
                out.push_str("#{<locked>}");
                Ok(())
            }
        }
    } else {
        if depth == 0 {
            out.push_str(&value.to_string());
        } else {
            out.push_str(&format!("{value:?}"));
        }
        Ok(())
    }
}

fn write_array(items: &[Dynamic], out: &mut String, depth: usize) -> Result<(), TooDeep> {
    if depth >= MAX_DEPTH {
        return Err(TooDeep);
    }
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        write_value(item, out, depth + 1)?;
    }
    out.push(']');
    Ok(())
}

fn write_map(map: &Map, out: &mut String, depth: usize) -> Result<(), TooDeep> {
    if depth >= MAX_DEPTH {
        return Err(TooDeep);
    }
    out.push_str("#{");
    for (i, (k, v)) in map.iter().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        out.push_str(&format!("{:?}: ", k.as_str()));
        write_value(v, out, depth + 1)?;
    }
    out.push('}');
    Ok(())
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

    /// `[[[…]]]` nested `depth` levels.
    fn nested(depth: usize) -> Dynamic {
        let mut v = Dynamic::from_array(Array::new());
        for _ in 0..depth {
            v = Dynamic::from_array(vec![v]);
        }
        v
    }

    #[test]
    fn deep_values_are_refused_not_overflowed() {
        // Deep enough to overflow a thread's stack when converted or printed recursively.
        let deep = nested(5000);
        let e = from_dynamic(&deep).unwrap_err();
        assert!(
            e.to_string().starts_with(
                "a value nested deeper than 128 levels cannot be sent as JSON (at [0][0]"
            ),
            "{e}"
        );
        assert!(e.path.contains('…'), "{e}");
        assert_eq!(display(&deep), Err(TooDeep));
        let mut m = Map::new();
        m.insert("k".into(), deep);
        assert!(
            from_dynamic(&Dynamic::from_map(m))
                .unwrap_err()
                .path
                .starts_with("k[0]")
        );
        // Up to the bound is fine both ways.
        let ok = nested(MAX_DEPTH - 1);
        let json = from_dynamic(&ok).unwrap();
        assert_eq!(from_dynamic(&to_dynamic(&json)).unwrap(), json);
        assert!(display(&ok).unwrap().starts_with("[[["));
    }

    #[test]
    fn display_looks_like_rhai() {
        let mut m = Map::new();
        m.insert("b".into(), Dynamic::from("x"));
        m.insert("a".into(), Dynamic::UNIT);
        let v = Dynamic::from_array(vec![
            Dynamic::from_int(1),
            Dynamic::from("s"),
            Dynamic::from_map(m),
            Dynamic::from_float(1.5),
            Dynamic::from_bool(true),
        ]);
        assert_eq!(
            display(&v).unwrap(),
            r#"[1, "s", #{"a": (), "b": "x"}, 1.5, true]"#
        );
        assert_eq!(display(&Dynamic::from("top")).unwrap(), "top");
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
