//! The connection core: one writer task, one reader task, replies matched to calls by id.
//!
//! - Ids are integers from 1, so transcripts are deterministic.
//! - Replies may come out of order, with notifications in between (`protocol.md` §1.3).
//! - At most `max_in_flight` calls are outstanding; more wait here, so the server never has to
//!   answer -32000 (`protocol.md` §3.6: 10 run, 10 more queue, the 21st is refused).
//! - Messages the server would answer by closing the socket (`protocol.md` §3.3) are refused
//!   before they are sent.
//! - A silent peer is detected with WebSocket pings, which the server answers without involving
//!   the middleware (and which the rate limiter never sees, `protocol.md` §3.4).

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

use super::error::{Error, Result, ServerError};
use super::events::Router;
use super::transport::Socket;
use crate::protocol::{ErrorObject, Incoming, Request, redact};

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

/// Message size limits (`protocol.md` §3.3), counted in characters.
const MAX_ANONYMOUS_CHARS: usize = 8192;
const MAX_AUTHENTICATED_CHARS: usize = 65536;
const MAX_EXEMPT_CHARS: usize = 2 * 1024 * 1024;
const SIZE_EXEMPT_METHODS: &[&str] = &["filesystem.file_receive", "failover.datastore.sql"];

type Reply = std::result::Result<Value, ErrorObject>;

struct Pending {
    method: String,
    reply: oneshot::Sender<Reply>,
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

/// One live connection. Shared by every handle of a [`super::Client`].
pub(crate) struct Connection {
    pub(crate) url: String,
    out: mpsc::Sender<Message>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_id: AtomicU64,
    slots: Arc<Semaphore>,
    authenticated: AtomicBool,
    ended: Mutex<Option<Ended>>,
    pub(crate) router: Mutex<Router>,
    /// Serialises the one-time `core.get_jobs` subscription.
    pub(crate) jobs_gate: tokio::sync::Mutex<()>,
    tracer: Option<Tracer>,
    pub(crate) options: RpcOptions,
}

impl Connection {
    /// Start the reader and writer tasks on the current tokio runtime.
    pub(crate) fn start(
        url: String,
        socket: Socket,
        options: RpcOptions,
        tracer: Option<Tracer>,
    ) -> Arc<Connection> {
        let (sink, stream) = socket.split();
        let (out, out_rx) = mpsc::channel(256);
        let conn = Arc::new(Connection {
            url,
            out,
            pending: Mutex::new(HashMap::new()),
            next_id: AtomicU64::new(1),
            slots: Arc::new(Semaphore::new(options.max_in_flight.max(1))),
            authenticated: AtomicBool::new(false),
            ended: Mutex::new(None),
            router: Mutex::new(Router::default()),
            jobs_gate: tokio::sync::Mutex::new(()),
            tracer,
            options,
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

    /// Call `method` and wait for its reply.
    pub(crate) async fn call(
        &self,
        method: &str,
        params: Vec<Value>,
        timeout: Option<Duration>,
    ) -> Result<Value> {
        if let Some(e) = self.ended_error() {
            return Err(e);
        }
        let timeout = timeout.unwrap_or(self.options.call_timeout);
        let _slot = self
            .slots
            .clone()
            .acquire_owned()
            .await
            .map_err(|_| Error::Cancelled)?;
        let id = self.next_id.fetch_add(1, Ordering::SeqCst);
        let request = Request::new(id, method, params);
        let text = request.to_text();
        self.check_size(method, &text)?;
        let (tx, rx) = oneshot::channel();
        self.lock_pending().insert(
            id,
            Pending {
                method: method.to_owned(),
                reply: tx,
            },
        );
        self.trace_request(request);
        if self.out.send(Message::text(text)).await.is_err() {
            self.lock_pending().remove(&id);
            return Err(self
                .ended_error()
                .unwrap_or_else(|| Error::closed(None, "", &self.url)));
        }
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(Ok(value))) => Ok(value),
            Ok(Ok(Err(e))) => Err(Error::Server(ServerError::from_object(method, e))),
            Ok(Err(_)) => Err(self
                .ended_error()
                .unwrap_or_else(|| Error::closed(None, "", &self.url))),
            Err(_) => {
                self.lock_pending().remove(&id);
                Err(Error::Timeout {
                    method: method.to_owned(),
                    after: timeout,
                })
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

    fn trace_request(&self, mut request: Request) {
        if let Some(t) = &self.tracer {
            redact::redact_params(&request.method, &mut request.params);
            t(Direction::Sent, &request.to_text());
        }
    }

    fn trace_received(&self, incoming: &Incoming, text: &str, method: Option<&str>) {
        let Some(t) = &self.tracer else { return };
        match (incoming, method) {
            (Incoming::Response(r), Some(m)) => {
                let mut r = r.clone();
                if let Ok(v) = &mut r.outcome {
                    redact::redact_result(m, v);
                }
                t(Direction::Received, &r.to_text());
            }
            _ => match serde_json::from_str::<Value>(text) {
                Ok(mut v) => {
                    redact::redact_keys(&mut v);
                    t(Direction::Received, &v.to_string());
                }
                Err(_) => t(Direction::Received, text),
            },
        }
    }

    fn on_text(&self, text: &str) {
        let incoming = match Incoming::parse(text) {
            Ok(i) => i,
            Err(_) => {
                if let Some(t) = &self.tracer {
                    t(Direction::Received, text);
                }
                return;
            }
        };
        match incoming {
            Incoming::Response(response) => {
                let id = response.id.as_u64();
                let pending = id.and_then(|id| self.lock_pending().remove(&id));
                self.trace_received(
                    &Incoming::Response(response.clone()),
                    text,
                    pending.as_ref().map(|p| p.method.as_str()),
                );
                if let Some(p) = pending {
                    // The caller may have timed out and gone; that is fine.
                    let _ = p.reply.send(response.outcome);
                }
            }
            Incoming::Notification(note) => {
                self.trace_received(&Incoming::Notification(note.clone()), text, None);
                self.lock_router().dispatch(note);
            }
            other @ Incoming::Unknown(_) => self.trace_received(&other, text, None),
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
        // Dropping the senders wakes every waiting call with the close error.
        self.lock_pending().clear();
        let err = || Error::closed(code, &reason, &self.url);
        self.lock_router().close_all(err);
        self.slots.close();
    }

    /// Close the connection politely.
    pub(crate) async fn close(&self) {
        let frame = CloseFrame {
            code: CloseCode::Normal,
            reason: "".into(),
        };
        let _ = self.out.send(Message::Close(Some(frame))).await;
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
