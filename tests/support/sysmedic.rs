//! A small SysMedic-protocol server for the tests of the `ws` module and
//! `scripts/sysmedic-watch.rhai`: `ws://127.0.0.1:PORT/ws?secret=SECRET` (a wrong secret gets
//! HTTP 401 at the upgrade), `GET /health`, every message `{type, data, timestamp}`.
//!
//! Two behaviours, as the agent is documented and as it is released:
//! - `Documented`: `welcome`, `system_update` every `interval` with an ISO timestamp, `alert`
//!   broadcasts, requests `{type, request_id, data?}` answered with the same `request_id`
//!   (`system_info_response`, `alerts_response`, `user_metrics_response`, `config_response`,
//!   `pong`, or `error` with `data.error`), each reply preceded by a `system_update` broadcast so
//!   replies and broadcasts interleave; rotating the secret closes every client (close frame).
//! - `Released`: `welcome` then `config` (the whole configuration as YAML text, secret
//!   included), updates with a Unix-integer timestamp and alerts only in their top-level
//!   `alerts` field, no replies at all, frames over 512 bytes closed with 1009, and a rotation
//!   drops clients without a close frame and refuses connections for `gone`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavour {
    Documented,
    Released,
}

/// What the server pushes to every client.
#[derive(Debug, Clone)]
enum Push {
    Alert(Value),
    /// Rotation: documented clients get a close frame, released ones are dropped.
    Drop,
}

struct Inner {
    secret: Mutex<String>,
    pending_alerts: Mutex<Vec<Value>>,
    /// Until when connections are refused (a released agent restarting).
    gone_until: Mutex<Option<tokio::time::Instant>>,
    clients: AtomicU64,
    requests: AtomicU64,
}

pub struct SysMedic {
    pub port: u16,
    flavour: Flavour,
    inner: Arc<Inner>,
    push: broadcast::Sender<Push>,
    gone: Duration,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for SysMedic {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn now_iso() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0);
    midscript::protocol::ejson::iso8601_utc(secs)
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

impl SysMedic {
    /// Start on a free loopback port; updates every `interval`; a released agent is gone for
    /// `gone` after a rotation.
    pub async fn start(
        flavour: Flavour,
        secret: &str,
        interval: Duration,
        gone: Duration,
    ) -> SysMedic {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let inner = Arc::new(Inner {
            secret: Mutex::new(secret.to_owned()),
            pending_alerts: Mutex::new(Vec::new()),
            gone_until: Mutex::new(None),
            clients: AtomicU64::new(0),
            requests: AtomicU64::new(0),
        });
        let (push, _) = broadcast::channel(64);
        let (i, p) = (inner.clone(), push.clone());
        let task = tokio::spawn(async move {
            let mut n = 0u64;
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                n += 1;
                let (i, p) = (i.clone(), p.clone());
                tokio::spawn(serve(stream, flavour, i, p, interval, n));
            }
        });
        SysMedic {
            port,
            flavour,
            inner,
            push,
            gone,
            task,
        }
    }

    pub fn url(&self, secret: &str) -> String {
        format!("ws://127.0.0.1:{}/ws?secret={secret}", self.port)
    }

    /// Raise an alert: a broadcast (documented) or the next update's `alerts` (released).
    pub fn alert(&self, cause: &str) {
        let data = json!({
            "status": "critical",
            "primary_cause": cause,
            "recommendations": ["Check the process list", "Free some memory"],
            "cpu_usage": 97.5,
        });
        match self.flavour {
            Flavour::Documented => {
                let _ = self.push.send(Push::Alert(data));
            }
            Flavour::Released => self.inner.pending_alerts.lock().unwrap().push(data),
        }
    }

    /// Rotate the secret: every client is disconnected (a released agent is also gone for a
    /// while, like a restart).
    pub fn rotate(&self, secret: &str) {
        *self.inner.secret.lock().unwrap() = secret.to_owned();
        if self.flavour == Flavour::Released {
            *self.inner.gone_until.lock().unwrap() = Some(tokio::time::Instant::now() + self.gone);
        }
        let _ = self.push.send(Push::Drop);
    }

    /// How many upgrades were accepted so far.
    pub fn clients(&self) -> u64 {
        self.inner.clients.load(Ordering::SeqCst)
    }

    /// How many requests were received so far.
    pub fn requests(&self) -> u64 {
        self.inner.requests.load(Ordering::SeqCst)
    }
}

fn envelope(flavour: Flavour, ty: &str, data: Value) -> Value {
    let ts = match flavour {
        Flavour::Documented => Value::from(now_iso()),
        Flavour::Released => Value::from(now_unix()),
    };
    json!({"type": ty, "data": data, "timestamp": ts})
}

fn update(flavour: Flavour, n: u64, alerts: Vec<Value>) -> Value {
    let mut v = envelope(
        flavour,
        "system_update",
        json!({"cpu_usage": 10.0 + (n % 7) as f64, "memory_usage": 41.5, "disk_usage": 62.0, "uptime": 3600 + n}),
    );
    if flavour == Flavour::Released {
        v["alerts"] = Value::Array(alerts);
    }
    v
}

