//! The connection core: one writer task, one reader task, replies matched to calls by id.
//!
//! Two wire dialects share everything but the framing (`docs/middleware.md` §1.2): JSON-RPC 2.0 on
//! `/api/current`, and the legacy DDP-like protocol of `/websocket` (§1.4), the only one
//! TrueNAS 24.10 speaks. Only encoding a request and decoding a frame differ; the pending
//! map, the in-flight cap, size limits, keepalive, the event router and the job table are
//! the same for both.
//!
//! - Ids are integers from 1, so transcripts are deterministic (rendered as strings, `"1"`,
//!   `"2"`, … on the legacy dialect, whose ids are strings).
//! - Replies may come out of order, with notifications in between (`docs/middleware.md` §1.3).
//! - On the legacy dialect the client sends `connect` and waits for `connected` before
//!   anything else; `core.subscribe` / `core.unsubscribe` become `sub` / `unsub` frames, a
//!   `ready` answers the `sub` with the client's own id, and `nosub` ends a subscription
//!   (§1.4, §5.6).
//! - At most `max_in_flight` calls are outstanding; more wait here, so the server never has to
//!   answer -32000 (`docs/middleware.md` §3.6: 10 run, 10 more queue, the 21st is refused).
//! - Messages the server would answer by closing the socket (`docs/middleware.md` §3.3) are refused
//!   before they are sent.
//! - A silent peer is detected with WebSocket pings, which the server answers without involving
//!   the middleware (and which the rate limiter never sees, `docs/middleware.md` §3.4). The DDP `ping`
//!   is never used: 25.04 and later ignore it (§1.4).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::sync::{Semaphore, mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::auth::LoginContext;
use super::error::{Error, Result, ServerError};
use super::events::Router;
use super::transport::{Dialect, Socket};
use crate::protocol::ddp::{ClientMessage, ServerMessage};
use crate::protocol::{Incoming, Notification, Request, redact};

/// Which way a traced frame went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Client to server.
    Sent,
    /// Server to client.
    Received,
}

/// Receives every frame (already redacted) for `--trace` transcripts.
pub type Tracer = Arc<dyn Fn(Direction, &str) + Send + Sync>;

/// Message size limits (`docs/middleware.md` §3.3), counted in characters.
const MAX_ANONYMOUS_CHARS: usize = 8192;
const MAX_AUTHENTICATED_CHARS: usize = 65536;
const MAX_EXEMPT_CHARS: usize = 2 * 1024 * 1024;
const SIZE_EXEMPT_METHODS: &[&str] = &["filesystem.file_receive", "failover.datastore.sql"];

/// How long [`Connection::close`] waits for the server to answer the close frame.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

/// A reply: the result, or the server's error (boxed: it is large).
type Reply = std::result::Result<Payload, Box<ServerError>>;

/// A call's result as it arrived: parsed, or, for a call that asked for it, the result's own
/// JSON text, so that a big result that is only printed is never parsed (a parsed JSON value
/// takes several times the memory of its text).
#[derive(Debug)]
pub(crate) enum Payload {
    /// The parsed result.
    Parsed(Value),
    /// The result's JSON text, as the server sent it.
    Text(String),
}

impl Payload {
    /// The result as a value (parsed now if it came as text).
    pub(crate) fn into_value(self) -> Result<Value> {
        match self {
            Payload::Parsed(v) => Ok(v),
            Payload::Text(t) => serde_json::from_str(&t)
                .map_err(|e| Error::Protocol(format!("a result is not valid JSON: {e}"))),
        }
    }

    /// The result as JSON text (serialized now if it came parsed).
    pub(crate) fn into_text(self) -> String {
        match self {
            Payload::Parsed(v) => v.to_string(),
            Payload::Text(t) => t,
        }
    }
}

/// The one shape of reply whose result can be kept as text: `{"id": N, "result": …}` (other
/// members, such as `jsonrpc`, are ignored; an error reply does not match).
#[derive(serde::Deserialize)]
struct ResultText<'a> {
    id: u64,
    #[serde(borrow)]
    result: &'a serde_json::value::RawValue,
}

/// The answer to the legacy `connect`: `Err` carries the version of a `failed`.
type Handshake = std::result::Result<(), Option<String>>;

