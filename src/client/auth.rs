//! Logging in (`docs/middleware.md` §2): password (+ OTP), API key (SCRAM-SHA-512 where the server
//! offers it, else plain), and token; with the rule that an API key never goes in plain text
//! over an insecure transport, where the server would revoke it (§1.5).
//!
//! On the legacy `/websocket` dialect (§1.4; TrueNAS 24.10 has no `auth.login_ex` and no
//! SCRAM) the boolean methods are used: `auth.login [user, password(, otp)]`,
//! `auth.login_with_api_key [key]` and `auth.login_with_token [token]`; `false` is
//! [`AuthError::Rejected`]. A two-factor account needs its OTP up front there: without one,
//! 24.10 just answers `false`, exactly as for a wrong password.

use std::sync::Arc;

use serde_json::{Value, json};

use super::error::{AuthError, Error, Result};
use super::rpc::Connection;
use super::scram::{Binding, ClientFinal, ClientFirst};
use super::transport::{Dialect, Endpoint};
use crate::protocol::channel_binding::tls_server_end_point;
use crate::protocol::codes;

/// A secret string: never printed by `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret.
    pub fn new(s: impl Into<String>) -> Secret {
        Secret(s.into())
    }

    /// The secret itself; use only to send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(********)")
    }
}

/// Supplies a one-time password when the server answers `OTP_REQUIRED`.
pub type OtpPrompt = std::sync::Arc<dyn Fn() -> Option<String> + Send + Sync>;

/// How to log in.
#[derive(Clone)]
pub enum Credentials {
    /// Username and password; `otp` answers `OTP_REQUIRED` (two-factor accounts).
    Password {
        /// The account.
        username: String,
        /// Its password.
        password: Secret,
        /// A one-time password given up front.
        otp: Option<Secret>,
        /// Asked for a one-time password when none was given and the server wants one.
        otp_prompt: Option<OtpPrompt>,
    },
    /// An API key `<id>-<material>`. With the owner's `username`, the login uses `auth.login_ex`
    /// (SCRAM on 26+, so the key never crosses the wire); without it,
    /// `auth.login_with_api_key`, which looks the owner up.
    ApiKey {
        /// The key owner, when known.
        username: Option<String>,
        /// The key.
        key: Secret,
    },
    /// An authentication token (`auth.generate_token`).
    Token(Secret),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::Password { username, .. } => write!(f, "Password({username})"),
            Credentials::ApiKey { username, .. } => write!(f, "ApiKey({username:?})"),
            Credentials::Token(_) => f.write_str("Token"),
        }
    }
}

/// Which mechanism logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    /// `PASSWORD_PLAIN` (possibly followed by `OTP_TOKEN`), or `auth.login`.
    Password,
    /// `API_KEY_PLAIN` or `auth.login_with_api_key`.
    ApiKeyPlain,
    /// SCRAM-SHA-512 (26+).
    Scram,
    /// `TOKEN_PLAIN` or `auth.login_with_token`.
    Token,
}

/// What a successful login told us.
#[derive(Debug, Clone)]
pub struct LoginInfo {
    /// The mechanism used.
    pub mechanism: Mechanism,
    /// `auth.me` as returned with SUCCESS, when the server sent it.
    pub user_info: Option<Value>,
}

/// What logging in on one connection needs to know about how that connection was opened. Each
/// connection of a reconnecting client has its own, so a login after a reconnect binds to the
/// certificate of the new TLS session.
#[derive(Debug, Clone, Default)]
pub(crate) struct LoginContext {
    /// The server certificate of this connection's TLS session (DER), for SCRAM channel
    /// binding; `None` over `ws://`.
    pub(crate) tls_certificate: Option<Arc<[u8]>>,
    /// Bind SCRAM logins to that certificate ([`super::ConnectOptions::channel_binding`]).
    pub(crate) channel_binding: bool,
    /// The server's certificate is not checked and the user did not insist: an API key is
    /// never sent in plain ([`super::ConnectOptions::send_key_unverified`]).
    pub(crate) refuse_plain_key: bool,
}

