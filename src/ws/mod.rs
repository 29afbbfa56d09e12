//! A generic WebSocket JSON client, for services that are not TrueNAS (the `ws` script module):
//! the same TLS trust as the middleware client (system roots, a pinned fingerprint, or trust on
//! first use decided by the caller), extra upgrade headers, request/reply correlation by an id
//! field, and secret redaction: values of secret-looking query parameters (`?secret=…`) and
//! headers never appear in errors or in [`Connection::url`].
//!
//! A reader task owns the socket's read half: a text frame that parses as JSON and carries the
//! id of a pending request completes that request; everything else (other JSON messages, text
//! that is not JSON, the close) queues up for [`Connection::next`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use serde_json::Value;
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::client::{Endpoint, TransportOptions, Trust, open_socket};
use crate::protocol::redact::{self, REDACTED};

/// How to connect.
#[derive(Debug, Clone)]
pub struct Options {
    /// Extra headers for the HTTP upgrade (e.g. `Authorization`).
    pub headers: Vec<(String, String)>,
    /// Certificate trust for `wss://`.
    pub trust: Trust,
    /// Give up connecting after this long.
    pub connect_timeout: Duration,
    /// The field [`Connection::request`] puts its correlation id in (default `request_id`).
    pub id_field: String,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            headers: Vec::new(),
            trust: Trust::System,
            connect_timeout: Duration::from_secs(10),
            id_field: "request_id".into(),
        }
    }
}

/// What can go wrong. Messages never contain the secrets of the URL or headers.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Could not connect: bad URL, network, TLS, or a refused upgrade (`HTTP 401 …`).
    #[error("{0}")]
    Connection(String),
    /// The connection is closed (by the peer, or lost).
    #[error("{0}")]
    Closed(String),
    /// No reply in time.
    #[error("{0}")]
    Timeout(String),
    /// A message that cannot be sent (not JSON-serialisable, or not an object for a request).
    #[error("{0}")]
    Invalid(String),
}

impl Error {
    /// The script-facing error kind: `connection`, `timeout` or `value`.
    pub fn kind(&self) -> &'static str {
        match self {
            Error::Connection(_) | Error::Closed(_) => "connection",
            Error::Timeout(_) => "timeout",
            Error::Invalid(_) => "value",
        }
    }
}

