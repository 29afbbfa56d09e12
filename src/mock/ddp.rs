//! The legacy DDP-like framing of `/websocket` (`docs/middleware.md` §1.4, §3.4, §5.6): the only API
//! of the 24.10 profile, served by every profile.
//!
//! Method calls go through the same [`start_call`](super::transport::start_call) and
//! dispatcher as JSON-RPC; subscriptions through the same [`events::start`] /
//! [`events::stop`]; only the frames differ:
//! - `connect` (version "1") → `connected`; anything before it, or another version → `failed`;
//! - `method` → `result` with the result or the legacy error object;
//! - `sub` → `ready` (anonymous: a `result` with EACCES "Not authorized"); `unsub` → nothing;
//! - events → `added` / `changed` / `removed`; a subscription's end → `nosub`;
//! - `ping` → `pong` on 24.10 only (25.04+ ignore it);
//! - a JSON-RPC frame (no `msg`) → close 1011 `'msg'`; bad JSON → close 1007 (§3.4).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde_json::Value;

use super::ServerVersion;
use super::dispatch::Ctx;
use super::events;
use super::rpc::python_json_error;
use super::state::{Conn, Shared};
use super::transport::start_call;
use crate::protocol::ddp::{LegacyError, ServerMessage, VERSION};
use crate::protocol::{Notification, errno, redact};

/// Handle one text frame of a legacy connection; `parsed` is its JSON parse result.
pub(crate) fn on_message(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    text: &str,
    parsed: Result<Value, serde_json::Error>,
) {
    let value = match parsed {
        Ok(v) => v,
        Err(e) => return conn.close(1007, python_json_error(text, &e)),
    };
    let Value::Object(m) = value else {
        // §3.4: a top-level array closes with 1007 on legacy. Guess: the reason is the text the
        // JSON-RPC endpoint answers with.
        let reason = if value.is_array() {
            "Batch messages are not supported at this time"
        } else {
            "Invalid Message Format"
        };
        return conn.close(1007, reason);
    };
    // §1.4: the handler reads `message['msg']`; a KeyError closes 1011 with `str(KeyError)`.
    let Some(kind) = m.get("msg") else {
        return conn.close(1011, "'msg'");
    };
    let kind = kind.as_str().unwrap_or_default();
    let id = m.get("id").cloned().unwrap_or(Value::Null);
    if kind == "connect" {
        let reply = if m.get("version").and_then(Value::as_str) == Some(VERSION) {
            conn.ddp_connected.store(true, Ordering::SeqCst);
            ServerMessage::Connected {
                session: Some(shared.ids.uuid()),
            }
        } else {
            failed()
        };
        return send(conn, &reply, None);
    }
    if !conn.ddp_connected.load(Ordering::SeqCst) {
        return send(conn, &failed(), None);
    }
    match kind {
        "method" => {
            let Some(method) = m.get("method").and_then(Value::as_str) else {
                let e = plain_error(errno::EINVAL, "Message is malformed: 'method' is absent.");
                return send_result(conn, id, "", Err(e));
            };
            let params = match m.get("params") {
                None | Some(Value::Null) => Vec::new(),
                Some(Value::Array(a)) => a.clone(),
                // Guess: the server's own check of the params type was not read.
                Some(_) => {
                    let e = plain_error(
                        errno::EINVAL,
                        "Message is malformed: 'params' is not a list.",
                    );
                    return send_result(conn, id, method, Err(e));
                }
            };
            start_call(shared, conn, Some(id), method.to_owned(), params);
        }
        "sub" => subscribe(shared, conn, id, m.get("name").and_then(Value::as_str)),
        "unsub" => {
            if let Some(sub) = id.as_str() {
                events::stop(shared, conn, sub);
            }
        }
        "ping" if shared.config.version == ServerVersion::V24_10 => {
            send(conn, &ServerMessage::Pong { id: Some(id) }, None)
        }
        // 25.04+ have no `ping` branch; unknown kinds are ignored as well.
        _ => {}
    }
}

