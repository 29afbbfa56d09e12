//! The machine interface: one JSON request in, one JSON result out, for tools that drive
//! midscript (the Ansible collection in `ansible/`, Salt, CI jobs). `midscript machine` reads
//! the request from stdin and writes the result to stdout; the format is documented in
//! `docs/machine-interface.md`.
//!
//! ```json
//! {"action": "compose", "connection": {"url": "wss://nas/api/current", "api_key": "…"},
//!  "check_mode": false, "diff": true, "params": {"project_src": "stack", "state": "present"}}
//! ```
//!
//! Every result has `changed`, `failed` and `msg` (and `diff` when asked for), the shape
//! Ansible modules return, plus the action's own data. Nothing from the request's connection
//! settings is ever echoed: the result is scrubbed of the API key and password as a last guard.
//!
//! Layout: this file (request, result, dispatch), [`compose`] (deploy or remove a compose
//! project), [`call`] (one method, or a job), [`script`] (a Rhai script with variables, its
//! `changed()` and its returned value).

pub mod call;
pub mod compose;
pub mod script;

use std::time::Duration;

use serde::Deserialize;
use serde_json::{Map, Value, json};

use crate::client::{Client, Error};
use crate::output;

/// A request that cannot be read or makes no sense.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// Not JSON, or not the request's shape (string values left out of the message: one may
    /// be a secret in the wrong place).
    #[error("the request (JSON on stdin) is not valid: {0}")]
    Json(String),
    /// The action's parameters are wrong.
    #[error("{action}: params: {reason}")]
    Params {
        /// The action.
        action: &'static str,
        /// What is wrong, naming the field.
        reason: String,
    },
}

/// The actions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionName {
    /// Deploy, update or remove a compose project as a custom app.
    Compose,
    /// Call one method (or run a job).
    Call,
    /// Run a Rhai script.
    Script,
}

/// How to reach and log in to the server. Mirrors the command line's connection options;
/// settings left out fall back to the environment (`MIDSCRIPT_URL`, `MIDSCRIPT_API_KEY`, …) and
/// the profile, as on the command line. `Debug` never shows the secrets.
#[derive(Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Connection {
    /// Server URL (`wss://HOST/api/current`, or `wss://HOST/websocket` for TrueNAS 24.10).
    pub url: Option<String>,
    /// Server host: `wss://HOST/api/current`, falling back to the legacy endpoint.
    pub host: Option<String>,
    /// An API key `<id>-<key>`.
    pub api_key: Option<String>,
    /// A file holding the API key.
    pub api_key_file: Option<String>,
    /// The account (password login, or the API key's owner).
    pub username: Option<String>,
    /// The account's password.
    pub password: Option<String>,
    /// The SHA-256 fingerprint of the server's certificate, to pin it.
    pub fingerprint: Option<String>,
    /// Do not check the certificate at all.
    #[serde(default)]
    pub insecure: bool,
    /// A profile of the config file.
    pub profile: Option<String>,
    /// Seconds to wait for each reply.
    pub timeout: Option<f64>,
    /// Use a built-in mock started for this request (for trying the interface out).
    #[serde(default)]
    pub mock: bool,
}

impl Connection {
    /// The secret values in these settings, to scrub from anything sent back.
    pub fn secrets(&self) -> Vec<String> {
        let mut out: Vec<String> = [&self.api_key, &self.password]
            .into_iter()
            .flatten()
            .map(|s| s.trim().to_owned())
            .filter(|s| !s.is_empty())
            .collect();
        if let Some(path) = &self.api_key_file
            && let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            out.push(text.trim().to_owned());
        }
        out
    }
}

impl std::fmt::Debug for Connection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let hidden = |s: &Option<String>| s.as_ref().map(|_| "********");
        f.debug_struct("Connection")
            .field("url", &self.url)
            .field("host", &self.host)
            .field("api_key", &hidden(&self.api_key))
            .field("api_key_file", &self.api_key_file)
            .field("username", &self.username)
            .field("password", &hidden(&self.password))
            .field("fingerprint", &self.fingerprint)
            .field("insecure", &self.insecure)
            .field("profile", &self.profile)
            .field("timeout", &self.timeout)
            .field("mock", &self.mock)
            .finish()
    }
}

/// One request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Request {
    /// What to do.
    pub action: ActionName,
    /// How to reach the server.
    #[serde(default)]
    pub connection: Connection,
    /// Report what would change; send no change.
    #[serde(default)]
    pub check_mode: bool,
    /// Add a `diff` (`{"prepared": text}`, secrets masked) to the result.
    #[serde(default)]
    pub diff: bool,
    /// The action's parameters.
    #[serde(default)]
    pub params: Value,
}

impl Request {
    /// Read a request from its JSON text.
    pub fn parse(text: &str) -> Result<Request, RequestError> {
        serde_json::from_str(text).map_err(|e| RequestError::Json(without_strings(&e)))
    }

    /// Check the parameters before connecting, so a typo fails without touching the server.
    pub fn validate(&self) -> Result<Action, RequestError> {
        let params = if self.params.is_null() {
            Value::Object(Map::new())
        } else {
            self.params.clone()
        };
        let bad = |action: &'static str| {
            move |e: serde_json::Error| RequestError::Params {
                action,
                reason: without_strings(&e),
            }
        };
        Ok(match self.action {
            ActionName::Compose => {
                Action::Compose(serde_json::from_value(params).map_err(bad("compose"))?)
            }
            ActionName::Call => Action::Call(serde_json::from_value(params).map_err(bad("call"))?),
            ActionName::Script => {
                Action::Script(serde_json::from_value(params).map_err(bad("script"))?)
            }
        })
    }
}