/// What the reader hands on.
#[derive(Debug, Clone, PartialEq)]
pub enum Incoming {
    /// A JSON message that no request was waiting for.
    Message(Value),
    /// A text frame that is not JSON.
    Text(String),
    /// The connection ended; the text says how (close code and reason, or the failure).
    Closed(String),
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Value>>>>;

/// One open connection.
#[derive(Debug)]
pub struct Connection {
    url: String,
    secrets: Arc<Vec<String>>,
    out: mpsc::UnboundedSender<Message>,
    inbox: tokio::sync::Mutex<mpsc::UnboundedReceiver<Incoming>>,
    pending: Pending,
    next_id: AtomicU64,
    id_field: String,
    closed: Mutex<Option<String>>,
}

/// Secret values to scrub: secret-looking query parameters and headers.
fn secrets_of(url: &str, headers: &[(String, String)]) -> Vec<String> {
    let mut out = Vec::new();
    if let Some((_, query)) = url.split_once('?') {
        for pair in query.split('&') {
            if let Some((k, v)) = pair.split_once('=')
                && (redact::looks_secret(k)
                    || k.eq_ignore_ascii_case("key")
                    || k.eq_ignore_ascii_case("auth"))
                && !v.is_empty()
            {
                out.push(v.to_owned());
            }
        }
    }
    for (k, v) in headers {
        if redact::looks_secret(k)
            || k.eq_ignore_ascii_case("authorization")
            || k.eq_ignore_ascii_case("cookie")
        {
            out.push(v.clone());
            // `Bearer X`: the token alone may show up too.
            if let Some((_, token)) = v.split_once(' ') {
                out.push(token.to_owned());
            }
        }
    }
    out.retain(|s| s.len() >= 3);
    // Longest first, so a secret that contains another is scrubbed whole.
    out.sort_by_key(|s| std::cmp::Reverse(s.len()));
    out
}

fn scrub(secrets: &[String], text: &str) -> String {
    let mut t = text.to_owned();
    for s in secrets {
        t = t.replace(s.as_str(), REDACTED);
    }
    t
}

fn close_text(frame: Option<&CloseFrame>) -> String {
    match frame {
        Some(f) if f.reason.is_empty() => format!("closed by the peer ({})", u16::from(f.code)),
        Some(f) => format!("closed by the peer ({}: {})", u16::from(f.code), f.reason),
        None => "closed by the peer (no close frame)".to_owned(),
    }
}

impl Connection {
    /// Connect to `url` (`ws://` or `wss://`).
    pub async fn connect(url: &str, options: &Options) -> Result<Connection, Error> {
        let secrets = Arc::new(secrets_of(url, &options.headers));
        let shown = scrub(&secrets, url);
        let fail = |e: crate::client::Error| Error::Connection(scrub(&secrets, &e.to_string()));
        let endpoint = Endpoint::parse(url).map_err(fail)?;
        let transport = TransportOptions {
            trust: options.trust.clone(),
            connect_timeout: options.connect_timeout,
            headers: options.headers.clone(),
            ..TransportOptions::default()
        };
        let opened = open_socket(&endpoint, &transport).await.map_err(fail)?;
        let (mut sink, mut stream) = opened.socket.split();
        let (out, mut out_rx) = mpsc::unbounded_channel::<Message>();
        let (in_tx, inbox) = mpsc::unbounded_channel();
        let pending: Pending = Arc::default();
        // Writer: sends until the channel closes, then closes the socket normally.
        tokio::spawn(async move {
            while let Some(m) = out_rx.recv().await {
                let last = matches!(m, Message::Close(_));
                if sink.send(m).await.is_err() || last {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let (p, scrub_secrets) = (pending.clone(), secrets.clone());
        tokio::spawn(async move {
            let end = loop {
                match stream.next().await {
                    Some(Ok(Message::Text(t))) => {
                        let text = t.as_str();
                        match serde_json::from_str::<Value>(text) {
                            Ok(v) => {
                                if let Some(tx) = take_waiter(&p, &v) {
                                    let _ = tx.send(v);
                                } else if in_tx.send(Incoming::Message(v)).is_err() {
                                    return;
                                }
                            }
                            Err(_) => {
                                if in_tx.send(Incoming::Text(text.to_owned())).is_err() {
                                    return;
                                }
                            }
                        }
                    }
                    Some(Ok(Message::Binary(b))) => {
                        if let Ok(v) = serde_json::from_slice::<Value>(&b) {
                            if let Some(tx) = take_waiter(&p, &v) {
                                let _ = tx.send(v);
                            } else if in_tx.send(Incoming::Message(v)).is_err() {
                                return;
                            }
                        }
                    }
                    Some(Ok(Message::Close(frame))) => break close_text(frame.as_ref()),
                    Some(Ok(_)) => {}
                    Some(Err(e)) => break scrub(&scrub_secrets, &format!("connection lost: {e}")),
                    None => break "connection lost".to_owned(),
                }
            };
            // Waiting requests fail at once: their senders drop here.
            p.lock().unwrap_or_else(|e| e.into_inner()).clear();
            let _ = in_tx.send(Incoming::Closed(end));
        });
        Ok(Connection {
            url: shown,
            secrets,
            out,
            inbox: tokio::sync::Mutex::new(inbox),
            pending,
            next_id: AtomicU64::new(0),
            id_field: options.id_field.clone(),
            closed: Mutex::new(None),
        })
    }

    /// The URL with its secrets redacted.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Why the connection ended, once [`Connection::next`] has seen it end.
    pub fn closed(&self) -> Option<String> {
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_closed(&self, why: &str) {
        self.closed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(|| why.to_owned());
    }

    /// Replace this connection's secrets in `text`.
    pub fn redact(&self, text: &str) -> String {
        scrub(&self.secrets, text)
    }

    /// Send one JSON message.
    pub fn send(&self, message: &Value) -> Result<(), Error> {
        if let Some(why) = self.closed() {
            return Err(Error::Closed(format!("{}: {why}", self.url)));
        }
        let text = serde_json::to_string(message).map_err(|e| Error::Invalid(e.to_string()))?;
        self.out
            .send(Message::text(text))
            .map_err(|_| Error::Closed(format!("{}: the connection is closed", self.url)))
    }

    /// Send `message` (an object) with a fresh id in the id field, unless it has one; returns
    /// the id and where its reply will arrive. The reply is taken out of the message flow.
    pub fn start_request(
        &self,
        mut message: Value,
    ) -> Result<(String, oneshot::Receiver<Value>), Error> {
        let obj = message
            .as_object_mut()
            .ok_or_else(|| Error::Invalid("a request must be a map".into()))?;
        let id = match obj.get(&self.id_field) {
            Some(Value::String(s)) => s.clone(),
            Some(v) if !v.is_null() => v.to_string(),
            _ => {
                let n = self.next_id.fetch_add(1, Ordering::Relaxed) + 1;
                let id = format!("midscript-{n}");
                obj.insert(self.id_field.clone(), Value::String(id.clone()));
                id
            }
        };
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pending_key(&self.id_field, &id), tx);
        if let Err(e) = self.send(&message) {
            self.forget(&id);
            return Err(e);
        }
        Ok((id, rx))
    }

    /// Stop waiting for the reply to `id` (after a timeout); a late reply then flows as an
    /// ordinary message.
    pub fn forget(&self, id: &str) {
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&pending_key(&self.id_field, id));
    }

    /// The next message; [`Incoming::Closed`] once (then `None`).
    pub async fn next(&self) -> Option<Incoming> {
        if self.closed().is_some() {
            return None;
        }
        let item = self.inbox.lock().await.recv().await;
        match &item {
            Some(Incoming::Closed(why)) => self.set_closed(why),
            None => self.set_closed("connection lost"),
            _ => {}
        }
        item
    }

    /// Close normally (1000).
    pub fn close(&self) {
        if self.closed().is_none() {
            let _ = self.out.send(Message::Close(Some(CloseFrame {
                code: CloseCode::Normal,
                reason: "".into(),
            })));
            self.set_closed("closed by this script");
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.close();
    }
}

/// The key a pending request is filed under: the id field and the id's text.
fn pending_key(field: &str, id: &str) -> String {
    format!("{field}\u{0}{id}")
}

/// The waiter for a message's id, if a request waits for it. Every id field in use is tried
/// (there is one per connection).
fn take_waiter(pending: &Pending, v: &Value) -> Option<oneshot::Sender<Value>> {
    let obj = v.as_object()?;
    let mut map = pending.lock().unwrap_or_else(|e| e.into_inner());
    let key = map.keys().find(|k| {
        let (field, id) = k.split_once('\u{0}').unwrap_or_default();
        match obj.get(field) {
            Some(Value::String(s)) => s == id,
            Some(other) if !other.is_null() => *other.to_string() == *id,
            _ => false,
        }
    })?;
    let key = key.clone();
    map.remove(&key)
}