/// Refuse to send an API key where the server would revoke it (`docs/middleware.md` §1.5): over
/// plain `ws://` to a host other than this machine. Checked before connecting.
pub fn check_key_safety(endpoint: &Endpoint, credentials: Option<&Credentials>) -> Result<()> {
    if matches!(credentials, Some(Credentials::ApiKey { .. })) && !endpoint.is_secure_transport() {
        return Err(AuthError::InsecureApiKey {
            host: endpoint.host.clone(),
        }
        .into());
    }
    Ok(())
}

/// An API key sent in plain text and refused over plain `ws://` (`url`): the server revokes a
/// key sent in plain text over a transport it does not trust, and says EXPIRED that once
/// (AUTH_ERR, or `false`, afterwards). Say so instead of a bare EXPIRED/AUTH_ERR. (A SCRAM
/// login never sends the key, so its refusals are left alone.)
fn explain_plain_ws_key(err: Error, url: &str) -> Error {
    if Endpoint::parse(url).map_or(true, |e| e.tls) {
        return err;
    }
    match err {
        Error::Auth(AuthError::Expired) => AuthError::RevokedOverPlainWs { now: true }.into(),
        Error::Auth(AuthError::Rejected) => AuthError::RevokedOverPlainWs { now: false }.into(),
        other => other,
    }
}

fn is_method_missing(e: &Error) -> bool {
    e.server()
        .is_some_and(|s| s.code == Some(codes::METHOD_NOT_FOUND))
}

fn response_type(v: &Value) -> &str {
    v.get("response_type").and_then(Value::as_str).unwrap_or("")
}

fn outcome(v: &Value, mechanism: Mechanism) -> Result<LoginInfo> {
    match response_type(v) {
        "SUCCESS" => Ok(LoginInfo {
            mechanism,
            user_info: v.get("user_info").filter(|u| !u.is_null()).cloned(),
        }),
        "AUTH_ERR" => Err(AuthError::Rejected.into()),
        "EXPIRED" => Err(AuthError::Expired.into()),
        "DENIED" => Err(AuthError::Denied.into()),
        "REDIRECT" => Err(AuthError::Redirect {
            urls: v
                .get("urls")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect()
                })
                .unwrap_or_default(),
        }
        .into()),
        "OTP_REQUIRED" => Err(AuthError::OtpRequired.into()),
        other => Err(AuthError::Unexpected(format!("response_type {other:?}")).into()),
    }
}

fn bool_outcome(v: &Value, mechanism: Mechanism) -> Result<LoginInfo> {
    match v {
        Value::Bool(true) => Ok(LoginInfo {
            mechanism,
            user_info: None,
        }),
        Value::Bool(false) => Err(AuthError::Rejected.into()),
        other => Err(AuthError::Unexpected(other.to_string()).into()),
    }
}

impl Connection {
    /// One call of the login exchange.
    async fn ask(&self, method: &str, params: Vec<Value>) -> Result<Value> {
        self.call(method, params, None).await
    }

    /// Log in with `credentials`.
    pub(crate) async fn login(&self, credentials: &Credentials) -> Result<LoginInfo> {
        let endpoint = Endpoint::parse(&self.url)?;
        check_key_safety(&endpoint, Some(credentials))?;
        let info = match (self.dialect, credentials) {
            (Dialect::Legacy, creds) => self.login_legacy(creds).await?,
            (Dialect::JsonRpc, creds) => self.login_jsonrpc(creds).await?,
        };
        self.set_authenticated(true);
        Ok(info)
    }

    /// The boolean login methods of the legacy dialect (`docs/middleware.md` §1.4).
    async fn login_legacy(&self, credentials: &Credentials) -> Result<LoginInfo> {
        let (method, params, mechanism) = match credentials {
            Credentials::Password {
                username,
                password,
                otp,
                ..
            } => {
                let mut params = vec![json!(username), json!(password.expose())];
                params.extend(otp.as_ref().map(|o| json!(o.expose())));
                ("auth.login", params, Mechanism::Password)
            }
            Credentials::ApiKey { key, .. } => (
                {
                    self.check_plain_key()?;
                    "auth.login_with_api_key"
                },
                vec![json!(key.expose())],
                Mechanism::ApiKeyPlain,
            ),
            Credentials::Token(token) => (
                "auth.login_with_token",
                vec![json!(token.expose())],
                Mechanism::Token,
            ),
        };
        let outcome = bool_outcome(&self.ask(method, params).await?, mechanism);
        match mechanism {
            Mechanism::ApiKeyPlain => outcome.map_err(|e| explain_plain_ws_key(e, &self.url)),
            _ => outcome,
        }
    }

