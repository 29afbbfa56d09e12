//! Listener, TLS, HTTP routing, WebSocket framing, size limits and close codes
//! (`docs/middleware.md` §1.1, §1.3, §3.3, §3.4, §3.6).
//!
//! The HTTP request head is read here (not by tungstenite) so that `GET /api/versions` can be
//! answered and unknown paths get a real HTTP 404 before any upgrade; WebSocket paths then get
//! a `101` and the stream is handed to tungstenite. `/websocket` speaks the legacy DDP framing
//! (`ddp.rs`, every profile); the `/api` routes JSON-RPC (`rpc.rs`, not on 24.10, where they
//! are HTTP 404). Both framings start calls through [`start_call`], so the concurrency limit,
//! dispatch and the 1011 on a handler crash are shared.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::{Role, WebSocketConfig};
use tokio_util::sync::CancellationToken;

use super::dispatch::{self, Ctx};
use super::error::MockError;
use super::rpc::{self, Inbound};
use super::state::{Conn, Framing, MessageFault, Outbound, Shared, lock};
use super::transcript::{TranscriptEvent, client_frame_text};
use super::{ServerVersion, ddp};
use crate::protocol::Response;

/// Close reasons (§3.4).
const BINARY_REASON: &str = "Invalid websocket message type: <WSMsgType.BINARY: 2>";
const ANON_TOO_BIG: &str = "Anonymous connection max message length is 8 kB";
const AUTH_TOO_BIG: &str = "Max message length is 64 kB";
/// Limits in characters of the decoded text (`docs/middleware.md` §3.3).
const ANON_LIMIT: usize = 8192;
const AUTH_LIMIT: usize = 65536;
/// Messages of these methods may be up to [`EXTENDED_LIMIT`] characters after login.
const EXTENDED_METHODS: &[&str] = &["filesystem.file_receive", "failover.datastore.sql"];
const EXTENDED_LIMIT: usize = 2 * 1024 * 1024;
/// What tungstenite accepts at all; bigger frames close 1009/1007 too.
const WIRE_LIMIT: usize = 4 * 1024 * 1024;

/// The self-signed certificate and rustls config of a `wss://` mock.
pub(crate) struct TlsMaterial {
    pub cert_der: Vec<u8>,
    pub fingerprint: String,
    acceptor: tokio_rustls::TlsAcceptor,
}

fn io_err(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

impl TlsMaterial {
    /// Generate a certificate for `hostname`, `localhost` and `127.0.0.1` (rcgen, ECDSA P-256).
    pub fn generate(hostname: &str) -> std::io::Result<TlsMaterial> {
        use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
        let mut names = vec![
            hostname.to_owned(),
            "localhost".to_owned(),
            "127.0.0.1".to_owned(),
        ];
        names.dedup();
        let ck = rcgen::generate_simple_self_signed(names).map_err(io_err)?;
        let cert_der = ck.cert.der().to_vec();
        let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(io_err)?
            .with_no_client_auth()
            .with_single_cert(vec![CertificateDer::from(cert_der.clone())], key)
            .map_err(io_err)?;
        let digest = ring::digest::digest(&ring::digest::SHA256, &cert_der);
        let fingerprint = digest
            .as_ref()
            .iter()
            .map(|b| format!("{b:02X}"))
            .collect::<Vec<_>>()
            .join(":");
        Ok(TlsMaterial {
            cert_der,
            fingerprint,
            acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(config)),
        })
    }
}

/// Accept connections until `stop`.
pub(crate) async fn serve(listener: TcpListener, shared: Arc<Shared>, stop: CancellationToken) {
    let mut listener = listener;
    let mut tasks = JoinSet::new();
    loop {
        tokio::select! {
            _ = stop.cancelled() => break,
            _ = shared.faults.restart.notified() => {
                match restart(listener, &shared, &stop).await {
                    Some(l) => listener = l,
                    None => break,
                }
            }
            accepted = listener.accept() => {
                let Ok((tcp, peer)) = accepted else { continue };
                let _ = tcp.set_nodelay(true);
                tasks.spawn(connection(tcp, peer, shared.clone(), stop.clone()));
            }
            Some(_) = tasks.join_next(), if !tasks.is_empty() => {}
        }
    }
    for conn in shared.connections() {
        conn.close(1001, "Server is shutting down");
    }
    let drain = async { while tasks.join_next().await.is_some() {} };
    if tokio::time::timeout(Duration::from_secs(2), drain)
        .await
        .is_err()
    {
        tasks.abort_all();
    }
}