struct Pending {
    method: String,
    reply: oneshot::Sender<Reply>,
    /// The caller wants the result's JSON text ([`Payload::Text`]).
    text: bool,
}

/// What one request carries, before it is framed in the connection's dialect.
enum Outgoing<'a> {
    /// A method call with its positional params.
    Call(Vec<Value>),
    /// A subscription to this name (`core.subscribe [name]`, or a legacy `sub`).
    Sub(&'a str),
}

impl Outgoing<'_> {
    /// A copy with secrets replaced, for traces.
    fn redacted(&self, method: &str) -> Self {
        match self {
            Outgoing::Call(params) => {
                let mut p = params.clone();
                redact::redact_params(method, &mut p);
                Outgoing::Call(p)
            }
            Outgoing::Sub(name) => Outgoing::Sub(name),
        }
    }
}

/// How a request failed, as far as a reconnect cares.
#[derive(Debug)]
pub(crate) enum CallError {
    /// The request never left this process: sending it again is safe.
    NotSent(Error),
    /// The connection ended after the request was sent: the server may or may not have run it.
    Lost(Error),
    /// Any other failure (the server's error, a timeout, a refused size).
    Failed(Error),
}

impl CallError {
    /// The error inside.
    pub(crate) fn into_error(self) -> Error {
        match self {
            CallError::NotSent(e) | CallError::Lost(e) | CallError::Failed(e) => e,
        }
    }
}

/// Why the connection ended, kept so later calls fail with the same clear error.
#[derive(Debug, Clone)]
struct Ended {
    code: Option<u16>,
    reason: String,
}

/// Tuning for one connection.
#[derive(Debug, Clone)]
pub struct RpcOptions {
    /// Default time to wait for a reply.
    pub call_timeout: Duration,
    /// Calls outstanding at once; further calls queue client-side.
    pub max_in_flight: usize,
    /// Interval of WebSocket pings; `None` disables keepalive.
    pub keepalive: Option<Duration>,
}

impl Default for RpcOptions {
    fn default() -> Self {
        RpcOptions {
            call_timeout: Duration::from_secs(60),
            max_in_flight: 20,
            keepalive: Some(Duration::from_secs(20)),
        }
    }
}

/// What a [`Connection`] starts with, besides its socket and router.
pub(crate) struct Setup {
    /// The URL connected to.
    pub(crate) url: String,
    /// The dialect spoken.
    pub(crate) dialect: Dialect,
    /// Per-call timeout, in-flight cap and keepalive.
    pub(crate) options: RpcOptions,
    /// Receives every frame, redacted.
    pub(crate) tracer: Option<Tracer>,
    /// What a login on this connection needs to know about how it was opened.
    pub(crate) login: LoginContext,
}

/// One live connection. Shared by every handle of a [`super::Client`].
pub(crate) struct Connection {
    pub(crate) url: String,
    pub(crate) dialect: Dialect,
    out: mpsc::Sender<Message>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    slots: Arc<Semaphore>,
    authenticated: AtomicBool,
    ended: Mutex<Option<Ended>>,
    /// Woken when the connection ends.
    ended_signal: tokio::sync::Notify,
    /// Shared with the connections that replace this one after a reconnect, so subscribers
    /// and job waiters carry over.
    pub(crate) router: Arc<Mutex<Router>>,
    /// When the connection ends: tell the router's subscribers (`true`), or leave them for a
    /// reconnect to take over (`false`).
    close_subscribers_on_end: bool,
    /// Becomes `true` when the connection ends (watched by the reconnect supervisor).
    ended_flag: tokio::sync::watch::Sender<bool>,
    tracer: Option<Tracer>,
    pub(crate) options: RpcOptions,
    /// What a login on this connection needs: its TLS certificate, channel binding on or off,
    /// whether an API key may be sent in plain.
    pub(crate) login_context: LoginContext,
    /// Waits for `connected` / `failed` (legacy dialect).
    handshake: Mutex<Option<oneshot::Sender<Handshake>>>,
}

