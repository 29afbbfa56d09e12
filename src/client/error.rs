//! One error type for everything the client can run into, worded for the person who reads it.

use std::time::Duration;

use serde_json::Value;

use crate::protocol::ddp::LegacyError;
use crate::protocol::{ErrorData, ErrorObject, ValidationEntry, codes, errno};

/// A failure reported by the server: a JSON-RPC error object, a legacy `/websocket` error
/// object, or a job that ended FAILED.
///
/// It carries everything the middleware sends (`docs/middleware.md` §3.2): code, message, errno,
/// errname, reason, extra and trace. Validation failures (-32602, or a job whose
/// `exc_info.type` is `VALIDATION`) expose their `[attribute, message, errno]` triples through
/// [`ServerError::validation`].
#[derive(Debug, Clone, PartialEq)]
pub struct ServerError {
    /// The method that was called.
    pub method: String,
    /// The JSON-RPC code; `None` for a job that failed after it was accepted, and for every
    /// error on the legacy dialect (which has no codes).
    pub code: Option<i64>,
    /// The JSON-RPC message ("Method call error", "Invalid params", …) or the job's error.
    pub message: String,
    /// errno (`data.error`, or the job's `exc_info.errno`).
    pub errno: Option<i64>,
    /// errno name (`data.errname`).
    pub errname: Option<String>,
    /// Human reason (`data.reason`, or the job's `error`).
    pub reason: Option<String>,
    /// `data.extra`, or the job's `exc_info.extra`.
    pub extra: Option<Value>,
    /// `data.trace` (`{"class","formatted","repr"}`), or `{"formatted": <job exception>}`.
    pub trace: Option<Value>,
    /// The job id when the failure is a job's.
    pub job_id: Option<i64>,
    /// True when the server classed the failure as a validation error.
    pub is_validation: bool,
}

impl ServerError {
    /// Build from a JSON-RPC error object.
    pub fn from_object(method: &str, e: ErrorObject) -> Self {
        let data = e.data.unwrap_or_default();
        let is_validation = e.code == codes::INVALID_PARAMS;
        ServerError {
            method: method.to_owned(),
            code: Some(e.code),
            message: e.message,
            errname: data
                .errname
                .or_else(|| data.error.map(|n| errno::name(n).to_owned())),
            errno: data.error,
            reason: data.reason,
            extra: data.extra,
            trace: data.trace,
            job_id: None,
            is_validation,
        }
    }

    /// Build from a legacy `/websocket` error object (`docs/middleware.md` §1.4). There is no
    /// JSON-RPC code; `type: "VALIDATION"` marks validation failures (errno EAGAIN for a list
    /// of them, the error's own errno for a single one; the triples are in `extra`).
    pub fn from_legacy(method: &str, e: LegacyError) -> Self {
        let is_validation = e.is_validation();
        let errname = e
            .errname
            .or_else(|| e.error.map(|n| errno::name(n).to_owned()));
        ServerError {
            method: method.to_owned(),
            code: None,
            message: e
                .reason
                .clone()
                .or_else(|| errname.clone())
                .unwrap_or_else(|| "Method call error".into()),
            errname,
            errno: e.error,
            reason: e.reason,
            extra: e.extra,
            trace: e.trace,
            job_id: None,
            is_validation,
        }
    }

    /// Build from a FAILED job object (`docs/middleware.md` §4.3, §4.6).
    pub fn from_failed_job(method: &str, job: &Value) -> Self {
        let exc = job.get("exc_info").filter(|v| !v.is_null());
        let is_validation =
            exc.and_then(|e| e.get("type")).and_then(Value::as_str) == Some("VALIDATION");
        let errno = exc.and_then(|e| e.get("errno")).and_then(Value::as_i64);
        let error = job.get("error").and_then(Value::as_str).map(str::to_owned);
        let trace = job
            .get("exception")
            .and_then(Value::as_str)
            .map(|t| serde_json::json!({"class": exc.and_then(|e| e.get("type")), "formatted": t, "repr": exc.and_then(|e| e.get("repr"))}));
        ServerError {
            method: method.to_owned(),
            code: None,
            message: error.clone().unwrap_or_else(|| "Job failed".into()),
            errno,
            errname: errno.map(|n| errno::name(n).to_owned()),
            reason: error,
            extra: exc
                .and_then(|e| e.get("extra"))
                .filter(|v| !v.is_null())
                .cloned(),
            trace,
            job_id: job.get("id").and_then(Value::as_i64),
            is_validation,
        }
    }

