//! The `ws` module: scripts talk to any WebSocket JSON service (not only TrueNAS) over
//! [`crate::ws`], with the same certificate trust and secret redaction as the main client.
//!
//! ```rhai
//! let s = ws::connect("ws://host:8060/ws?secret=…", #{ headers: #{}, fingerprint: "AB:CD:…" });
//! s.on("alert", |msg| print(msg.data));          // runs while the script waits on `s`
//! let reply = s.request(#{ type: "ping" }, 2000); // adds `request_id`, returns the reply
//! let msg = s.next(5000);                          // the next message, or () after 5 s
//! for msg in s.messages() { … }                    // every message until the connection ends
//! s.close();
//! ```
//!
//! Handlers registered with `on(type, fn)` get the messages whose `type` field matches while
//! the script waits in `next`, `request` or `wait(ms)` on the connection; other messages wait
//! for `next`. `messages()` hands over every message (handlers do not run there). Failures
//! throw the usual error maps: `kind: "connection"` (refused upgrade with its HTTP status, a
//! closed connection with its close code), `"timeout"`, `"argument"`.

use std::cell::RefCell;
use std::collections::VecDeque;
use std::rc::Rc;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rhai::{
    Dynamic, Engine, EvalAltResult, FnPtr, INT, ImmutableString, Map, Module, NativeCallContext,
    Position,
};
use serde_json::Value;

use super::bindings::{Host, script_error};
use super::values::{from_dynamic, to_dynamic};
use crate::client::Trust;
use crate::ws::{Connection, Error, Incoming, Options};

type Fallible<T> = Result<T, Box<EvalAltResult>>;

/// How long `request(map)` waits without a timeout argument.
const DEFAULT_REQUEST_MS: INT = 10_000;

/// A connection as scripts hold it.
#[derive(Clone)]
pub(crate) struct WsHandle(Rc<WsState>);

struct WsState {
    conn: Arc<Connection>,
    host: Rc<Host>,
    handlers: RefCell<Vec<(String, FnPtr)>>,
    /// Messages that arrived while a request waited, for `next`.
    queued: RefCell<VecDeque<Value>>,
}

fn thrown(e: &Error, pos: Position) -> Box<EvalAltResult> {
    script_error(e.kind(), e.to_string(), pos)
}

fn options_from(map: &Map, pos: Position) -> Fallible<Options> {
    let mut o = Options::default();
    for (k, v) in map {
        match k.as_str() {
            "headers" => {
                let h = v.clone().try_cast::<Map>().ok_or_else(|| {
                    script_error("argument", "ws::connect: headers must be a map".into(), pos)
                })?;
                o.headers = h
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
            }
            "fingerprint" => {
                let f = v.to_string();
                let fp = f.parse().map_err(|_| {
                    script_error(
                        "argument",
                        "ws::connect: fingerprint must be a SHA-256 fingerprint (64 hex digits, colons allowed)".into(),
                        pos,
                    )
                })?;
                o.trust = Trust::Pinned(fp);
            }
            "id_field" => o.id_field = v.to_string(),
            "timeout_ms" => {
                let ms = v.as_int().map_err(|_| {
                    script_error(
                        "argument",
                        "ws::connect: timeout_ms must be an integer".into(),
                        pos,
                    )
                })?;
                o.connect_timeout = Duration::from_millis(ms.max(1) as u64);
            }
            other => {
                return Err(script_error(
                    "argument",
                    format!(
                        "ws::connect: unknown option '{other}' (known: headers, fingerprint, id_field, timeout_ms)"
                    ),
                    pos,
                ));
            }
        }
    }
    Ok(o)
}

fn connect(host: &Rc<Host>, url: &str, options: Options, pos: Position) -> Fallible<WsHandle> {
    let url = url.to_owned();
    let conn = host
        .wait(
            None,
            async move { Connection::connect(&url, &options).await },
        )
        .map_err(|stop| stop.into_rhai(pos))?
        .map_err(|e| thrown(&e, pos))?;
    Ok(WsHandle(Rc::new(WsState {
        conn: Arc::new(conn),
        host: host.clone(),
        handlers: RefCell::default(),
        queued: RefCell::default(),
    })))
}

fn remaining(deadline: Option<Instant>) -> Option<Duration> {
    deadline.map(|d| d.saturating_duration_since(Instant::now()))
}

impl WsHandle {
    /// The handler for a message, if one is registered for its `type`.
    fn handler_for(&self, msg: &Value) -> Option<FnPtr> {
        let ty = msg.get("type")?.as_str()?;
        self.0
            .handlers
            .borrow()
            .iter()
            .find(|(t, _)| t == ty)
            .map(|(_, f)| f.clone())
    }

