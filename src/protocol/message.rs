//! JSON-RPC 2.0 envelopes as TrueNAS uses them (`docs/middleware.md` §3.1, §3.2, §5.2, §5.3).

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// JSON-RPC error codes the middleware sends (`docs/middleware.md` §3.2). No others exist: a client
/// must not invent codes, and the mock must not send any other.
pub mod codes {
    /// Unparseable JSON, a batch array, or a non-object message. Always `id: null`.
    pub const PARSE_ERROR: i64 = -32700;
    /// An invalid envelope (only answered when the message had an `id`).
    pub const INVALID_REQUEST: i64 = -32600;
    /// "Method does not exist" (no `data`).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// "Invalid params": validation errors, with `[attribute, message, errno]` triples in `extra`.
    pub const INVALID_PARAMS: i64 = -32602;
    /// "Failed to JSON serialize server message".
    pub const INTERNAL_ERROR: i64 = -32603;
    /// "Maximum number of concurrent calls (20) has exceeded" (no `data`).
    pub const TOO_MANY_CONCURRENT_CALLS: i64 = -32000;
    /// "Method call error": every other failure; the errno is in `data.error`.
    pub const CALL_ERROR: i64 = -32001;
}

/// A request: `{"jsonrpc":"2.0","id":…,"method":…,"params":[…]}`. Params are always positional.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Request {
    /// Always `"2.0"`.
    pub jsonrpc: String,
    /// The id echoed in the reply. Absent for a notification (which gets no reply at all).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// `service.method`.
    pub method: String,
    /// Positional arguments.
    #[serde(default)]
    pub params: Vec<Value>,
}

impl Request {
    /// A request with the given id.
    pub fn new(id: impl Into<Value>, method: impl Into<String>, params: Vec<Value>) -> Self {
        Request {
            jsonrpc: "2.0".into(),
            id: Some(id.into()),
            method: method.into(),
            params,
        }
    }

    /// The compact JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        serde_json::to_string(self).expect("a Request always serializes")
    }
}

/// TrueNAS `error.data` (`docs/middleware.md` §3.2): errno, its name, a human reason (`[ERRNAME] msg`),
/// the server traceback and validation triples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ErrorData {
    /// errno.
    #[serde(default)]
    pub error: Option<i64>,
    /// errno name, e.g. `EINVAL`, `ENOTAUTHENTICATED`.
    #[serde(default)]
    pub errname: Option<String>,
    /// Human string; CallError gives `"[ERRNAME] msg"`, validation one line per error.
    #[serde(default)]
    pub reason: Option<String>,
    /// `{"class","formatted","repr"(,"frames")}` or null. The server always sends the key.
    #[serde(default)]
    pub trace: Option<Value>,
    /// Validation triples, or other detail, or null. The server always sends the key.
    #[serde(default)]
    pub extra: Option<Value>,
    /// Anything else the server adds (`py_exception`), kept so nothing is lost.
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl ErrorData {
    /// The validation entries in `extra`, when it holds `[attribute, message, errno]` triples.
    pub fn validation_entries(&self) -> Vec<ValidationEntry> {
        ValidationEntry::list_from(self.extra.as_ref())
    }
}

/// The JSON-RPC error object: `{"code","message","data"?}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ErrorObject {
    /// One of [`codes`].
    pub code: i64,
    /// The JSON-RPC message, e.g. "Method call error".
    pub message: String,
    /// TrueNAS detail; absent for -32601 and -32000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<ErrorData>,
}

/// One `[attribute, message, errno]` validation triple. The attribute is null for errors that
/// concern the whole call (rendered as "ALL" by the official client).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ValidationEntry {
    /// Dotted path such as `user_update.password`, or `None`.
    pub attribute: Option<String>,
    /// The message, e.g. "Field required".
    pub message: String,
    /// Per-field errno (usually 22).
    pub errno: i64,
}

impl ValidationEntry {
    /// Parse a list of triples; entries of another shape are skipped.
    pub fn list_from(extra: Option<&Value>) -> Vec<ValidationEntry> {
        let Some(Value::Array(items)) = extra else {
            return Vec::new();
        };
        items
            .iter()
            .filter_map(|item| {
                let triple = item.as_array()?;
                if triple.len() != 3 {
                    return None;
                }
                Some(ValidationEntry {
                    attribute: triple[0].as_str().map(str::to_owned),
                    message: triple[1].as_str()?.to_owned(),
                    errno: triple[2].as_i64().unwrap_or(super::errno::EINVAL),
                })
            })
            .collect()
    }