    /// The server's login rate limit (`[EBUSY] Rate Limit Exceeded`): too many anonymous calls
    /// of one method (logins among them) from this address within its 60 s window.
    pub fn is_rate_limited(&self) -> bool {
        self.errname.as_deref() == Some("EBUSY")
            && self
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("Rate Limit"))
    }

    /// The validation triples, when this is a validation failure.
    pub fn validation(&self) -> Vec<ValidationEntry> {
        if !self.is_validation {
            return Vec::new();
        }
        ValidationEntry::list_from(self.extra.as_ref())
    }

    /// The server traceback text, if any (shown only on request: it is long).
    pub fn traceback(&self) -> Option<&str> {
        self.trace.as_ref()?.get("formatted")?.as_str()
    }

    /// The error's data in the server's own shape (for scripts and JSON output).
    pub fn data(&self) -> ErrorData {
        ErrorData {
            error: self.errno,
            errname: self.errname.clone(),
            reason: self.reason.clone(),
            trace: self.trace.clone(),
            extra: self.extra.clone(),
            other: Default::default(),
        }
    }

    /// Has the session been logged out (ENOTAUTHENTICATED)?
    pub fn is_not_authenticated(&self) -> bool {
        self.errno == Some(errno::ENOTAUTHENTICATED)
    }
}

impl std::fmt::Display for ServerError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.job_id {
            Some(id) => format!("{} (job {id})", self.method),
            None => self.method.clone(),
        };
        let entries = self.validation();
        if !entries.is_empty() {
            write!(f, "{what}: invalid arguments")?;
            for e in entries {
                // No attribute, or an empty one (the arguments as a whole): ALL, as midclt.
                let attr = e
                    .attribute
                    .as_deref()
                    .filter(|a| !a.is_empty())
                    .unwrap_or("ALL");
                write!(f, "\n  {attr}: {} [{}]", e.message, errno::name(e.errno))?;
            }
            return Ok(());
        }
        match (&self.errname, &self.reason) {
            (Some(name), Some(reason)) if reason.starts_with('[') => write!(f, "{what}: {reason}")
                .and_then(|_| {
                    if reason.contains(name.as_str()) {
                        Ok(())
                    } else {
                        write!(f, " ({name})")
                    }
                }),
            (Some(name), Some(reason)) => write!(f, "{what}: [{name}] {reason}"),
            (None, Some(reason)) => write!(f, "{what}: {reason}"),
            (Some(name), None) => write!(f, "{what}: {} [{name}]", self.message),
            (None, None) => match self.code {
                Some(c) if c == codes::METHOD_NOT_FOUND => {
                    write!(f, "{what}: method does not exist on this server")
                }
                Some(c) => write!(f, "{what}: {} ({c})", self.message),
                None => write!(f, "{what}: {}", self.message),
            },
        }
    }
}

impl std::error::Error for ServerError {}