impl Connection {
    /// Start the reader and writer tasks on the current tokio runtime.
    pub(crate) fn start(
        setup: Setup,
        socket: Socket,
        router: Arc<Mutex<Router>>,
        close_subscribers_on_end: bool,
    ) -> Arc<Connection> {
        let Setup {
            url,
            dialect,
            options,
            tracer,
            login,
        } = setup;
        let (sink, stream) = socket.split();
        let (out, out_rx) = mpsc::channel(256);
        let conn = Arc::new(Connection {
            url,
            dialect,
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            slots: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            authenticated: AtomicBool::new(false),
            ended: Mutex::new(None),
            ended_signal: tokio::sync::Notify::new(),
            router,
            close_subscribers_on_end,
            ended_flag: tokio::sync::watch::channel(false).0,
            tracer,
            options,
            login_context: login,
            handshake: Mutex::new(None),
        });
        let last_rx = Arc::new(Mutex::new(Instant::now()));
        tokio::spawn(writer(
            sink,
            out_rx,
            conn.options.keepalive,
            last_rx.clone(),
            Arc::downgrade(&conn),
        ));
        tokio::spawn(reader(stream, Arc::downgrade(&conn), last_rx));
        conn
    }

    /// Mark the session as logged in (raises the message size limit).
    pub(crate) fn set_authenticated(&self, yes: bool) {
        self.authenticated.store(yes, Ordering::SeqCst);
    }

    /// Is the session logged in?
    pub(crate) fn is_authenticated(&self) -> bool {
        self.authenticated.load(Ordering::SeqCst)
    }

    /// The error for a call made after the connection ended, if it has.
    fn ended_error(&self) -> Option<Error> {
        let ended = self.ended.lock().ok()?.clone()?;
        Some(Error::closed(ended.code, &ended.reason, &self.url))
    }

    /// Is the connection still open?
    pub(crate) fn is_open(&self) -> bool {
        self.ended.lock().map(|e| e.is_none()).unwrap_or(false)
    }

    /// Watch for the end of the connection (`true` once it ended).
    pub(crate) fn ended_watch(&self) -> tokio::sync::watch::Receiver<bool> {
        self.ended_flag.subscribe()
    }