    async fn login_jsonrpc(&self, credentials: &Credentials) -> Result<LoginInfo> {
        let info = match credentials {
            Credentials::Password {
                username,
                password,
                otp,
                otp_prompt,
            } => {
                self.login_password(username, password, otp.as_ref(), otp_prompt.as_ref())
                    .await?
            }
            Credentials::ApiKey {
                username: Some(user),
                key,
            } => self.login_api_key(user, key).await?,
            Credentials::ApiKey {
                username: None,
                key,
            } => {
                self.check_plain_key()?;
                let ok = self
                    .ask("auth.login_with_api_key", vec![json!(key.expose())])
                    .await?;
                bool_outcome(&ok, Mechanism::ApiKeyPlain)
                    .map_err(|e| explain_plain_ws_key(e, &self.url))?
            }
            Credentials::Token(token) => {
                let data = json!({"mechanism": "TOKEN_PLAIN", "token": token.expose()});
                match self.ask("auth.login_ex", vec![data]).await {
                    Ok(v) => outcome(&v, Mechanism::Token)?,
                    Err(e) if is_method_missing(&e) => {
                        let ok = self
                            .ask("auth.login_with_token", vec![json!(token.expose())])
                            .await?;
                        bool_outcome(&ok, Mechanism::Token)?
                    }
                    Err(e) => return Err(e),
                }
            }
        };
        Ok(info)
    }

    async fn login_password(
        &self,
        username: &str,
        password: &Secret,
        otp: Option<&Secret>,
        prompt: Option<&OtpPrompt>,
    ) -> Result<LoginInfo> {
        let data = json!({"mechanism": "PASSWORD_PLAIN", "username": username, "password": password.expose()});
        let reply = match self.ask("auth.login_ex", vec![data]).await {
            Ok(v) => v,
            Err(e) if is_method_missing(&e) => {
                let otp = otp.map(|o| json!(o.expose())).unwrap_or(Value::Null);
                let ok = self
                    .ask(
                        "auth.login",
                        vec![json!(username), json!(password.expose()), otp],
                    )
                    .await?;
                return bool_outcome(&ok, Mechanism::Password);
            }
            Err(e) => return Err(e),
        };
        if response_type(&reply) != "OTP_REQUIRED" {
            return outcome(&reply, Mechanism::Password);
        }
        let code = match otp {
            Some(o) => o.expose().to_owned(),
            None => prompt.and_then(|p| p()).ok_or(AuthError::OtpRequired)?,
        };
        let reply = self
            .ask(
                "auth.login_ex_continue",
                vec![json!({"mechanism": "OTP_TOKEN", "otp_token": code})],
            )
            .await?;
        match response_type(&reply) {
            "OTP_REQUIRED" => Err(AuthError::OtpRejected.into()),
            _ => outcome(&reply, Mechanism::Password),
        }
    }

    async fn login_api_key(&self, username: &str, key: &Secret) -> Result<LoginInfo> {
        let (key_id, material) = key
            .expose()
            .split_once('-')
            .ok_or(AuthError::MalformedApiKey)?;
        let key_id: i64 = key_id.parse().map_err(|_| AuthError::MalformedApiKey)?;
        if self.offers_scram().await {
            return self.login_scram(username, key_id, material).await;
        }
        self.check_plain_key()?;
        let data =
            json!({"mechanism": "API_KEY_PLAIN", "username": username, "api_key": key.expose()});
        let outcome = match self.ask("auth.login_ex", vec![data]).await {
            Ok(v) => outcome(&v, Mechanism::ApiKeyPlain),
            Err(e) if is_method_missing(&e) => {
                let ok = self
                    .ask("auth.login_with_api_key", vec![json!(key.expose())])
                    .await?;
                bool_outcome(&ok, Mechanism::ApiKeyPlain)
            }
            Err(e) => return Err(e),
        };
        outcome.map_err(|e| explain_plain_ws_key(e, &self.url))
    }

    /// Refuse to send an API key in plain to a server nobody verified
    /// ([`super::ConnectOptions::send_key_unverified`]).
    fn check_plain_key(&self) -> Result<()> {
        if self.login_context.refuse_plain_key {
            return Err(AuthError::PlainKeyUnverified.into());
        }
        Ok(())
    }

