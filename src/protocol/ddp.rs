//! The legacy DDP-like protocol of `/websocket` (`docs/middleware.md` §1.4, §5.6): the only API of
//! TrueNAS 24.10, still served by 25.04 and later.
//!
//! Every frame is one JSON object whose kind is its `msg` key:
//! - client → server: `connect`, `method`, `sub`, `unsub`, `ping`;
//! - server → client: `connected` / `failed`, `result` (with `result` or a [`LegacyError`]),
//!   `ready`, `added` / `changed` / `removed` (the same body as a `collection_update`), `nosub`,
//!   `pong` (24.10 only).
//!
//! Ids are strings chosen by the client (the official client uses uuid4) and are echoed
//! verbatim. Nothing here knows about sockets; the client and the mock both build and read
//! frames through these types.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use super::message::{CollectionUpdate, ErrorData, ValidationEntry};

/// The protocol version this dialect speaks (`connect.version`).
pub const VERSION: &str = "1";

/// The legacy error object (`docs/middleware.md` §1.4): errno, its name, `type` (`"VALIDATION"` or
/// null), reason, trace and extra. There is no JSON-RPC code.
///
/// Validation failures have `type: "VALIDATION"` and `[attribute, message, errno]` triples in
/// `extra`; a single ValidationError keeps its own errno, a list uses EAGAIN (11).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct LegacyError {
    /// errno.
    #[serde(default)]
    pub error: Option<i64>,
    /// errno name, e.g. `EINVAL`.
    #[serde(default)]
    pub errname: Option<String>,
    /// `"VALIDATION"` for validation errors, otherwise null.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// Human string.
    #[serde(default)]
    pub reason: Option<String>,
    /// `{"class","formatted","repr"}` or null.
    #[serde(default)]
    pub trace: Option<Value>,
    /// Validation triples or other detail, or null.
    #[serde(default)]
    pub extra: Option<Value>,
    /// Anything else the server adds (`py_exception`).
    #[serde(flatten)]
    pub other: Map<String, Value>,
}

impl LegacyError {
    /// Is this a validation failure (`type: "VALIDATION"`)?
    pub fn is_validation(&self) -> bool {
        self.kind.as_deref() == Some("VALIDATION")
    }

    /// The validation triples in `extra`.
    pub fn validation_entries(&self) -> Vec<ValidationEntry> {
        ValidationEntry::list_from(self.extra.as_ref())
    }

    /// The same fields in the JSON-RPC `data` shape (`type` kept among the other keys).
    pub fn into_error_data(self) -> ErrorData {
        let mut other = self.other;
        if let Some(kind) = self.kind {
            other.insert("type".into(), kind.into());
        }
        ErrorData {
            error: self.error,
            errname: self.errname,
            reason: self.reason,
            trace: self.trace,
            extra: self.extra,
            other,
        }
    }
}

/// A frame from the client.
#[derive(Debug, Clone, PartialEq)]
pub enum ClientMessage {
    /// `{"msg":"connect","version":"1","support":["1"]}`: must come first.
    Connect,
    /// `{"msg":"method","id":…,"method":…,"params":[…]}`.
    Method {
        /// The id echoed in the `result`.
        id: String,
        /// `service.method`.
        method: String,
        /// Positional arguments.
        params: Vec<Value>,
    },
    /// `{"msg":"sub","id":…,"name":…}`, answered by `ready` (or a `result` with an error).
    Sub {
        /// The subscription id, chosen by the client.
        id: String,
        /// The event name, `name:{json}` arguments included.
        name: String,
    },
    /// `{"msg":"unsub","id":…}`; the server sends no reply.
    Unsub {
        /// The subscription id.
        id: String,
    },
    /// `{"msg":"ping","id":…}`: answered only by 24.10 and older, so midscript's client never
    /// sends it (it keeps connections alive with WebSocket pings).
    Ping {
        /// Echoed in the `pong`.
        id: String,
    },
}

impl ClientMessage {
    /// The frame as a JSON object.
    pub fn to_value(&self) -> Value {
        match self {
            ClientMessage::Connect => {
                json!({"msg": "connect", "version": VERSION, "support": [VERSION]})
            }
            ClientMessage::Method { id, method, params } => {
                json!({"msg": "method", "id": id, "method": method, "params": params})
            }
            ClientMessage::Sub { id, name } => json!({"msg": "sub", "id": id, "name": name}),
            ClientMessage::Unsub { id } => json!({"msg": "unsub", "id": id}),
            ClientMessage::Ping { id } => json!({"msg": "ping", "id": id}),
        }
    }