/// A login the server refused, or one the client refused to attempt.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum AuthError {
    /// `AUTH_ERR`: wrong credentials (the server does not say which part is wrong).
    #[error("login refused: wrong username, password, API key or token (AUTH_ERR)")]
    Rejected,
    /// `AUTH_ERR` to a SCRAM login bound to the TLS certificate (`tls-server-end-point`): a
    /// wrong key, a relay in the middle presenting another certificate, or a server from before
    /// channel binding (26.0.0-BETA.1/2).
    #[error(
        "login refused: wrong username or API key, or the server does not accept SCRAM channel binding (AUTH_ERR). A server from before 26.0.0-BETA.3 needs --no-channel-binding; behind a TLS-terminating proxy the binding cannot match"
    )]
    RejectedWithBinding,
    /// `EXPIRED`: an expired password or key, or an API key the server has just revoked.
    #[error(
        "login refused: the credential has expired (EXPIRED). An API key sent in plain text over an insecure connection is revoked by the server on first use; reset it (api_key.update with reset) and connect with wss://"
    )]
    Expired,
    /// An API key refused over plain `ws://`: revoked because it was sent over plain ws
    /// (`now`: by this login, which the server answered EXPIRED), or refused as revoked or
    /// wrong (AUTH_ERR).
    #[error(
        "login refused: {}. TrueNAS revokes an API key the first time it arrives in plain text over a connection it does not trust (plain ws:// from another host); create a new key (or reset it) and connect with wss://",
        if *now { "the server revoked this API key because it was sent over plain ws://" } else { "this API key is wrong, or was revoked because it was sent over plain ws:// before (AUTH_ERR)" }
    )]
    RevokedOverPlainWs {
        /// This login made the server revoke the key.
        now: bool,
    },
    /// `DENIED` (26+): the account may not use the API.
    #[error("login refused: this account is not allowed to use the API (DENIED)")]
    Denied,
    /// `REDIRECT`: an HA standby answered; log in on the active controller.
    #[error("login refused: this is the standby controller; connect to {}", urls.join(" or "))]
    Redirect {
        /// Where to log in instead.
        urls: Vec<String>,
    },
    /// `OTP_REQUIRED` and no one-time password was available.
    #[error("login needs a one-time password (two-factor authentication); pass --otp")]
    OtpRequired,
    /// The OTP was refused.
    #[error("login refused: wrong one-time password")]
    OtpRejected,
    /// The client refused to send an API key where the server would revoke it (`docs/middleware.md` §1.5).
    #[error(
        "refusing to send an API key over plain ws:// to {host}: TrueNAS revokes an API key used over an insecure connection. Use wss:// (or --host {host})"
    )]
    InsecureApiKey {
        /// The host the key would have gone to.
        host: String,
    },
    /// An API key would go, in plain, to a server whose certificate is not checked.
    #[error(
        "refusing to send the API key itself to a server whose certificate is not checked (--insecure): anyone in between could take it. Pin the certificate (--fingerprint) instead of --insecure, give -U so a TrueNAS 26+ server can use SCRAM (which never sends the key), or pass --send-key-unverified to send it anyway"
    )]
    PlainKeyUnverified,
    /// SCRAM: the server's proof did not match (it does not know the key: a wrong server).
    #[error(
        "SCRAM login: the server's signature does not match; the server may not be who it claims"
    )]
    ScramServerSignature,
    /// SCRAM: the server answered something that breaks the exchange.
    #[error("SCRAM login: {0}")]
    Scram(String),
    /// An API key that is not of the form `<id>-<material>`.
    #[error("malformed API key: expected <id>-<key> as TrueNAS issues it")]
    MalformedApiKey,
    /// The server answered a login with something unexpected.
    #[error("login: unexpected answer from the server: {0}")]
    Unexpected(String),
}

/// Everything that can go wrong when talking to the middleware.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL cannot be used.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl {
        /// The URL as given.
        url: String,
        /// Why.
        reason: String,
    },
    /// TCP connect, DNS, or socket failure.
    #[error("cannot connect to {url}: {source}")]
    Connect {
        /// Where.
        url: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// TLS verification failed.
    #[error("TLS: {message}")]
    Tls {
        /// A sentence for people (includes the fingerprint when the certificate is untrusted).
        message: String,
        /// The SHA-256 fingerprint of the server's certificate, as openssl prints it.
        fingerprint: Option<String>,
    },
    /// The HTTP upgrade was answered with a status other than 101.
    #[error("{url}: {message}")]
    Handshake {
        /// Where.
        url: String,
        /// The HTTP status.
        status: u16,
        /// An explanation.
        message: String,
    },
    /// Any other WebSocket-level failure.
    #[error("WebSocket error: {0}")]
    WebSocket(String),
    /// The server closed the connection, or it was lost.
    #[error("{explanation}")]
    Closed {
        /// The close code, if a close frame came.
        code: Option<u16>,
        /// The close reason.
        reason: String,
        /// What it means.
        explanation: String,
    },
    /// The connection was lost after `method` was sent and before its reply came. It was
    /// not sent again (only reads are), so whether the server carried it out is unknown.
    #[error(
        "{method}: the connection was lost before the reply came ({cause}); it was not sent again, so whether the server carried it out is unknown"
    )]
    OutcomeUnknown {
        /// The method.
        method: String,
        /// What happened to the connection.
        cause: String,
    },
    /// The connection was lost and reconnecting gave up.
    #[error("the connection to {url} was lost and could not be re-established: {detail}")]
    ReconnectFailed {
        /// Where.
        url: String,
        /// Why the last attempt failed, and how long it tried.
        detail: String,
    },
    /// A message that the server would refuse by closing the connection (`docs/middleware.md` §3.3).
    #[error(
        "{method}: the request is {size} characters; the server accepts at most {limit} per message {when} and would close the connection"
    )]
    MessageTooBig {
        /// The method.
        method: String,
        /// Its size in characters.
        size: usize,
        /// The limit.
        limit: usize,
        /// "before login" or "after login".
        when: &'static str,
    },
    /// No reply in time. The server may still be working on the call.
    #[error("{method}: no reply within {}s (the server may still be working on it)", after.as_secs_f64())]
    Timeout {
        /// The method.
        method: String,
        /// How long we waited.
        after: Duration,
    },
    /// The server reported a failure (boxed: it carries the whole error object).
    #[error(transparent)]
    Server(Box<ServerError>),
    /// A job ended ABORTED.
    #[error("{method} (job {job_id}) was aborted")]
    JobAborted {
        /// The method.
        method: String,
        /// The job id.
        job_id: i64,
    },
    /// Logging in failed.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// An event subscription ended with an error (`notify_unsubscribed`).
    #[error("subscription {name} ended: {}", error.reason.as_deref().unwrap_or("(no reason given)"))]
    SubscriptionEnded {
        /// The subscribed name.
        name: String,
        /// The server's error.
        error: Box<ErrorData>,
    },
    /// Events were dropped because they were not consumed fast enough.
    #[error(
        "subscription {name}: {dropped} events were dropped because they were not read in time"
    )]
    Lagged {
        /// The subscribed name.
        name: String,
        /// How many.
        dropped: u64,
    },
    /// The server sent something this client does not understand.
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The operation was cancelled by the caller.
    #[error("cancelled")]
    Cancelled,
}