/// serde's message without the string values it quotes (`invalid type: string "…"`).
fn without_strings(e: &serde_json::Error) -> String {
    static QUOTED: std::sync::LazyLock<regex::Regex> = std::sync::LazyLock::new(|| {
        regex::Regex::new(r#"string "(?:[^"\\]|\\.)*""#).expect("a valid pattern")
    });
    QUOTED.replace_all(&e.to_string(), "string").into_owned()
}

/// A request's action with its parameters read.
#[derive(Debug, Clone)]
pub enum Action {
    /// See [`compose::ComposeParams`].
    Compose(compose::ComposeParams),
    /// See [`call::CallParams`].
    Call(call::CallParams),
    /// See [`script::ScriptParams`].
    Script(script::ScriptParams),
}

/// The result: `changed`, `failed`, `msg`, an optional `diff`, and the action's data.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Response {
    /// Something was (or, in check mode, would be) changed on the server.
    pub changed: bool,
    /// The action failed.
    pub failed: bool,
    /// A one-line summary, or the error (with container logs for a crashed deployment).
    pub msg: String,
    /// `{"prepared": text}` when the request asked for a diff.
    pub diff: Option<Value>,
    /// The action's own fields.
    pub data: Map<String, Value>,
}

impl Response {
    /// A failure with this message.
    pub fn failure(msg: impl Into<String>) -> Response {
        Response {
            failed: true,
            msg: msg.into(),
            ..Response::default()
        }
    }

    /// A client error as a failure (the server's message, no traceback).
    pub fn client_failure(context: &str, e: &Error) -> Response {
        Response::failure(format!("{context}: {}", output::describe_error(e, false)))
    }

    /// The result as one JSON object: the action's data, then `changed`, `failed`, `msg`
    /// and `diff` (which win over data fields of the same name).
    pub fn to_json(&self) -> Value {
        let mut out = self.data.clone();
        out.insert("changed".into(), json!(self.changed));
        out.insert("failed".into(), json!(self.failed));
        out.insert("msg".into(), json!(self.msg));
        if let Some(d) = &self.diff {
            out.insert("diff".into(), d.clone());
        }
        Value::Object(out)
    }

    /// Replace every occurrence of `secrets` in the result with `********`.
    pub fn scrub(&mut self, secrets: &[String]) {
        if secrets.is_empty() {
            return;
        }
        let scrub_str = |s: &mut String| {
            for secret in secrets {
                if s.contains(secret.as_str()) {
                    *s = s.replace(secret.as_str(), "********");
                }
            }
        };
        scrub_str(&mut self.msg);
        if let Some(d) = &mut self.diff {
            scrub_value(d, &scrub_str);
        }
        for v in self.data.values_mut() {
            scrub_value(v, &scrub_str);
        }
    }
}

fn scrub_value(v: &mut Value, scrub: &dyn Fn(&mut String)) {
    match v {
        Value::String(s) => scrub(s),
        Value::Array(items) => items.iter_mut().for_each(|i| scrub_value(i, scrub)),
        Value::Object(m) => m.values_mut().for_each(|i| scrub_value(i, scrub)),
        _ => {}
    }
}

/// How long a login refused for the server's rate limit is retried. TrueNAS allows 20
/// unauthenticated calls per method per minute from one address, and each login spends one or
/// two (`auth.login_ex`, and `auth.login_ex_continue` for SCRAM): a playbook with many tasks
/// per NAS, each one connection, can exceed it. The window is fixed at 60 s, and the server
/// stalls up to 10 s before refusing.
pub const RATE_LIMIT_PATIENCE: Duration = Duration::from_secs(80);
/// The pause between logins refused for the rate limit.
pub const RATE_LIMIT_PAUSE: Duration = Duration::from_secs(10);

/// Did the server refuse a call for its rate limit (`EBUSY` "Rate Limit Exceeded")?
pub fn is_rate_limited(e: &Error) -> bool {
    e.server().is_some_and(|s| {
        s.errname.as_deref() == Some("EBUSY")
            && s.reason
                .as_deref()
                .is_some_and(|r| r.contains("Rate Limit"))
    })
}

/// Run `attempt` until it succeeds, fails for another reason than `limited` says, or
/// `patience` has passed (then its last error), pausing `pause` between attempts.
pub async fn retry_rate_limited<T, E>(
    patience: Duration,
    pause: Duration,
    mut attempt: impl AsyncFnMut() -> Result<T, E>,
    limited: impl Fn(&E) -> bool,
) -> Result<T, E> {
    let deadline = tokio::time::Instant::now() + patience;
    loop {
        match attempt().await {
            Err(e) if limited(&e) && tokio::time::Instant::now() + pause < deadline => {
                tokio::time::sleep(pause).await;
            }
            other => return other,
        }
    }
}

/// Run a validated action on an open, logged-in client.
pub async fn execute(client: &Client, request: &Request, action: &Action) -> Response {
    match action {
        Action::Compose(p) => compose::run(client, request, p).await,
        Action::Call(p) => call::run(client, request, p).await,
        Action::Script(p) => script::run(client, request, p).await,
    }
}

#[cfg(test)]
mod tests;