    /// The compact JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        self.to_value().to_string()
    }
}

/// A frame from the server.
#[derive(Debug, Clone, PartialEq)]
pub enum ServerMessage {
    /// `{"msg":"connected","session":…}`: the handshake succeeded.
    Connected {
        /// The server's session id.
        session: Option<String>,
    },
    /// `{"msg":"failed","version":"1"}`: a bad `connect`, or a message before it.
    Failed {
        /// The version the server speaks.
        version: Option<String>,
    },
    /// `{"msg":"result","id":…,"result":…}` or `{…,"error":{…}}`.
    Result {
        /// The id of the `method` (or refused `sub`).
        id: Value,
        /// The result, or the legacy error object.
        outcome: Result<Value, LegacyError>,
    },
    /// `{"msg":"ready","subs":[…]}`: these subscriptions are in place.
    Ready {
        /// Subscription ids.
        subs: Vec<Value>,
    },
    /// `added`, `changed` or `removed`: the same body as a `collection_update`.
    Event(CollectionUpdate),
    /// `{"msg":"nosub","collection":…,"error":{…}?}`: a subscription ended (`error` only on
    /// failure).
    NoSub {
        /// The full subscribed name.
        collection: Option<String>,
        /// The subscription id, when the server names it so.
        id: Option<Value>,
        /// Set when the subscription failed.
        error: Option<LegacyError>,
    },
    /// `{"msg":"pong","id":…}` (24.10 and older).
    Pong {
        /// The ping's id.
        id: Option<Value>,
    },
    /// Valid JSON of no known shape.
    Unknown(Value),
}

fn legacy_error(v: Option<&Value>) -> Option<LegacyError> {
    v.filter(|e| !e.is_null())
        .map(|e| serde_json::from_value(e.clone()).unwrap_or_default())
}

impl ServerMessage {
    /// Classify one parsed frame. Never fails: what is not understood is [`ServerMessage::Unknown`].
    pub fn from_value(value: Value) -> ServerMessage {
        let kind = value.get("msg").and_then(Value::as_str).unwrap_or_default();
        let str_of = |k: &str| value.get(k).and_then(Value::as_str).map(str::to_owned);
        match kind {
            "connected" => ServerMessage::Connected {
                session: str_of("session"),
            },
            "failed" => ServerMessage::Failed {
                version: str_of("version"),
            },
            "result" if value.get("id").is_some() => {
                let id = value.get("id").cloned().unwrap_or(Value::Null);
                let outcome = match legacy_error(value.get("error")) {
                    Some(e) => Err(e),
                    None => Ok(value.get("result").cloned().unwrap_or(Value::Null)),
                };
                ServerMessage::Result { id, outcome }
            }
            "ready" => ServerMessage::Ready {
                subs: value
                    .get("subs")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default(),
            },
            "added" | "changed" | "removed" => {
                match serde_json::from_value::<CollectionUpdate>(value.clone()) {
                    Ok(u) => ServerMessage::Event(u),
                    Err(_) => ServerMessage::Unknown(value),
                }
            }
            "nosub" => ServerMessage::NoSub {
                collection: str_of("collection"),
                id: value.get("id").cloned(),
                error: legacy_error(value.get("error")),
            },
            "pong" => ServerMessage::Pong {
                id: value.get("id").cloned(),
            },
            _ => ServerMessage::Unknown(value),
        }
    }

    /// Parse one text frame. `Err` carries the JSON parser's message.
    pub fn parse(text: &str) -> Result<ServerMessage, serde_json::Error> {
        Ok(ServerMessage::from_value(serde_json::from_str(text)?))
    }