impl From<ServerError> for Error {
    fn from(e: ServerError) -> Error {
        Error::Server(Box::new(e))
    }
}

impl Error {
    /// The server error, if this is one.
    pub fn server(&self) -> Option<&ServerError> {
        match self {
            Error::Server(e) => Some(e),
            _ => None,
        }
    }

    /// Is this a connection-level failure (connect, TLS, handshake, closed)?
    pub fn is_connection(&self) -> bool {
        matches!(
            self,
            Error::InvalidUrl { .. }
                | Error::Connect { .. }
                | Error::Tls { .. }
                | Error::Handshake { .. }
                | Error::WebSocket(_)
                | Error::Closed { .. }
                | Error::OutcomeUnknown { .. }
                | Error::ReconnectFailed { .. }
        )
    }

    /// The error for a close frame (or a lost connection), with what it means
    /// (`docs/middleware.md` §3.4, §1.4, §8.7).
    pub fn closed(code: Option<u16>, reason: &str, url: &str) -> Error {
        let explanation = match code {
            Some(1000) => format!(
                "the server closed the connection{}",
                if reason.is_empty() { String::new() } else { format!(": {reason}") }
            ),
            Some(1003) => format!("the server closed the connection: it accepts only text frames ({reason})"),
            Some(1007) if reason.contains("8 kB") => "the server closed the connection: a message before login may be at most 8192 characters (1007)".to_owned(),
            Some(1007) => format!("the server closed the connection: it could not decode a message (1007: {reason})"),
            Some(1008) => "the server refused this client (1008): its address is not on the UI allowlist (System > General > Allowed IP addresses)".to_owned(),
            Some(1009) => "the server closed the connection: a message after login may be at most 65536 characters (1009)".to_owned(),
            // §1.4, §8.7: the legacy handler reads `message['msg']` and fails on a JSON-RPC frame.
            Some(1011) if reason == "'msg'" || reason == "msg" => format!(
                "the server closed the connection (1011 'msg'): {url} is the legacy /websocket endpoint, which does not speak JSON-RPC; use {} instead (or let midscript pick the dialect: a URL ending in /websocket speaks the legacy protocol)",
                url.trim_end_matches('/').trim_end_matches("/websocket").to_owned() + "/api/current"
            ),
            Some(1011) => format!("the server failed while handling a message and closed the connection (1011): {reason}"),
            Some(c) => format!("the server closed the connection ({c}{})", if reason.is_empty() { String::new() } else { format!(": {reason}") }),
            None if reason.is_empty() => "the connection was lost".to_owned(),
            None => format!("the connection was lost: {reason}"),
        };
        Error::Closed {
            code,
            reason: reason.to_owned(),
            explanation,
        }
    }
}