/// A restart (an injected fault): drop every connection, close the port for the downtime,
/// then listen on the same address again. `None` when stopped meanwhile or the address cannot
/// be bound again.
async fn restart(
    listener: TcpListener,
    shared: &Shared,
    stop: &CancellationToken,
) -> Option<TcpListener> {
    let addr = listener.local_addr().ok()?;
    drop(listener);
    for conn in shared.connections() {
        conn.drop_abruptly();
    }
    tokio::select! {
        _ = tokio::time::sleep(shared.config.faults.restart_downtime) => {}
        _ = stop.cancelled() => return None,
    }
    for _ in 0..50 {
        match TcpListener::bind(addr).await {
            Ok(l) => return Some(l),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    None
}

async fn connection(
    tcp: TcpStream,
    peer: SocketAddr,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    match &shared.tls {
        Some(tls) => {
            let Ok(Ok(stream)) =
                tokio::time::timeout(Duration::from_secs(10), tls.acceptor.accept(tcp)).await
            else {
                return;
            };
            http(stream, peer, true, shared, stop).await;
        }
        None => http(tcp, peer, false, shared, stop).await,
    }
}

/// The parsed request head.
struct Head {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Read the request line and headers (at most 16 KiB in all).
async fn read_head<S: AsyncRead + Unpin>(r: &mut BufReader<S>) -> Option<Head> {
    let mut r = r.take(16 * 1024);
    let mut line = String::new();
    r.read_line(&mut line).await.ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let target = parts.next()?;
    let path = target.split('?').next().unwrap_or(target).to_owned();
    let mut headers = Vec::new();
    for _ in 0..100 {
        let mut h = String::new();
        if r.read_line(&mut h).await.ok()? == 0 {
            return None;
        }
        let h = h.trim_end();
        if h.is_empty() {
            return Some(Head {
                method,
                path,
                headers,
            });
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
    None
}

async fn respond<S: AsyncWrite + Unpin>(s: &mut S, status: &str, ctype: &str, body: &str) {
    let text = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = s.write_all(text.as_bytes()).await;
    let _ = s.shutdown().await;
}

/// The framing of the WebSocket route `path` on this version, `None` for no route (HTTP 404).
/// 24.10 has only `/websocket`; later releases keep it next to the JSON-RPC routes.
fn ws_route(path: &str, version: ServerVersion) -> Option<Framing> {
    if path == "/websocket" {
        return Some(Framing::Ddp);
    }
    let jsonrpc = version.has_jsonrpc()
        && (path == "/api/current"
            || path == "/api/v24.10"
            || path
                .strip_prefix("/api/")
                .is_some_and(|v| version.api_versions().contains(&v)));
    jsonrpc.then_some(Framing::JsonRpc)
}

async fn http<S>(
    stream: S,
    peer: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut r = BufReader::new(stream);
    let Ok(Some(head)) = tokio::time::timeout(Duration::from_secs(10), read_head(&mut r)).await
    else {
        return;
    };
    let version = shared.config.version;
    if head.method == "GET" && head.path == "/api/versions" && version.has_jsonrpc() {
        let body = serde_json::to_string(&version.api_versions()).unwrap_or_default();
        return respond(&mut r, "200 OK", "application/json; charset=utf-8", &body).await;
    }
    if head.method == "GET" && head.path == "/api/boot_id" && version >= ServerVersion::V25_10 {
        let body = Value::from(shared.boot_id.clone()).to_string();
        return respond(&mut r, "200 OK", "application/json; charset=utf-8", &body).await;
    }
    let Some(framing) = ws_route(&head.path, version) else {
        return respond(
            &mut r,
            "404 Not Found",
            "text/plain; charset=utf-8",
            "404: Not Found",
        )
        .await;
    };
    let upgrade = head
        .header("upgrade")
        .is_some_and(|u| u.eq_ignore_ascii_case("websocket"));
    let key = head.header("sec-websocket-key").map(str::to_owned);
    let (true, Some(key), Some("13"), "GET") = (
        upgrade,
        key,
        head.header("sec-websocket-version"),
        head.method.as_str(),
    ) else {
        return respond(
            &mut r,
            "400 Bad Request",
            "text/plain; charset=utf-8",
            "No WebSocket UPGRADE hdr",
        )
        .await;
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    if r.write_all(reply.as_bytes()).await.is_err() || r.flush().await.is_err() {
        return;
    }
    let config = WebSocketConfig::default()
        .max_message_size(Some(WIRE_LIMIT))
        .max_frame_size(Some(WIRE_LIMIT))
        .max_write_buffer_size(64 * 1024 * 1024);
    let ws = WebSocketStream::from_raw_socket(r, Role::Server, Some(config)).await;
    session(ws, head.path, framing, peer, tls, shared, stop).await;
}

/// Cut a close reason to the 123 bytes a close frame allows.
fn close_reason(s: &str) -> String {
    let mut end = s.len().min(123);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    s[..end].to_owned()
}

async fn session<S>(
    ws: WebSocketStream<S>,
    path: String,
    framing: Framing,
    peer: SocketAddr,
    tls: bool,
    shared: Arc<Shared>,
    stop: CancellationToken,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sink, mut stream) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel();
    let id = shared.next_conn_id();
    let secure = tls || shared.config.plain_is_secure;
    let conn = Arc::new(Conn::new(id, framing, tx, secure, tls, peer.ip()));
    lock(&shared.conns).insert(id, conn.clone());
    shared.transcript.push(id, TranscriptEvent::Open { path });

    let writer = {
        let (shared, conn) = (shared.clone(), conn.clone());
        tokio::spawn(async move {
            let mut dropped = false;
            loop {
                let out = tokio::select! {
                    biased;
                    out = rx.recv() => out,
                    _ = conn.gone.cancelled() => None,
                };
                match out {
                    Some(Outbound::Frame { wire, log }) => {
                        shared
                            .transcript
                            .push(conn.id, TranscriptEvent::ServerFrame(log));
                        if sink.send(Message::text(wire)).await.is_err() {
                            break;
                        }
                    }
                    Some(Outbound::Close { code, reason }) => {
                        let reason = close_reason(&reason);
                        shared.transcript.push(
                            conn.id,
                            TranscriptEvent::Close {
                                by_server: true,
                                code: Some(code),
                                reason: reason.clone(),
                            },
                        );
                        let frame = CloseFrame {
                            code: code.into(),
                            reason: reason.into(),
                        };
                        let _ = sink.send(Message::Close(Some(frame))).await;
                        break;
                    }
                    Some(Outbound::Drop) => {
                        shared.transcript.push(
                            conn.id,
                            TranscriptEvent::Close {
                                by_server: true,
                                code: None,
                                reason: "dropped without a close frame (injected fault)".into(),
                            },
                        );
                        dropped = true;
                        break;
                    }
                    None => break,
                }
            }
            conn.gone.cancel();
            if !dropped {
                let _ = tokio::time::timeout(Duration::from_secs(1), sink.close()).await;
            }
        })
    };

    // Set when the server queued a close frame that the writer still has to send.
    let mut server_closing = false;
    loop {
        let frozen = conn.frozen.load(Ordering::SeqCst);
        let msg = tokio::select! {
            m = stream.next(), if !frozen => m,
            _ = conn.gone.cancelled() => break,
            _ = stop.cancelled() => {
                conn.close(1001, "Server is shutting down");
                server_closing = true;
                break;
            }
        };
        match msg {
            None => break,
            Some(Err(e)) => {
                use tokio_tungstenite::tungstenite::Error;
                if matches!(e, Error::Capacity(_)) {
                    too_big(&conn);
                    server_closing = true;
                }
                break;
            }
            Some(Ok(Message::Text(t))) => on_text(&shared, &conn, t.as_str()),
            Some(Ok(Message::Binary(b))) => {
                shared
                    .transcript
                    .push(id, TranscriptEvent::Binary { len: b.len() });
                conn.close(1003, BINARY_REASON);
            }
            Some(Ok(Message::Close(f))) => {
                let (code, reason) = match f {
                    Some(f) => (Some(u16::from(f.code)), f.reason.to_string()),
                    None => (None, String::new()),
                };
                shared.transcript.push(
                    id,
                    TranscriptEvent::Close {
                        by_server: false,
                        code,
                        reason,
                    },
                );
                break;
            }
            Some(Ok(_)) => {}
        }
    }
    if !server_closing {
        conn.gone.cancel();
    }
    // The writer ends after sending a queued close frame (or at once when `gone`).
    if tokio::time::timeout(Duration::from_secs(2), writer)
        .await
        .is_err()
    {
        conn.gone.cancel();
    }
    lock(&shared.conns).remove(&id);
    super::events::drop_all(&conn);
}

/// 1007 before login, 1009 after (§3.3).
fn too_big(conn: &Conn) {
    if conn.logged_in() {
        conn.close(1009, AUTH_TOO_BIG);
    } else {
        conn.close(1007, ANON_TOO_BIG);
    }
}

fn on_text(shared: &Arc<Shared>, conn: &Arc<Conn>, text: &str) {
    let parsed = serde_json::from_str::<Value>(text);
    shared.transcript.push(
        conn.id,
        TranscriptEvent::ClientFrame(client_frame_text(text, parsed.as_ref().ok())),
    );
    match shared.count_message() {
        MessageFault::None => {}
        MessageFault::Close1011 => {
            return conn.close(1011, "injected fault: closing after this many messages");
        }
        MessageFault::Freeze => return conn.frozen.store(true, Ordering::SeqCst),
        MessageFault::Restart => return shared.faults.restart.notify_one(),
    }
    let chars = text.chars().count();
    let limit = if conn.logged_in() {
        AUTH_LIMIT
    } else {
        ANON_LIMIT
    };
    // filesystem.file_receive and failover.datastore.sql may carry up to 2 MiB once logged in.
    let extended = conn.logged_in()
        && chars <= EXTENDED_LIMIT
        && parsed.as_ref().ok().is_some_and(|v| {
            v.get("method")
                .and_then(Value::as_str)
                .is_some_and(|m| EXTENDED_METHODS.contains(&m))
        });
    if chars > limit && !extended {
        too_big(conn);
        return;
    }
    match conn.framing {
        Framing::JsonRpc => match rpc::classify(text, parsed) {
            Inbound::Call { id, method, params } => start_call(shared, conn, id, method, params),
            Inbound::Reject(resp) => send_reply(conn, &resp, ""),
            Inbound::Ignore => {}
        },
        Framing::Ddp => ddp::on_message(shared, conn, text, parsed),
    }
}

/// Run one call of either framing: the concurrency limit (§3.6; ETOOMANYREFS on legacy,
/// §1.4), dispatch, the reply when `id` is given, and close 1011 when the handler crashes.
pub(crate) fn start_call(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    id: Option<Value>,
    method: String,
    params: Vec<Value>,
) {
    // §3.6: at most 20 in flight (10 running + 10 queued), then a refusal at once.
    if conn.in_flight.fetch_add(1, Ordering::SeqCst) >= 20 {
        conn.in_flight.fetch_sub(1, Ordering::SeqCst);
        if let Some(id) = id {
            match conn.framing {
                Framing::JsonRpc => send_reply(conn, &rpc::too_many_calls(id), &method),
                Framing::Ddp => ddp::too_many_calls(conn, id),
            }
        }
        return;
    }
    let ctx = Ctx::new(shared.clone(), conn.clone(), id.clone(), method.clone());
    let conn = conn.clone();
    let cancel_on_disconnect = shared.config.version >= ServerVersion::V26_0;
    let latency = shared.config.latency;
    tokio::spawn(async move {
        let permit = conn.running.clone().acquire_owned().await;
        let dispatched = dispatch::dispatch(ctx.clone(), params);
        let call = tokio::spawn(async move {
            if !latency.is_zero() {
                tokio::time::sleep(latency).await;
            }
            dispatched.await
        });
        let abort = call.abort_handle();
        let joined = tokio::select! {
            r = call => Some(r),
            // §1.3: 26.0+ cancels pending calls when the client goes away.
            _ = conn.gone.cancelled(), if cancel_on_disconnect => { abort.abort(); None }
        };
        drop(permit);
        match joined {
            Some(Ok(result)) => {
                if let Some(id) = id {
                    send_outcome(&conn, id, &method, result, ctx.version());
                }
            }
            Some(Err(join)) if join.is_panic() => {
                // §3.4: an unexpected exception while dispatching closes with 1011.
                let p = join.into_panic();
                let text = p
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| p.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "internal error".to_owned());
                conn.close(1011, text);
            }
            _ => {}
        }
        ctx.release();
        conn.in_flight.fetch_sub(1, Ordering::SeqCst);
    });
}

/// The reply to a call, in the connection's framing.
fn send_outcome(
    conn: &Conn,
    id: Value,
    method: &str,
    result: Result<Value, MockError>,
    version: ServerVersion,
) {
    match conn.framing {
        Framing::JsonRpc => {
            let resp = match result {
                Ok(v) => Response::ok(id, v),
                Err(e) => Response::err(id, e.to_error_object(method, version)),
            };
            send_reply(conn, &resp, method);
        }
        Framing::Ddp => ddp::send_result(
            conn,
            id,
            method,
            result.map_err(|e| e.to_legacy_error(method, version)),
        ),
    }
}

fn send_reply(conn: &Conn, resp: &Response, method: &str) {
    let (wire, log) = rpc::reply_frames(resp, method);
    conn.send(wire, log);
}