    /// The frame as a JSON object.
    pub fn to_value(&self) -> Value {
        match self {
            ServerMessage::Connected { session } => json!({"msg": "connected", "session": session}),
            ServerMessage::Failed { version } => json!({"msg": "failed", "version": version}),
            ServerMessage::Result { id, outcome } => match outcome {
                Ok(v) => json!({"msg": "result", "id": id, "result": v}),
                Err(e) => json!({"msg": "result", "id": id, "error": e}),
            },
            ServerMessage::Ready { subs } => json!({"msg": "ready", "subs": subs}),
            ServerMessage::Event(u) => serde_json::to_value(u).unwrap_or(Value::Null),
            ServerMessage::NoSub {
                collection,
                id,
                error,
            } => {
                let mut m = Map::new();
                m.insert("msg".into(), "nosub".into());
                if let Some(c) = collection {
                    m.insert("collection".into(), c.clone().into());
                }
                if let Some(id) = id {
                    m.insert("id".into(), id.clone());
                }
                if let Some(e) = error {
                    m.insert(
                        "error".into(),
                        serde_json::to_value(e).unwrap_or(Value::Null),
                    );
                }
                Value::Object(m)
            }
            ServerMessage::Pong { id } => json!({"msg": "pong", "id": id}),
            ServerMessage::Unknown(v) => v.clone(),
        }
    }

    /// The compact JSON text sent on the wire.
    pub fn to_text(&self) -> String {
        self.to_value().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::EventKind;

    #[test]
    fn client_frames_have_the_reference_shapes() {
        assert_eq!(
            ClientMessage::Connect.to_text(),
            r#"{"msg":"connect","version":"1","support":["1"]}"#
        );
        let m = ClientMessage::Method {
            id: "1".into(),
            method: "pool.query".into(),
            params: vec![],
        };
        assert_eq!(
            m.to_text(),
            r#"{"msg":"method","id":"1","method":"pool.query","params":[]}"#
        );
        assert_eq!(
            ClientMessage::Sub {
                id: "2".into(),
                name: "core.get_jobs".into()
            }
            .to_text(),
            r#"{"msg":"sub","id":"2","name":"core.get_jobs"}"#
        );
    }

    #[test]
    fn server_frames_parse() {
        let r = ServerMessage::parse(r#"{"msg":"result","id":"3","error":{"error":11,"errname":"EAGAIN","type":"VALIDATION","reason":"[EINVAL] a: b","trace":null,"extra":[["a","b",22]]}}"#).unwrap();
        let ServerMessage::Result { id, outcome } = r else {
            panic!("{r:?}")
        };
        assert_eq!(id, json!("3"));
        let e = outcome.unwrap_err();
        assert!(e.is_validation());
        assert_eq!(e.error, Some(11));
        assert_eq!(e.validation_entries()[0].errno, 22);
        let data = e.into_error_data();
        assert_eq!(data.other["type"], "VALIDATION");

        // A null result is a result, not an error.
        assert_eq!(
            ServerMessage::parse(r#"{"msg":"result","id":"4","result":null}"#).unwrap(),
            ServerMessage::Result {
                id: json!("4"),
                outcome: Ok(Value::Null)
            }
        );
        let ev = ServerMessage::parse(r#"{"msg":"removed","collection":"alert.list","id":"a1"}"#)
            .unwrap();
        let ServerMessage::Event(u) = ev else {
            panic!("{ev:?}")
        };
        assert_eq!(u.msg, EventKind::Removed);
        assert_eq!(u.fields, None);
        let nosub = ServerMessage::parse(r#"{"msg":"nosub","collection":"x:{}"}"#).unwrap();
        assert_eq!(
            nosub,
            ServerMessage::NoSub {
                collection: Some("x:{}".into()),
                id: None,
                error: None
            }
        );
        assert_eq!(nosub.to_text(), r#"{"msg":"nosub","collection":"x:{}"}"#);
        assert!(matches!(
            ServerMessage::parse(r#"{"jsonrpc":"2.0","id":1,"result":2}"#).unwrap(),
            ServerMessage::Unknown(_)
        ));
    }

    #[test]
    fn the_error_object_keeps_the_reference_key_order() {
        let e = LegacyError {
            error: Some(207),
            errname: Some("ENOTAUTHENTICATED".into()),
            reason: Some("Not authenticated".into()),
            ..Default::default()
        };
        let r = ServerMessage::Result {
            id: json!("1"),
            outcome: Err(e),
        };
        assert_eq!(
            r.to_text(),
            r#"{"msg":"result","id":"1","error":{"error":207,"errname":"ENOTAUTHENTICATED","type":null,"reason":"Not authenticated","trace":null,"extra":null}}"#
        );
    }
}