    fn run_handler(&self, ctx: &NativeCallContext, f: FnPtr, msg: &Value) -> Fallible<()> {
        f.call_within_context::<Dynamic>(ctx, (to_dynamic(msg),))
            .map(|_| ())
    }

    /// Wait for the next message not taken by a handler; `None` at the deadline.
    /// A closed connection is an error.
    fn next_message(
        &self,
        ctx: &NativeCallContext,
        deadline: Option<Instant>,
    ) -> Fallible<Option<Value>> {
        if let Some(v) = self.0.queued.borrow_mut().pop_front() {
            return Ok(Some(v));
        }
        self.receive(ctx, deadline)
    }

    /// Wait for the next message from the connection (not the queue), running handlers;
    /// `None` at the deadline. A closed connection is an error.
    fn receive(
        &self,
        ctx: &NativeCallContext,
        deadline: Option<Instant>,
    ) -> Fallible<Option<Value>> {
        let pos = ctx.call_position();
        loop {
            let conn = self.0.conn.clone();
            let wait = remaining(deadline);
            let got = self
                .0
                .host
                .wait(Some(ctx), async move {
                    match wait {
                        Some(d) => tokio::time::timeout(d, conn.next()).await.ok(),
                        None => Some(conn.next().await),
                    }
                })
                .map_err(|stop| stop.into_rhai(pos))?;
            match got {
                None => return Ok(None),
                Some(Some(Incoming::Message(v))) => match self.handler_for(&v) {
                    Some(f) => self.run_handler(ctx, f, &v)?,
                    None => return Ok(Some(v)),
                },
                Some(Some(Incoming::Text(t))) => return Ok(Some(Value::String(t))),
                Some(Some(Incoming::Closed(_)) | None) => {
                    let why = why_or(&self.0.conn.closed().unwrap_or_default());
                    return Err(script_error(
                        "connection",
                        format!("{}: {why}", self.0.conn.url()),
                        pos,
                    ));
                }
            }
        }
    }

    fn request(&self, ctx: &NativeCallContext, msg: Dynamic, timeout_ms: INT) -> Fallible<Dynamic> {
        let pos = ctx.call_position();
        let value = from_dynamic(&msg)
            .map_err(|e| script_error("argument", format!("request: {e}"), pos))?;
        let (id, reply) = self
            .0
            .conn
            .start_request(value)
            .map_err(|e| thrown(&e, pos))?;
        let mut reply = Box::pin(reply);
        let deadline = Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
        let timed_out = || {
            self.0.conn.forget(&id);
            script_error(
                "timeout",
                format!(
                    "{}: no reply to request {id} within {timeout_ms} ms",
                    self.0.conn.url()
                ),
                pos,
            )
        };
        loop {
            let conn = self.0.conn.clone();
            let left = remaining(Some(deadline)).unwrap_or_default();
            if left.is_zero() {
                return Err(timed_out());
            }
            enum Got {
                Reply(Value),
                Lost,
                Other(Option<Incoming>),
                Late,
            }
            let got = self
                .0
                .host
                .wait(Some(ctx), async {
                    tokio::select! {
                        r = &mut reply => match r { Ok(v) => Got::Reply(v), Err(_) => Got::Lost },
                        m = conn.next() => Got::Other(m),
                        _ = tokio::time::sleep(left) => Got::Late,
                    }
                })
                .map_err(|stop| {
                    self.0.conn.forget(&id);
                    stop.into_rhai(pos)
                })?;
            match got {
                Got::Reply(v) => return Ok(to_dynamic(&v)),
                Got::Late => return Err(timed_out()),
                Got::Lost | Got::Other(Some(Incoming::Closed(_))) | Got::Other(None) => {
                    let why = self
                        .0
                        .conn
                        .closed()
                        .unwrap_or_else(|| "connection lost".into());
                    return Err(script_error(
                        "connection",
                        format!(
                            "{}: {why} before the reply to request {id}",
                            self.0.conn.url()
                        ),
                        pos,
                    ));
                }
                Got::Other(Some(Incoming::Message(v))) => match self.handler_for(&v) {
                    Some(f) => self.run_handler(ctx, f, &v)?,
                    None => self.0.queued.borrow_mut().push_back(v),
                },
                Got::Other(Some(Incoming::Text(t))) => {
                    self.0.queued.borrow_mut().push_back(Value::String(t))
                }
            }
        }
    }
}

fn why_or(why: &str) -> String {
    if why.is_empty() {
        "connection lost".into()
    } else {
        why.to_owned()
    }
}

/// Iterates `messages()`: every message until the connection ends.
pub(crate) struct WsIter(WsHandle);

impl Iterator for WsIter {
    type Item = Fallible<Dynamic>;