async fn http(mut stream: TcpStream, status: &str, body: &str) {
    let resp = format!(
        "HTTP/1.1 {status}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = stream.write_all(resp.as_bytes()).await;
    let _ = stream.shutdown().await;
}

async fn serve(
    stream: TcpStream,
    flavour: Flavour,
    inner: Arc<Inner>,
    push: broadcast::Sender<Push>,
    interval: Duration,
    conn: u64,
) {
    let gone = inner
        .gone_until
        .lock()
        .unwrap()
        .is_some_and(|t| tokio::time::Instant::now() < t);
    if gone {
        return; // not listening: the connection just ends
    }
    // Peek at the request line to route /health and check the secret before the upgrade.
    let mut buf = vec![0u8; 2048];
    let head = loop {
        let Ok(n) = stream.peek(&mut buf).await else {
            return;
        };
        let text = String::from_utf8_lossy(&buf[..n]).into_owned();
        if text.contains("\r\n\r\n") || n == buf.len() {
            break text;
        }
        if n == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let target = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
    if target == "/health" {
        let body = json!({"status": "healthy", "running": true, "clients": inner.clients.load(Ordering::SeqCst),
                          "port": 8060, "hostname": "testhost", "has_secret": true});
        return http(stream, "200 OK", &body.to_string()).await;
    }
    let secret = inner.secret.lock().unwrap().clone();
    let given = target
        .split_once('?')
        .and_then(|(_, q)| q.split('&').find_map(|kv| kv.strip_prefix("secret=")))
        .unwrap_or("");
    if !target.starts_with("/ws") {
        return http(stream, "404 Not Found", r#"{"error":"not found"}"#).await;
    }
    if given != secret {
        return http(stream, "401 Unauthorized", r#"{"error":"invalid secret"}"#).await;
    }
    let mut pushes = push.subscribe();
    let Ok(ws) = tokio_tungstenite::accept_async(stream).await else {
        return;
    };
    inner.clients.fetch_add(1, Ordering::SeqCst);
    let (mut tx, mut rx) = ws.split();
    let send = |v: Value| Message::text(v.to_string());
    if tx
        .send(send(envelope(
            flavour,
            "welcome",
            json!({"message": "Connected to SysMedic", "client_id": conn}),
        )))
        .await
        .is_err()
    {
        return;
    }
    if flavour == Flavour::Released {
        let yaml = format!("server:\n  port: 8060\n  secret: {secret}\nthresholds:\n  cpu: 90\n");
        let _ = tx
            .send(send(envelope(flavour, "config", Value::String(yaml))))
            .await;
    }
    let mut tick = tokio::time::interval(interval);
    tick.tick().await;
    let mut n = 0u64;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                n += 1;
                let alerts = std::mem::take(&mut *inner.pending_alerts.lock().unwrap());
                if tx.send(send(update(flavour, n, alerts))).await.is_err() {
                    return;
                }
            }
            p = pushes.recv() => match p {
                Ok(Push::Alert(data)) => {
                    if tx.send(send(envelope(flavour, "alert", data))).await.is_err() {
                        return;
                    }
                }
                Ok(Push::Drop) => {
                    if flavour == Flavour::Documented {
                        let _ = tx.send(Message::Close(Some(CloseFrame {
                            code: CloseCode::Policy,
                            reason: "secret rotated".into(),
                        }))).await;
                    }
                    // Released: the socket just drops, no close frame.
                    return;
                }
                Err(_) => {}
            },
            m = rx.next() => {
                let text = match m {
                    Some(Ok(Message::Text(t))) => t.to_string(),
                    Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return,
                    Some(Ok(_)) => continue,
                };
                if flavour == Flavour::Released && text.len() > 512 {
                    // The released agent closes frames over 512 bytes with 1009.
                    let _ = tx.send(Message::Close(Some(CloseFrame {
                        code: CloseCode::Size,
                        reason: "message too big".into(),
                    }))).await;
                    return;
                }
                inner.requests.fetch_add(1, Ordering::SeqCst);
                if flavour == Flavour::Released {
                    continue; // the released agent answers nothing
                }
                let Ok(req) = serde_json::from_str::<Value>(&text) else { continue };
                let id = req.get("request_id").cloned().unwrap_or(Value::Null);
                let (ty, data) = match req["type"].as_str().unwrap_or("") {
                    "ping" => ("pong", json!({})),
                    "get_system_info" => ("system_info_response", json!({"hostname": "testhost", "os": "Linux", "cpu_count": 4})),
                    "get_alerts" => ("alerts_response", json!({"alerts": []})),
                    "get_user_metrics" => ("user_metrics_response", json!({"users": [{"name": "alice", "cpu": 3.5}]})),
                    "get_config" => ("config_response", json!({"server": {"port": 8060, "secret": "********"}})),
                    other => ("error", json!({"error": format!("Unknown request type: {other}")})),
                };
                // A broadcast between request and reply.
                n += 1;
                if tx.send(send(update(flavour, n, Vec::new()))).await.is_err() {
                    return;
                }
                let mut reply = envelope(flavour, ty, data);
                reply["request_id"] = id;
                if tx.send(send(reply)).await.is_err() {
                    return;
                }
            }
        }
    }
}