    /// The triple as the server sends it.
    pub fn to_value(&self) -> Value {
        serde_json::json!([self.attribute, self.message, self.errno])
    }
}

/// A reply: `{"jsonrpc":"2.0","id":…,"result":…}` or `{…,"error":{…}}`.
#[derive(Debug, Clone, PartialEq)]
pub struct Response {
    /// The request id, echoed verbatim (null for -32700).
    pub id: Value,
    /// The result, or the error object.
    pub outcome: Result<Value, ErrorObject>,
}

impl Response {
    /// A success reply.
    pub fn ok(id: Value, result: Value) -> Self {
        Response {
            id,
            outcome: Ok(result),
        }
    }

    /// An error reply.
    pub fn err(id: Value, error: ErrorObject) -> Self {
        Response {
            id,
            outcome: Err(error),
        }
    }

    /// The reply as a JSON object.
    pub fn to_value(&self) -> Value {
        let mut m = Map::new();
        m.insert("jsonrpc".into(), "2.0".into());
        m.insert("id".into(), self.id.clone());
        match &self.outcome {
            Ok(v) => m.insert("result".into(), v.clone()),
            Err(e) => m.insert(
                "error".into(),
                serde_json::to_value(e).expect("error serializes"),
            ),
        };
        Value::Object(m)
    }

    /// The compact JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        self.to_value().to_string()
    }
}

/// `added`, `changed` or `removed` (lower case on the wire).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// A new item (or an event-source message).
    Added,
    /// A changed item; `fields` is the full item, not a diff.
    Changed,
    /// A removed item; only `id` is given.
    Removed,
}

impl EventKind {
    /// The wire spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Added => "added",
            EventKind::Changed => "changed",
            EventKind::Removed => "removed",
        }
    }
}

/// `collection_update` params (`docs/middleware.md` §5.2). `collection` is the exact subscribed string,
/// `name:{json}` arguments included.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CollectionUpdate {
    /// added / changed / removed.
    pub msg: EventKind,
    /// The event name exactly as subscribed.
    pub collection: String,
    /// The item id, when the emitter gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    /// The full item (added and changed only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fields: Option<Value>,
    /// Other keyword data, omitted when empty.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub extra: Option<Value>,
}

/// A server-to-client notification (no `id`).
#[derive(Debug, Clone, PartialEq)]
pub enum Notification {
    /// `collection_update`.
    CollectionUpdate(CollectionUpdate),
    /// `notify_unsubscribed` (`docs/middleware.md` §5.3): an event source ended, with an error on failure.
    NotifyUnsubscribed {
        /// The full subscribed name.
        collection: String,
        /// Set when the source failed or its arguments were invalid.
        error: Option<ErrorData>,
    },
    /// Any other method, kept as it came.
    Other {
        /// The method.
        method: String,
        /// The params.
        params: Value,
    },
}

impl Notification {
    /// The notification as a JSON object.
    pub fn to_value(&self) -> Value {
        let (method, params) = match self {
            Notification::CollectionUpdate(u) => (
                "collection_update",
                serde_json::to_value(u).expect("update serializes"),
            ),
            Notification::NotifyUnsubscribed { collection, error } => (
                "notify_unsubscribed",
                serde_json::json!({"collection": collection, "error": error}),
            ),
            Notification::Other { method, params } => (method.as_str(), params.clone()),
        };
        serde_json::json!({"jsonrpc": "2.0", "method": method, "params": params})
    }

    /// The compact JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        self.to_value().to_string()
    }
}

/// What a client can receive: a reply, a notification, or something it does not understand.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A reply to a request.
    Response(Response),
    /// A notification.
    Notification(Notification),
    /// Valid JSON of no known shape; kept for the transcript and logs.
    Unknown(Value),
}

impl Incoming {
    /// Classify one text frame. `Err` carries the JSON parser's message.
    pub fn parse(text: &str) -> Result<Incoming, serde_json::Error> {
        let value: Value = serde_json::from_str(text)?;
        Ok(Incoming::from_value(value))
    }