    /// Does the server offer SCRAM? `auth.mechanism_choices` fails while unauthenticated on
    /// 25.04.2–25.10.2 (`docs/middleware.md` §8.3); that, like its absence, means no.
    async fn offers_scram(&self) -> bool {
        match self.ask("auth.mechanism_choices", vec![]).await {
            Ok(Value::Array(choices)) => choices.iter().any(|c| c.as_str() == Some("SCRAM")),
            _ => false,
        }
    }

    /// SCRAM-SHA-512 as TrueNAS runs it (`docs/middleware.md` §2.3). Over `wss://` the exchange
    /// is bound to the server's certificate (`tls-server-end-point`) unless the connection was
    /// opened with channel binding off; over `ws://` it never is (the server refuses binding
    /// there).
    async fn login_scram(&self, username: &str, key_id: i64, material: &str) -> Result<LoginInfo> {
        let binding = match (
            &self.login_context.tls_certificate,
            self.login_context.channel_binding,
        ) {
            (Some(cert), true) => Binding::TlsServerEndPoint(
                tls_server_end_point(cert)
                    .map_err(|e| AuthError::Scram(format!("channel binding: {e}")))?,
            ),
            _ => Binding::None,
        };
        let first = ClientFirst::random(username, key_id, binding)?;
        let refused = || -> Error {
            if first.is_bound() {
                AuthError::RejectedWithBinding.into()
            } else {
                AuthError::Rejected.into()
            }
        };
        let data = json!({"mechanism": "SCRAM", "scram_type": "CLIENT_FIRST_MESSAGE", "rfc_str": first.message});
        let reply = self.ask("auth.login_ex", vec![data]).await?;
        match response_type(&reply) {
            "SCRAM_RESPONSE" => {}
            "AUTH_ERR" => return Err(refused()),
            _ => return outcome(&reply, Mechanism::Scram),
        }
        let server_first = reply
            .get("rfc_str")
            .and_then(Value::as_str)
            .ok_or_else(|| AuthError::Scram("no rfc_str in the server's first message".into()))?;
        let last = ClientFinal::new(&first, server_first, material)?;
        let data = json!({"mechanism": "SCRAM", "scram_type": "CLIENT_FINAL_MESSAGE", "rfc_str": last.message});
        let reply = self.ask("auth.login_ex", vec![data]).await?;
        match response_type(&reply) {
            "SCRAM_RESPONSE" => {
                let server_final = reply
                    .get("rfc_str")
                    .and_then(Value::as_str)
                    .unwrap_or_default();
                if !last.verify_server_final(server_final) {
                    let _ = self.ask("auth.logout", vec![]).await;
                    return Err(AuthError::ScramServerSignature.into());
                }
                Ok(LoginInfo {
                    mechanism: Mechanism::Scram,
                    user_info: reply.get("user_info").filter(|u| !u.is_null()).cloned(),
                })
            }
            "AUTH_ERR" => Err(refused()),
            _ => outcome(&reply, Mechanism::Scram),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_do_not_debug_print() {
        let c = Credentials::ApiKey {
            username: Some("root".into()),
            key: Secret::new("1-abc"),
        };
        assert!(!format!("{c:?}").contains("abc"));
        assert_eq!(format!("{:?}", Secret::new("pw")), "Secret(********)");
    }

    #[test]
    fn key_safety_rule() {
        let key = Credentials::ApiKey {
            username: None,
            key: Secret::new("1-x"),
        };
        let remote_plain = Endpoint::parse("ws://192.168.1.10/api/current").unwrap();
        let err = check_key_safety(&remote_plain, Some(&key)).unwrap_err();
        assert!(err.to_string().contains("revokes"), "{err}");
        for ok in [
            "wss://192.168.1.10/api/current",
            "ws://127.0.0.1:9/api/current",
            "ws://localhost/api/current",
        ] {
            assert!(
                check_key_safety(&Endpoint::parse(ok).unwrap(), Some(&key)).is_ok(),
                "{ok}"
            );
        }
        let pw = Credentials::Password {
            username: "u".into(),
            password: Secret::new("p"),
            otp: None,
            otp_prompt: None,
        };
        assert!(check_key_safety(&remote_plain, Some(&pw)).is_ok());
    }
}
