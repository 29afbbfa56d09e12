//! The mock's record of every frame, in wire order, with secrets redacted.
//!
//! Both directions of every connection are appended under one lock at the moment a frame is
//! read or written, so the order is total. Client frames go through
//! [`redact_request_frame`](crate::protocol::redact::redact_request_frame); replies through
//! [`redact_result`](crate::protocol::redact::redact_result) (the caller knows the method).

use std::fmt;
use std::sync::Mutex;

use serde_json::Value;

use crate::protocol::redact;

/// A snapshot of the transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Transcript {
    /// Every event, oldest first.
    pub lines: Vec<TranscriptLine>,
}

/// One event of one connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TranscriptLine {
    /// Connection number: 1, 2, 3… per accepted WebSocket connection.
    pub conn: u64,
    /// What happened.
    pub event: TranscriptEvent,
}

/// What happened on a connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TranscriptEvent {
    /// The WebSocket handshake completed on `path`.
    Open {
        /// Request path, e.g. `/api/current`.
        path: String,
    },
    /// A text frame from the client: compact JSON after redaction, or (when it is not JSON)
    /// the raw text truncated to 200 characters.
    ClientFrame(String),
    /// A text frame from the server (compact JSON, redacted).
    ServerFrame(String),
    /// The connection closed.
    Close {
        /// Whether the server sent the close frame.
        by_server: bool,
        /// Close code, if any.
        code: Option<u16>,
        /// Close reason.
        reason: String,
    },
    /// A binary frame from the client.
    Binary {
        /// Its length in bytes.
        len: usize,
    },
}

impl Transcript {
    /// Only the lines of one connection.
    pub fn for_conn(&self, conn: u64) -> Transcript {
        Transcript {
            lines: self
                .lines
                .iter()
                .filter(|l| l.conn == conn)
                .cloned()
                .collect(),
        }
    }

    /// Does any frame text contain `needle`?
    pub fn contains(&self, needle: &str) -> bool {
        self.to_string().contains(needle)
    }
}

impl fmt::Display for TranscriptLine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let c = self.conn;
        match &self.event {
            TranscriptEvent::Open { path } => write!(f, "c{c} open {path}"),
            TranscriptEvent::ClientFrame(t) => write!(f, "c{c} -> {t}"),
            TranscriptEvent::ServerFrame(t) => write!(f, "c{c} <- {t}"),
            TranscriptEvent::Close {
                by_server,
                code,
                reason,
            } => {
                let who = if *by_server { "server" } else { "client" };
                match code {
                    Some(code) => write!(f, "c{c} close by {who} {code} {reason:?}"),
                    None if reason.is_empty() => write!(f, "c{c} close by {who}"),
                    None => write!(f, "c{c} close by {who}: {reason}"),
                }
            }
            TranscriptEvent::Binary { len } => write!(f, "c{c} binary {len} bytes"),
        }
    }
}

impl fmt::Display for Transcript {
    /// One line per event: `c1 open /api/current`, `c1 -> {…}`, `c1 <- {…}`,
    /// `c1 close by server 1009 "Max message length is 64 kB"`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for line in &self.lines {
            writeln!(f, "{line}")?;
        }
        Ok(())
    }
}

/// The shared, lock-protected log.
#[derive(Debug, Default)]
pub(crate) struct TranscriptLog {
    lines: Mutex<Vec<TranscriptLine>>,
    /// Off for a long-running standalone mock, whose log would otherwise grow without bound.
    enabled: bool,
}

impl TranscriptLog {
    /// A log that records (or, when `enabled` is false, drops) events.
    pub fn new(enabled: bool) -> TranscriptLog {
        TranscriptLog {
            lines: Mutex::default(),
            enabled,
        }
    }

    /// Append one event.
    pub fn push(&self, conn: u64, event: TranscriptEvent) {
        if !self.enabled {
            return;
        }
        if let Ok(mut l) = self.lines.lock() {
            l.push(TranscriptLine { conn, event });
        }
    }

    /// Copy everything.
    pub fn snapshot(&self) -> Transcript {
        Transcript {
            lines: self.lines.lock().map(|l| l.clone()).unwrap_or_default(),
        }
    }

    /// Forget everything.
    pub fn clear(&self) {
        if let Ok(mut l) = self.lines.lock() {
            l.clear();
        }
    }
}

/// How a client text frame appears in the transcript.
pub(crate) fn client_frame_text(raw: &str, parsed: Option<&Value>) -> String {
    match parsed {
        Some(v) => {
            let mut v = v.clone();
            redact::redact_request_frame(&mut v);
            v.to_string()
        }
        None => truncate(raw, 200),
    }
}

/// Cut `s` to at most `max` characters, marking the cut.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}