    /// Call `method` and wait for its reply.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        self.request(method, Outgoing::Call(params), timeout).await
    }

    /// [`Connection::call`], telling a call that never left from one lost on the way; with
    /// `text`, the result comes as its JSON text where the dialect allows (JSON-RPC).
    pub(crate) async fn call_tracked(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Option<Duration>,
        text: bool,
    ) -> std::result::Result<Payload, CallError> {
        self.request_tracked(method, Outgoing::Call(params), timeout, text)
            .await
    }

    /// Subscribe to `name` (`docs/middleware.md` §5.1, §1.4) and return the server's id for it:
    /// `core.subscribe` on JSON-RPC; a `sub` frame on the legacy dialect, where the id is the
    /// client's own and `ready` confirms it.
    pub(crate) async fn subscribe(&self, name: &str) -> Result<String> {
        let reply = match self.dialect {
            Dialect::JsonRpc => {
                self.call("core.subscribe", vec![Value::from(name)], None)
                    .await?
            }
            Dialect::Legacy => {
                self.request("core.subscribe", Outgoing::Sub(name), None)
                    .await?
            }
        };
        match reply {
            Value::String(id) => Ok(id),
            other => Err(Error::Protocol(format!(
                "core.subscribe returned {other} instead of an id"
            ))),
        }
    }

    /// End the server subscription `id`: `core.unsubscribe` on JSON-RPC; an `unsub` frame,
    /// which gets no reply, on the legacy dialect.
    pub(crate) async fn unsubscribe(&self, id: &str) -> Result<()> {
        match self.dialect {
            Dialect::JsonRpc => self
                .call("core.unsubscribe", vec![Value::from(id)], None)
                .await
                .map(drop),
            Dialect::Legacy => {
                self.send_frame(ClientMessage::Unsub { id: id.into() }.to_text())
                    .await
            }
        }
    }

    /// The legacy handshake (`docs/middleware.md` §1.4, §7.2): send `connect`, wait for `connected`.
    /// `failed` means the server does not speak this protocol version.
    pub(crate) async fn handshake(&self, timeout: Duration) -> Result<()> {
        let (tx, rx) = oneshot::channel();
        *self.handshake.lock().unwrap_or_else(|p| p.into_inner()) = Some(tx);
        self.send_frame(ClientMessage::Connect.to_text()).await?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(()))) => Ok(()),
            Ok(Ok(Err(version))) => Err(Error::Protocol(format!(
                "{}: the server answered the legacy `connect` with `failed`: unsupported protocol version (midscript speaks version {}{})",
                self.url,
                crate::protocol::ddp::VERSION,
                version
                    .map(|v| format!(", the server version {v}"))
                    .unwrap_or_default()
            ))),
            Ok(Err(_)) => Err(self.closed_error()),
            Err(_) => Err(Error::Timeout {
                method: "connect (legacy handshake)".into(),
                after: timeout,
            }),
        }
    }

    /// Why the connection ended (or a plain "lost" while it has not).
    pub(crate) fn closed_error(&self) -> Error {
        self.ended_error()
            .unwrap_or_else(|| Error::closed(None, "", &self.url))
    }

    /// Send a frame that gets no reply (legacy `connect`, `unsub`); it carries no secret.
    async fn send_frame(&self, text: String) -> Result<()> {
        if let Some(e) = self.ended_error() {
            return Err(e);
        }
        if let Some(t) = &self.tracer {
            t(Direction::Sent, &text);
        }
        self.out
            .send(Message::text(text))
            .await
            .map_err(|_| self.closed_error())
    }

    /// Encode one request in this connection's dialect.
    fn encode(&self, id: u64, method: &str, out: Outgoing<'_>) -> String {
        match (self.dialect, out) {
            (Dialect::JsonRpc, Outgoing::Call(params)) => {
                Request::new(id, method, params).to_text()
            }
            (Dialect::JsonRpc, Outgoing::Sub(name)) => {
                Request::new(id, method, vec![Value::from(name)]).to_text()
            }
            (Dialect::Legacy, Outgoing::Call(params)) => ClientMessage::Method {
                id: id.to_string(),
                method: method.to_owned(),
                params,
            }
            .to_text(),
            (Dialect::Legacy, Outgoing::Sub(name)) => ClientMessage::Sub {
                id: id.to_string(),
                name: name.to_owned(),
            }
            .to_text(),
        }
    }

    /// Send one request and wait for its reply. `method` names it in errors and decides how
    /// its params and result are redacted in traces.
    async fn request(
        &self,
        method: &str,
        out: Outgoing<'_>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        self.request_tracked(method, out, timeout, false)
            .await
            .map_err(CallError::into_error)?
            .into_value()
    }

    /// [`Connection::request`], saying whether the request may have reached the server.
    async fn request_tracked(
        &self,
        method: &str,
        out: Outgoing<'_>,
        timeout: Option<Duration>,
        as_text: bool,
    ) -> std::result::Result<Payload, CallError> {
        if let Some(e) = self.ended_error() {
            return Err(CallError::NotSent(e));
        }
        let timeout = timeout.unwrap_or(self.options.call_timeout);
        let Ok(_slot) = self.slots.clone().acquire_owned().await else {
            // The slots close when the connection ends.
            return Err(CallError::NotSent(self.closed_error()));
        };
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let traced = self.tracer.as_ref().map(|_| out.redacted(method));
        let text = self.encode(id, method, out);
        self.check_size(method, &text).map_err(CallError::Failed)?;
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(
            id,
            Pending {
                method: method.to_owned(),
                reply: tx,
                text: as_text,
            },
        );
        if let (Some(t), Some(out)) = (&self.tracer, traced) {
            t(Direction::Sent, &self.encode(id, method, out));
        }
        if self.out.send(Message::text(text)).await.is_err() {
            // The writer is gone: the frame never reached the socket.
            self.lock_pending().remove(&id);
            return Err(CallError::NotSent(self.closed_error()));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(CallError::Failed(Error::Server(e))),
            Ok(Err(_)) => Err(CallError::Lost(self.closed_error())),
            Err(_) => {
                self.lock_pending().remove(&id);
                Err(CallError::Failed(Error::Timeout {
                    method: method.to_owned(),
                    after: timeout,
                }))
            }
        }
    }

    fn check_size(&self, method: &str, text: &str) -> Result<()> {
        let (limit, when) = if !self.is_authenticated() {
            (MAX_ANONYMOUS_CHARS, "before login")
        } else if SIZE_EXEMPT_METHODS.contains(&method) {
            (MAX_EXEMPT_CHARS, "after login")
        } else {
            (MAX_AUTHENTICATED_CHARS, "after login")
        };
        // Cheap first: a text's char count never exceeds its byte length.
        if text.len() <= limit {
            return Ok(());
        }
        let size = text.chars().count();
        if size > limit {
            return Err(Error::MessageTooBig {
                method: method.to_owned(),
                size,
                limit,
                when,
            });
        }
        Ok(())
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Pending>> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn lock_router(&self) -> std::sync::MutexGuard<'_, Router> {
        self.router.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Trace a received frame: the result of a call to `method` redacted as that method's,
    /// secret-named keys everywhere.
    fn trace_received(&self, text: &str, method: Option<&str>) {
        let Some(t) = &self.tracer else { return };
        match serde_json::from_str::<Value>(text) {
            Ok(mut v) => {
                if let (Some(m), Some(r)) = (method, v.get_mut("result")) {
                    redact::redact_result(m, r);
                }
                redact::redact_keys(&mut v);
                t(Direction::Received, &v.to_string());
            }
            Err(_) => t(Direction::Received, text),
        }
    }

    /// Hand a reply to its waiting call (which may have timed out and gone; that is fine).
    fn reply(&self, id: Option<u64>, text: &str, outcome: impl FnOnce(&str) -> Reply) {
        let pending = id.and_then(|id| self.lock_pending().remove(&id));
        self.trace_received(text, pending.as_ref().map(|p| p.method.as_str()));
        if let Some(p) = pending {
            let _ = p.reply.send(outcome(&p.method));
        }
    }

    fn on_text(&self, text: &str) {
        match self.dialect {
            Dialect::JsonRpc => self.on_jsonrpc(text),
            Dialect::Legacy => self.on_legacy(text),
        }
    }

    fn on_jsonrpc(&self, text: &str) {
        if self.reply_as_text(text) {
            return;
        }
        match Incoming::parse(text) {
            Ok(Incoming::Response(response)) => self.reply(response.id.as_u64(), text, |method| {
                response
                    .outcome
                    .map(Payload::Parsed)
                    .map_err(|e| Box::new(ServerError::from_object(method, e)))
            }),
            Ok(Incoming::Notification(note)) => {
                self.trace_received(text, None);
                self.lock_router().dispatch(note);
            }
            Ok(Incoming::Unknown(_)) | Err(_) => self.trace_received(text, None),
        }
    }

    /// Hand a result over as its JSON text when the frame is a result for a call that asked
    /// for it (a cheap check first: the frame must have a `result` member at all); `false`
    /// when this is not such a frame.
    fn reply_as_text(&self, frame: &str) -> bool {
        if !frame.contains("\"result\"") {
            return false;
        }
        let wanted = |id| self.lock_pending().get(&id).is_some_and(|p| p.text);
        match serde_json::from_str::<ResultText<'_>>(frame) {
            Ok(reply) if wanted(reply.id) => {
                let result = reply.result.get().to_owned();
                self.reply(Some(reply.id), frame, |_| Ok(Payload::Text(result)));
                true
            }
            _ => false,
        }
    }

    fn on_legacy(&self, text: &str) {
        let msg = match ServerMessage::parse(text) {
            Ok(m) => m,
            Err(_) => return self.trace_received(text, None),
        };
        let id_of = |v: &Value| v.as_str().and_then(|s| s.parse::<u64>().ok());
        match msg {
            ServerMessage::Result { id, outcome } => self.reply(id_of(&id), text, |method| {
                outcome
                    .map(Payload::Parsed)
                    .map_err(|e| Box::new(ServerError::from_legacy(method, e)))
            }),
            ServerMessage::Ready { subs } => {
                self.trace_received(text, None);
                for sub in subs {
                    if let Some(p) = id_of(&sub).and_then(|id| self.lock_pending().remove(&id)) {
                        let _ = p.reply.send(Ok(Payload::Parsed(sub)));
                    }
                }
            }
            ServerMessage::Event(update) => {
                self.trace_received(text, None);
                self.lock_router()
                    .dispatch(Notification::CollectionUpdate(update));
            }
            ServerMessage::NoSub {
                collection,
                id,
                error,
            } => {
                self.trace_received(text, None);
                let mut router = self.lock_router();
                let collection = collection.or_else(|| {
                    id.as_ref()
                        .and_then(Value::as_str)
                        .and_then(|id| router.name_of(id))
                });
                if let Some(collection) = collection {
                    router.dispatch(Notification::NotifyUnsubscribed {
                        collection,
                        error: error.map(|e| e.into_error_data()),
                    });
                }
            }
            ServerMessage::Connected { .. } => {
                self.trace_received(text, None);
                self.finish_handshake(Ok(()));
            }
            ServerMessage::Failed { version } => {
                self.trace_received(text, None);
                self.finish_handshake(Err(version));
            }
            ServerMessage::Pong { .. } | ServerMessage::Unknown(_) => {
                self.trace_received(text, None)
            }
        }
    }

    fn finish_handshake(&self, outcome: Handshake) {
        let waiter = self
            .handshake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(tx) = waiter {
            let _ = tx.send(outcome);
        }
    }

    fn on_end(&self, code: Option<u16>, reason: String) {
        {
            let mut ended = self.ended.lock().unwrap_or_else(|p| p.into_inner());
            if ended.is_some() {
                return;
            }
            *ended = Some(Ended {
                code,
                reason: reason.clone(),
            });
        }
        if let Some(t) = &self.tracer {
            let line = match code {
                Some(c) => format!("close {c} {reason:?}"),
                None => "connection lost".to_owned(),
            };
            t(Direction::Received, &line);
        }
        // Dropping the senders wakes every waiting call (and the handshake) with the close error.
        self.lock_pending().clear();
        self.handshake
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if self.close_subscribers_on_end {
            let err = || Error::closed(code, &reason, &self.url);
            self.lock_router().close_all(err);
        }
        self.slots.close();
        self.ended_signal.notify_waiters();
        self.ended_flag.send_replace(true);
    }

    /// Close the connection politely: send a normal close and wait (briefly) for the server to
    /// answer it, so nothing is left half-open.
    pub(crate) async fn close(&self) {
        let ended = self.ended_signal.notified();
        tokio::pin!(ended);
        ended.as_mut().enable();
        if !self.is_open() {
            return;
        }
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        if self.out.send(Message::Close(Some(frame))).await.is_ok() {
            let _ = tokio::time::timeout(CLOSE_GRACE, ended).await;
        }
    }
}