    /// Classify a parsed message.
    pub fn from_value(value: Value) -> Incoming {
        let Value::Object(mut m) = value else {
            return Incoming::Unknown(value);
        };
        if m.contains_key("id") && (m.contains_key("result") || m.contains_key("error")) {
            let id = m.remove("id").unwrap_or(Value::Null);
            if let Some(err) = m.remove("error") {
                return match serde_json::from_value::<ErrorObject>(err.clone()) {
                    Ok(e) => Incoming::Response(Response::err(id, e)),
                    Err(_) => {
                        m.insert("id".into(), id);
                        m.insert("error".into(), err);
                        Incoming::Unknown(Value::Object(m))
                    }
                };
            }
            let result = m.remove("result").unwrap_or(Value::Null);
            return Incoming::Response(Response::ok(id, result));
        }
        if !m.contains_key("id")
            && let Some(Value::String(method)) = m.get("method").cloned()
        {
            let params = m.remove("params").unwrap_or(Value::Null);
            let note = match method.as_str() {
                "collection_update" => serde_json::from_value(params.clone())
                    .map(Notification::CollectionUpdate)
                    .unwrap_or(Notification::Other { method, params }),
                "notify_unsubscribed" => {
                    let collection = params
                        .get("collection")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned();
                    let error = params
                        .get("error")
                        .filter(|e| !e.is_null())
                        .map(|e| serde_json::from_value(e.clone()).unwrap_or_default());
                    Notification::NotifyUnsubscribed { collection, error }
                }
                _ => Notification::Other { method, params },
            };
            return Incoming::Notification(note);
        }
        Incoming::Unknown(Value::Object(m))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn request_text_is_positional() {
        let r = Request::new(1, "core.ping", vec![]);
        assert_eq!(
            r.to_text(),
            r#"{"jsonrpc":"2.0","id":1,"method":"core.ping","params":[]}"#
        );
    }

    #[test]
    fn parses_error_reply_with_validation_triples() {
        let text = r#"{"jsonrpc":"2.0","id":7,"error":{"code":-32602,"message":"Invalid params","data":{"error":22,"errname":"EINVAL","reason":"[ENOENT] None: User 999 does not exist","trace":null,"extra":[[null,"User 999 does not exist",2]]}}}"#;
        let Incoming::Response(r) = Incoming::parse(text).unwrap() else {
            panic!()
        };
        assert_eq!(r.id, json!(7));
        let e = r.outcome.unwrap_err();
        assert_eq!(e.code, codes::INVALID_PARAMS);
        let entries = e.data.unwrap().validation_entries();
        assert_eq!(
            entries,
            vec![ValidationEntry {
                attribute: None,
                message: "User 999 does not exist".into(),
                errno: 2
            }]
        );
    }

    #[test]
    fn error_data_keeps_null_trace_and_extra_on_the_wire() {
        let e = ErrorObject {
            code: codes::CALL_ERROR,
            message: "Method call error".into(),
            data: Some(ErrorData {
                error: Some(207),
                errname: Some("ENOTAUTHENTICATED".into()),
                reason: Some("[ENOTAUTHENTICATED] Not authenticated".into()),
                ..Default::default()
            }),
        };
        let text = Response::err(json!(3), e).to_text();
        assert!(text.contains(r#""trace":null,"extra":null"#), "{text}");
    }

    #[test]
    fn classifies_notifications() {
        let cu = r#"{"jsonrpc":"2.0","method":"collection_update","params":{"msg":"removed","collection":"alert.list","id":"a1"}}"#;
        match Incoming::parse(cu).unwrap() {
            Incoming::Notification(Notification::CollectionUpdate(u)) => {
                assert_eq!(u.msg, EventKind::Removed);
                assert_eq!(u.fields, None);
            }
            other => panic!("{other:?}"),
        }
        let nu = r#"{"jsonrpc":"2.0","method":"notify_unsubscribed","params":{"collection":"x:{}","error":{"error":22,"errname":"EINVAL","reason":"bad","trace":null,"extra":null}}}"#;
        match Incoming::parse(nu).unwrap() {
            Incoming::Notification(Notification::NotifyUnsubscribed { collection, error }) => {
                assert_eq!(collection, "x:{}");
                assert_eq!(error.unwrap().error, Some(22));
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(
            Incoming::parse("[1]").unwrap(),
            Incoming::Unknown(_)
        ));
        assert!(Incoming::parse("{").is_err());
    }
}