/// `sub`: `ready` once subscribed; bad source arguments send `nosub` before it (as on
/// JSON-RPC, `docs/middleware.md` §5.3).
fn subscribe(shared: &Arc<Shared>, conn: &Arc<Conn>, id: Value, name: Option<&str>) {
    let Some(name) = name else {
        let e = plain_error(errno::EINVAL, "Message is malformed: 'name' is absent.");
        return send_result(conn, id, "", Err(e));
    };
    if !conn.logged_in() {
        // §1.4: a subscription that is not allowed is refused with a `result` error.
        return send_result(
            conn,
            id,
            "",
            Err(plain_error(errno::EACCES, "Not authorized")),
        );
    }
    let sub_id = match &id {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let ctx = Ctx::new(
        shared.clone(),
        conn.clone(),
        Some(id.clone()),
        "core.subscribe".into(),
    );
    events::start(&ctx, name.to_owned(), sub_id);
    send(conn, &ServerMessage::Ready { subs: vec![id] }, None);
    ctx.release();
}

fn failed() -> ServerMessage {
    ServerMessage::Failed {
        version: Some(VERSION.into()),
    }
}

/// An error the legacy handler sends itself (no exception behind it): no `[ERRNAME]` prefix,
/// no type, trace or extra.
fn plain_error(errno: i64, reason: &str) -> LegacyError {
    LegacyError {
        error: Some(errno),
        errname: Some(errno::name(errno).to_owned()),
        reason: Some(reason.to_owned()),
        ..Default::default()
    }
}

/// Queue a frame; with `method`, its `result` is redacted in the transcript as that method's.
fn send(conn: &Conn, msg: &ServerMessage, method: Option<&str>) {
    let wire = msg.to_value();
    let mut log = wire.clone();
    if let (Some(m), Some(r)) = (method, log.get_mut("result")) {
        redact::redact_result(m, r);
    }
    redact::redact_keys(&mut log);
    conn.send(wire.to_string(), log.to_string());
}

/// The `result` frame answering call `id` to `method`.
pub(crate) fn send_result(
    conn: &Conn,
    id: Value,
    method: &str,
    outcome: Result<Value, LegacyError>,
) {
    send(conn, &ServerMessage::Result { id, outcome }, Some(method));
}

/// ETOOMANYREFS "Maximum number of concurrent calls (20) has exceeded." (§1.4).
pub(crate) fn too_many_calls(conn: &Conn, id: Value) {
    let e = plain_error(
        errno::ETOOMANYREFS,
        "Maximum number of concurrent calls (20) has exceeded.",
    );
    send_result(conn, id, "", Err(e));
}

/// `nosub` for `collection`, with the error when the subscription failed.
pub(crate) fn nosub(conn: &Conn, collection: &str, error: Option<LegacyError>) {
    let msg = ServerMessage::NoSub {
        collection: Some(collection.to_owned()),
        id: None,
        error,
    };
    send(conn, &msg, None);
}

/// A notification as a legacy frame (§5.6): the `collection_update` body is the DDP event;
/// `notify_unsubscribed` is `nosub`.
pub(crate) fn notification(note: &Notification) -> Value {
    match note {
        Notification::CollectionUpdate(u) => ServerMessage::Event(u.clone()).to_value(),
        Notification::NotifyUnsubscribed { collection, error } => ServerMessage::NoSub {
            collection: Some(collection.clone()),
            id: None,
            error: error.clone().map(|d| LegacyError {
                error: d.error,
                errname: d.errname,
                kind: None,
                reason: d.reason,
                trace: d.trace,
                extra: d.extra,
                other: d.other,
            }),
        }
        .to_value(),
        Notification::Other { .. } => note.to_value(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::{CollectionUpdate, EventKind};

    #[test]
    fn notifications_become_ddp_frames() {
        let u = Notification::CollectionUpdate(CollectionUpdate {
            msg: EventKind::Changed,
            collection: "core.get_jobs".into(),
            id: Some(1.into()),
            fields: Some(serde_json::json!({"id": 1})),
            extra: None,
        });
        assert_eq!(
            notification(&u).to_string(),
            r#"{"msg":"changed","collection":"core.get_jobs","id":1,"fields":{"id":1}}"#
        );
        let end = Notification::NotifyUnsubscribed {
            collection: "x".into(),
            error: None,
        };
        assert_eq!(
            notification(&end).to_string(),
            r#"{"msg":"nosub","collection":"x"}"#
        );
    }

    #[test]
    fn plain_errors_have_no_prefix() {
        let e = plain_error(errno::EACCES, "Not authorized");
        assert_eq!(e.errname.as_deref(), Some("EACCES"));
        assert_eq!(e.reason.as_deref(), Some("Not authorized"));
        assert!(e.kind.is_none() && e.trace.is_none());
    }
}
