//! The JSON-RPC 2.0 framing of `/api/current` (`docs/middleware.md` §3.1, §3.2): parse errors,
//! envelope checks, and reply building. Method execution lives in `dispatch.rs`, so a legacy
//! DDP framing can reuse it.

use serde_json::Value;

use crate::protocol::{ErrorObject, Response, codes, redact};

/// What to do with one parsed text frame.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Inbound {
    /// Execute `method`; reply only when `id` is `Some` (the key was present, even if null).
    Call {
        id: Option<Value>,
        method: String,
        params: Vec<Value>,
    },
    /// Answer with this error and do nothing else.
    Reject(Box<Response>),
    /// Drop silently (an invalid envelope without `id`).
    Ignore,
}

fn error(id: Value, code: i64, message: impl Into<String>) -> Response {
    Response::err(
        id,
        ErrorObject {
            code,
            message: message.into(),
            data: None,
        },
    )
}

/// Classify one text frame; `parsed` is its JSON parse result.
pub(crate) fn classify(text: &str, parsed: Result<Value, serde_json::Error>) -> Inbound {
    let value = match parsed {
        Ok(v) => v,
        Err(e) => {
            let msg = python_json_error(text, &e);
            return Inbound::Reject(Box::new(error(Value::Null, codes::PARSE_ERROR, msg)));
        }
    };
    let Value::Object(mut m) = value else {
        let msg = if value.is_array() {
            "Batch messages are not supported at this time"
        } else {
            "Invalid Message Format"
        };
        return Inbound::Reject(Box::new(error(Value::Null, codes::PARSE_ERROR, msg)));
    };
    let id = m.remove("id");
    let reject = |id: Option<Value>, msg: &str| match id {
        Some(id) => Inbound::Reject(Box::new(error(id, codes::INVALID_REQUEST, msg))),
        None => Inbound::Ignore,
    };
    match m.get("jsonrpc") {
        None => return reject(id, "Missing 'jsonrpc' member"),
        Some(Value::String(s)) if s == "2.0" => {}
        Some(_) => {
            return reject(
                id,
                "'jsonrpc' member must be of type string and must be exactly '2.0'",
            );
        }
    }
    if let Some(bad) = &id
        && !(bad.is_null() || bad.is_string() || bad.is_number())
    {
        // Guess: the reply to an invalid id carries id null.
        return reject(
            Some(Value::Null),
            "'id' member must be of type null, string or number",
        );
    }
    let method = match m.get("method") {
        None => return reject(id, "Missing 'method' member"),
        Some(Value::String(s)) => s.clone(),
        Some(_) => return reject(id, "'method' member must be of type string"),
    };
    let params = match m.remove("params") {
        None => Vec::new(),
        Some(Value::Array(a)) => a,
        Some(_) => return reject(id, "'params' member must be of type array"),
    };
    Inbound::Call { id, method, params }
}

/// Python's `json` error text, approximated from serde_json's error (same line/column, message
/// picked by error kind, character offset computed from them).
pub(crate) fn python_json_error(text: &str, e: &serde_json::Error) -> String {
    let (line, col) = (e.line().max(1), e.column().max(1));
    let char_offset: usize = text
        .split('\n')
        .take(line - 1)
        .map(|l| l.chars().count() + 1)
        .sum::<usize>()
        + col.saturating_sub(1);
    let s = e.to_string();
    let what = if s.starts_with("trailing characters") {
        "Extra data"
    } else if s.starts_with("key must be a string") {
        "Expecting property name enclosed in double quotes"
    } else if s.starts_with("EOF while parsing a string") {
        "Unterminated string starting at"
    } else if s.starts_with("expected `,` or `}`") {
        "Expecting ',' delimiter"
    } else if s.starts_with("expected `:`") {
        "Expecting ':' delimiter"
    } else {
        "Expecting value"
    };
    let char_offset = if text.is_empty() { 0 } else { char_offset };
    let (line, col) = if text.is_empty() { (1, 1) } else { (line, col) };
    format!("{what}: line {line} column {col} (char {char_offset})")
}

/// A reply frame: the wire text, and its transcript form with the result redacted.
pub(crate) fn reply_frames(resp: &Response, method: &str) -> (String, String) {
    let wire = resp.to_text();
    let log = match &resp.outcome {
        Ok(v) => {
            let mut v = v.clone();
            redact::redact_result(method, &mut v);
            Response::ok(resp.id.clone(), v).to_text()
        }
        Err(_) => wire.clone(),
    };
    (wire, log)
}

/// -32000 "Maximum number of concurrent calls (20) has exceeded" (§3.6).
pub(crate) fn too_many_calls(id: Value) -> Response {
    error(
        id,
        codes::TOO_MANY_CONCURRENT_CALLS,
        "Maximum number of concurrent calls (20) has exceeded",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn c(text: &str) -> Inbound {
        classify(text, serde_json::from_str(text))
    }

    fn rejected(i: Inbound) -> (Value, i64, String) {
        match i {
            Inbound::Reject(r) => {
                let e = r.outcome.unwrap_err();
                (r.id, e.code, e.message)
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelope_errors() {
        assert_eq!(
            rejected(c("")),
            (
                Value::Null,
                -32700,
                "Expecting value: line 1 column 1 (char 0)".into()
            )
        );
        assert_eq!(
            rejected(c("[1]")).2,
            "Batch messages are not supported at this time"
        );
        assert_eq!(rejected(c("5")).2, "Invalid Message Format");
        assert_eq!(
            rejected(c(r#"{"id":1,"method":"x"}"#)),
            (json!(1), -32600, "Missing 'jsonrpc' member".into())
        );
        assert_eq!(c(r#"{"method":"x"}"#), Inbound::Ignore);
        assert_eq!(
            rejected(c(r#"{"jsonrpc":"2.0","id":"a","method":"x","params":{}}"#)).2,
            "'params' member must be of type array"
        );
        assert_eq!(
            rejected(c(r#"{"jsonrpc":"2.0","id":[1],"method":"x"}"#)).0,
            Value::Null
        );
        assert_eq!(
            c(r#"{"jsonrpc":"2.0","id":null,"method":"core.ping"}"#),
            Inbound::Call {
                id: Some(Value::Null),
                method: "core.ping".into(),
                params: vec![]
            }
        );
    }
}