async fn writer(
    mut sink: futures_util::stream::SplitSink<Socket, Message>,
    mut out: mpsc::Receiver<Message>,
    keepalive: Option<Duration>,
    last_rx: Arc<Mutex<Instant>>,
    conn: std::sync::Weak<Connection>,
) {
    let period = keepalive.unwrap_or(Duration::from_secs(3600));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    loop {
        tokio::select! {
            msg = out.recv() => {
                let Some(msg) = msg else { break };
                let closing = matches!(msg, Message::Close(_));
                if sink.send(msg).await.is_err() || closing {
                    break;
                }
            }
            _ = ticker.tick(), if keepalive.is_some() => {
                let silent_for = last_rx.lock().map(|t| t.elapsed()).unwrap_or_default();
                if silent_for > period * 3 {
                    if let Some(c) = conn.upgrade() {
                        c.on_end(None, format!("no answer to keepalive pings for {}s", silent_for.as_secs()));
                    }
                    break;
                }
                if sink.send(Message::Ping(Vec::new().into())).await.is_err() {
                    break;
                }
            }
        }
    }
    let _ = sink.close().await;
}

async fn reader(
    mut stream: futures_util::stream::SplitStream<Socket>,
    conn: std::sync::Weak<Connection>,
    last_rx: Arc<Mutex<Instant>>,
) {
    let mut close: Option<(Option<u16>, String)> = None;
    while let Some(item) = stream.next().await {
        if let Ok(mut t) = last_rx.lock() {
            *t = Instant::now();
        }
        let Some(c) = conn.upgrade() else { return };
        match item {
            Ok(Message::Text(text)) => c.on_text(text.as_str()),
            Ok(Message::Binary(bytes)) => {
                if let Ok(text) = std::str::from_utf8(&bytes) {
                    c.on_text(text);
                }
            }
            Ok(Message::Close(frame)) => {
                close = Some(match frame {
                    Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                    None => (None, String::new()),
                });
            }
            Ok(_) => {}
            Err(e) => {
                if close.is_none() {
                    close = Some((None, e.to_string()));
                }
                break;
            }
        }
    }
    if let Some(c) = conn.upgrade() {
        let (code, reason) = close.unwrap_or((None, String::new()));
        c.on_end(code, reason);
    }
}