    fn next(&mut self) -> Option<Self::Item> {
        let state = &(self.0).0;
        if let Some(v) = state.queued.borrow_mut().pop_front() {
            return Some(Ok(to_dynamic(&v)));
        }
        let conn = state.conn.clone();
        match state.host.wait(None, async move { conn.next().await }) {
            Ok(Some(Incoming::Message(v))) => Some(Ok(to_dynamic(&v))),
            Ok(Some(Incoming::Text(t))) => Some(Ok(t.into())),
            Ok(Some(Incoming::Closed(_)) | None) => None,
            Err(stop) => Some(Err(stop.into_rhai(Position::NONE))),
        }
    }
}

/// Register the `ws` module and the connection's methods.
pub(crate) fn register(engine: &mut Engine, host: &Rc<Host>) {
    let mut m = Module::new();
    let h = host.clone();
    m.set_native_fn("connect", move |url: &str| -> Fallible<WsHandle> {
        connect(&h, url, Options::default(), Position::NONE)
    });
    let h = host.clone();
    m.set_native_fn(
        "connect",
        move |url: &str, options: Map| -> Fallible<WsHandle> {
            let o = options_from(&options, Position::NONE)?;
            connect(&h, url, o, Position::NONE)
        },
    );
    engine.register_static_module("ws", m.into());

    engine.register_type_with_name::<WsHandle>("WsConnection");
    engine.register_get("url", |s: &mut WsHandle| -> ImmutableString {
        s.0.conn.url().into()
    });
    engine.register_get("is_open", |s: &mut WsHandle| s.0.conn.closed().is_none());
    engine.register_get("closed_reason", |s: &mut WsHandle| -> Dynamic {
        s.0.conn.closed().map_or(Dynamic::UNIT, Into::into)
    });
    engine.register_fn("to_string", |s: &mut WsHandle| {
        format!("WsConnection({})", s.0.conn.url())
    });
    engine.register_fn("to_debug", |s: &mut WsHandle| {
        format!("WsConnection({})", s.0.conn.url())
    });
    engine.register_fn(
        "send",
        |ctx: NativeCallContext, s: &mut WsHandle, msg: Dynamic| -> Fallible<()> {
            let pos = ctx.call_position();
            let v = from_dynamic(&msg)
                .map_err(|e| script_error("argument", format!("send: {e}"), pos))?;
            s.0.conn.send(&v).map_err(|e| thrown(&e, pos))
        },
    );
    engine.register_fn(
        "request",
        |ctx: NativeCallContext, s: &mut WsHandle, msg: Dynamic, timeout_ms: INT| {
            s.clone().request(&ctx, msg, timeout_ms)
        },
    );
    engine.register_fn(
        "request",
        |ctx: NativeCallContext, s: &mut WsHandle, msg: Dynamic| {
            s.clone().request(&ctx, msg, DEFAULT_REQUEST_MS)
        },
    );
    engine.register_fn(
        "next",
        |ctx: NativeCallContext, s: &mut WsHandle, timeout_ms: INT| -> Fallible<Dynamic> {
            let deadline = Instant::now() + Duration::from_millis(timeout_ms.max(0) as u64);
            Ok(s.clone()
                .next_message(&ctx, Some(deadline))?
                .map_or(Dynamic::UNIT, |v| to_dynamic(&v)))
        },
    );
    engine.register_fn(
        "next",
        |ctx: NativeCallContext, s: &mut WsHandle| -> Fallible<Dynamic> {
            Ok(s.clone()
                .next_message(&ctx, None)?
                .map_or(Dynamic::UNIT, |v| to_dynamic(&v)))
        },
    );
    // wait(ms): let handlers run for that long; messages without a handler stay queued.
    engine.register_fn(
        "wait",
        |ctx: NativeCallContext, s: &mut WsHandle, ms: INT| -> Fallible<()> {
            let s = s.clone();
            let deadline = Instant::now() + Duration::from_millis(ms.max(0) as u64);
            while let Some(v) = s.receive(&ctx, Some(deadline))? {
                s.0.queued.borrow_mut().push_back(v);
            }
            Ok(())
        },
    );
    engine.register_fn("on", |s: &mut WsHandle, ty: ImmutableString, f: FnPtr| {
        let mut hs = s.0.handlers.borrow_mut();
        hs.retain(|(t, _)| t != ty.as_str());
        hs.push((ty.to_string(), f));
    });
    engine.register_fn("close", |s: &mut WsHandle| s.0.conn.close());
    engine.register_fn("messages", |s: &mut WsHandle| WsMessages(s.clone()));
    engine.register_iterator_result::<WsMessages, Dynamic>();
}

/// What `messages()` returns: iterable with `for`.
#[derive(Clone)]
pub(crate) struct WsMessages(WsHandle);

impl IntoIterator for WsMessages {
    type Item = Fallible<Dynamic>;
    type IntoIter = WsIter;
    fn into_iter(self) -> WsIter {
        WsIter(self.0)
    }
}