/// Result alias for the client.
pub type Result<T, E = Error> = std::result::Result<T, E>;

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn validation_errors_list_their_fields() {
        let obj: ErrorObject = serde_json::from_value(json!({"code":-32602,"message":"Invalid params","data":{"error":22,"errname":"EINVAL","reason":"[EINVAL] user_update.password: Field required\n","trace":null,"extra":[["user_update.password","Field required",22]]}})).unwrap();
        let e = ServerError::from_object("user.update", obj);
        assert_eq!(e.validation().len(), 1);
        assert_eq!(
            e.to_string(),
            "user.update: invalid arguments\n  user_update.password: Field required [EINVAL]"
        );
    }

    #[test]
    fn an_empty_attribute_is_the_arguments_as_a_whole() {
        let obj: ErrorObject = serde_json::from_value(json!({"code":-32602,"message":"Invalid params","data":{"error":22,"errname":"EINVAL","reason":"","trace":null,"extra":[["","Too many arguments (expected 0, found 1)",22]]}})).unwrap();
        let e = ServerError::from_object("core.ping", obj);
        assert_eq!(
            e.to_string(),
            "core.ping: invalid arguments\n  ALL: Too many arguments (expected 0, found 1) [EINVAL]"
        );
    }

    #[test]
    fn call_errors_show_reason_once() {
        let obj: ErrorObject = serde_json::from_value(json!({"code":-32001,"message":"Method call error","data":{"error":207,"errname":"ENOTAUTHENTICATED","reason":"[ENOTAUTHENTICATED] Not authenticated","trace":null,"extra":null}})).unwrap();
        let e = ServerError::from_object("system.info", obj);
        assert_eq!(
            e.to_string(),
            "system.info: [ENOTAUTHENTICATED] Not authenticated"
        );
        assert!(e.is_not_authenticated());
        let nf: ErrorObject =
            serde_json::from_value(json!({"code":-32601,"message":"Method does not exist"}))
                .unwrap();
        assert_eq!(
            ServerError::from_object("x.y", nf).to_string(),
            "x.y: method does not exist on this server"
        );
    }

    #[test]
    fn failed_validation_job_maps_to_validation_error() {
        let job = json!({"id": 4, "state": "FAILED", "error": "[EINVAL] app_create.app_name: bad", "exception": "Traceback…",
            "exc_info": {"repr": "ValidationErrors()", "type": "VALIDATION", "errno": 22, "extra": [["app_create.app_name", "bad", 22]]}});
        let e = ServerError::from_failed_job("app.create", &job);
        assert!(e.is_validation);
        assert_eq!(e.job_id, Some(4));
        assert_eq!(
            e.validation()[0].attribute.as_deref(),
            Some("app_create.app_name")
        );
        assert_eq!(e.traceback(), Some("Traceback…"));
    }

    #[test]
    fn legacy_errors_map_to_server_errors() {
        let list: LegacyError = serde_json::from_value(json!({"error":11,"errname":"EAGAIN","type":"VALIDATION","reason":"[EINVAL] user_update.bogus: Extra inputs are not permitted","trace":null,"extra":[["user_update.bogus","Extra inputs are not permitted",22]]})).unwrap();
        let e = ServerError::from_legacy("user.update", list);
        assert!(e.is_validation);
        assert_eq!((e.code, e.errno), (None, Some(11)));
        assert_eq!(e.validation()[0].errno, 22);
        let nauth: LegacyError = serde_json::from_value(json!({"error":207,"errname":"ENOTAUTHENTICATED","type":null,"reason":"Not authenticated","trace":null,"extra":null})).unwrap();
        let e = ServerError::from_legacy("system.info", nauth);
        assert!(e.is_not_authenticated() && !e.is_validation);
        assert_eq!(
            e.to_string(),
            "system.info: [ENOTAUTHENTICATED] Not authenticated"
        );
    }

    #[test]
    fn close_codes_are_explained() {
        let e = Error::closed(Some(1011), "'msg'", "wss://nas/websocket");
        assert!(e.to_string().contains("use wss://nas/api/current"), "{e}");
        assert!(
            Error::closed(Some(1009), "Max message length is 64 kB", "u")
                .to_string()
                .contains("65536")
        );
        assert!(
            Error::closed(
                Some(1007),
                "Anonymous connection max message length is 8 kB",
                "u"
            )
            .to_string()
            .contains("8192")
        );
        assert!(
            Error::closed(
                Some(1008),
                "You are not allowed to access this resource",
                "u"
            )
            .to_string()
            .contains("allowlist")
        );
        assert!(Error::closed(None, "", "u").to_string().contains("lost"));
    }
}
