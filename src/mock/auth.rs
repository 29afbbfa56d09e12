//! Authentication (`docs/middleware.md` §1.5, §2): the `auth.login_ex` state machine (PASSWORD_PLAIN,
//! API_KEY_PLAIN, TOKEN_PLAIN, OTP_TOKEN, SCRAM on 26), the old boolean login methods, tokens,
//! `auth.me`, `auth.logout` and `auth.mechanism_choices`.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::{Map, Value, json};

use super::dispatch::{Access, Ctx, MethodDef, args, handler};
use super::error::MockError;
use super::scram;
use super::state::{Shared, TokenRec, lock};
use super::{MockUser, ServerVersion};
use crate::protocol::channel_binding::tls_server_end_point;
use crate::protocol::{CollectionUpdate, EventKind, errno};

/// The login state of one connection.
#[derive(Debug, Default)]
pub(crate) struct Session {
    pub user: Option<LoggedIn>,
    pub pending: Pending,
}

/// A multi-step login in progress.
#[derive(Debug, Default)]
pub(crate) enum Pending {
    #[default]
    None,
    /// After `OTP_REQUIRED`.
    Otp { username: String, tries: u32 },
    /// After the SCRAM server-first message.
    Scram(Box<scram::Exchange>),
}

/// A logged-in session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LoggedIn {
    pub username: String,
    pub full_admin: bool,
    pub cred: Cred,
}

/// How the session logged in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cred {
    Password,
    ApiKey(i64),
    Token,
}

impl LoggedIn {
    /// `credentials` of a job object (`docs/middleware.md` §4.3).
    pub fn credentials(&self) -> Value {
        match self.cred {
            Cred::Password => {
                json!({"type": "LOGIN_PASSWORD", "data": {"username": self.username}})
            }
            Cred::ApiKey(id) => json!({"type": "API_KEY", "data": {
                "username": self.username,
                "api_key": {"id": id, "name": key_name(id)},
            }}),
            Cred::Token => json!({"type": "TOKEN", "data": {"username": self.username}}),
        }
    }
}

fn key_name(id: i64) -> String {
    format!("mock-key-{id}")
}

/// Outcome of one login step.
enum Attempt {
    Success(LoggedIn),
    OtpRequired(String),
    AuthErr,
    Expired,
    Denied,
}

pub(crate) fn methods() -> Vec<MethodDef> {
    use Access::Anonymous;
    vec![
        // 24.10 has none of these (`plugins/auth.py` @TS-24.10.2.4, §1.4).
        MethodDef::call("auth.login_ex", handler!(login_ex))
            .access(Anonymous)
            .since(ServerVersion::V25_04),
        MethodDef::call("auth.login_ex_continue", handler!(login_ex_continue))
            .access(Anonymous)
            .since(ServerVersion::V25_04),
        MethodDef::call("auth.mechanism_choices", handler!(mechanism_choices))
            .access(Anonymous)
            .since(ServerVersion::V25_04),
        MethodDef::call("auth.login", handler!(login)).access(Anonymous),
        MethodDef::call("auth.login_with_api_key", handler!(login_with_api_key)).access(Anonymous),
        MethodDef::call("auth.login_with_token", handler!(login_with_token)).access(Anonymous),
        MethodDef::call("auth.generate_token", handler!(generate_token)),
        MethodDef::call("auth.me", handler!(me)),
        MethodDef::call("auth.logout", handler!(logout)),
    ]
}

fn find_user(shared: &Shared, username: &str) -> Option<MockUser> {
    lock(&shared.users)
        .iter()
        .find(|u| u.username == username)
        .cloned()
}

fn session_for(user: &MockUser, cred: Cred) -> LoggedIn {
    LoggedIn {
        username: user.username.clone(),
        full_admin: user.full_admin,
        cred,
    }
}

/// `DENIED` exists only on 26 (§0.1); 25.x lets the login through.
fn gate_api_access(version: ServerVersion, user: &MockUser, cred: Cred) -> Attempt {
    if version >= ServerVersion::V26_0 && !user.api_access {
        Attempt::Denied
    } else {
        Attempt::Success(session_for(user, cred))
    }
}

fn password_plain(ctx: &Ctx, username: &str, password: &str) -> Attempt {
    let Some(user) = find_user(&ctx.shared, username).filter(|u| u.password == password) else {
        return Attempt::AuthErr;
    };
    if user.otp_code.is_some() {
        lock(&ctx.conn.session).pending = Pending::Otp {
            username: user.username.clone(),
            tries: 0,
        };
        return Attempt::OtpRequired(user.username);
    }
    gate_api_access(ctx.version(), &user, Cred::Password)
}

/// What a presented API key is.
enum KeyCheck {
    Unknown,
    Revoked,
    Expired,
    Valid { id: i64, owner: String },
}

fn check_key(shared: &Shared, key: &str) -> KeyCheck {
    let Some(id) = key
        .split_once('-')
        .and_then(|(id, _)| id.parse::<i64>().ok())
    else {
        return KeyCheck::Unknown;
    };
    let keys = lock(&shared.keys);
    let Some(k) = keys.iter().find(|k| k.id == id && k.key == key) else {
        return KeyCheck::Unknown;
    };
    if k.revoked {
        KeyCheck::Revoked
    } else if k.expired {
        KeyCheck::Expired
    } else {
        KeyCheck::Valid {
            id,
            owner: k.owner.clone(),
        }
    }
}

/// The owner of the key with `key`'s id (what `auth.login_with_api_key` looks up).
fn key_owner(shared: &Shared, key: &str) -> Option<String> {
    let id = key.split_once('-')?.0.parse::<i64>().ok()?;
    lock(&shared.keys)
        .iter()
        .find(|k| k.id == id)
        .map(|k| k.owner.clone())
}

/// API_KEY_PLAIN (§1.5, §2.2). A valid key over an insecure transport is revoked and answers
/// EXPIRED. On 25.04 a wrong owner gives the opaque authenticator error of §8.2 (guess: a
/// CallError with the default errno EFAULT).
fn api_key_plain(ctx: &Ctx, username: &str, key: &str) -> Result<Attempt, MockError> {
    match check_key(&ctx.shared, key) {
        KeyCheck::Unknown | KeyCheck::Revoked => Ok(Attempt::AuthErr),
        KeyCheck::Expired => Ok(Attempt::Expired),
        KeyCheck::Valid { id, owner } => {
            if owner != username {
                if ctx.version() == ServerVersion::V25_04 {
                    return Err(MockError::call(
                        errno::EFAULT,
                        "AUTH: unexpected authenticator run state. Expected: START",
                    ));
                }
                return Ok(Attempt::AuthErr);
            }
            // §1.5: revoking came with 25.04; 24.10 lets the key through.
            if !ctx.conn.secure && ctx.version() >= ServerVersion::V25_04 {
                revoke_key(&ctx.shared, id);
                return Ok(Attempt::Expired);
            }
            let Some(user) = find_user(&ctx.shared, &owner) else {
                return Ok(Attempt::AuthErr);
            };
            Ok(gate_api_access(ctx.version(), &user, Cred::ApiKey(id)))
        }
    }
}

/// Revoke key `id` for use over an insecure transport and raise the `ApiKeyRevoked` alert.
fn revoke_key(shared: &Arc<Shared>, id: i64) {
    if let Some(k) = lock(&shared.keys).iter_mut().find(|k| k.id == id) {
        k.revoked = true;
    }
    let uuid = shared.ids.uuid();
    let now = json!({"$date": shared.ids.now_ms()});
    let text = format!(
        "API key \"{}\" (id {id}) was revoked: Attempt to use over an insecure transport.",
        key_name(id)
    );
    let alert = json!({
        "uuid": uuid, "source": "", "klass": "ApiKeyRevoked",
        "args": {"key_name": key_name(id), "key_id": id,
                 "reason": "Attempt to use over an insecure transport"},
        "node": "Controller A", "key": format!("[{id}]"), "datetime": now.clone(),
        "last_occurrence": now, "dismissed": false, "mail": null, "text": text.clone(),
        "id": uuid, "level": "WARNING", "formatted": text, "one_shot": true,
    });
    lock(&shared.alerts).push(alert.clone());
    shared.publish(
        CollectionUpdate {
            msg: EventKind::Added,
            collection: "alert.list".into(),
            id: Some(uuid.into()),
            fields: Some(alert),
            extra: None,
        },
        |c| c.logged_in(),
    );
}

fn token_plain(ctx: &Ctx, token: &str) -> Attempt {
    let rec = {
        let mut tokens = lock(&ctx.shared.tokens);
        let Some(rec) = tokens.get(token).cloned() else {
            return Attempt::AuthErr;
        };
        if rec.single_use || rec.expires_at <= tokio::time::Instant::now() {
            tokens.remove(token);
        }
        rec
    };
    if rec.expires_at <= tokio::time::Instant::now() {
        return Attempt::AuthErr;
    }
    match find_user(&ctx.shared, &rec.username) {
        Some(user) => gate_api_access(ctx.version(), &user, Cred::Token),
        None => Attempt::AuthErr,
    }
}

fn mint_token(shared: &Shared, username: &str, ttl: u64, single_use: bool) -> String {
    let token = shared.ids.token();
    lock(&shared.tokens).insert(
        token.clone(),
        TokenRec {
            username: username.to_owned(),
            expires_at: tokio::time::Instant::now() + Duration::from_secs(ttl),
            single_use,
        },
    );
    token
}

/// Apply an attempt to the session and build the `login_ex` answer.
async fn conclude(ctx: &Ctx, attempt: Attempt, opts: &Map<String, Value>) -> Value {
    match attempt {
        Attempt::Success(who) => {
            {
                let mut s = lock(&ctx.conn.session);
                s.user = Some(who.clone());
                s.pending = Pending::None;
            }
            ctx.shared.faults.logins.fetch_add(1, Ordering::SeqCst);
            success_response(ctx, &who, opts)
        }
        Attempt::OtpRequired(username) => {
            json!({"response_type": "OTP_REQUIRED", "username": username})
        }
        failure => {
            lock(&ctx.conn.session).pending = Pending::None;
            fail_delay(ctx).await;
            let t = match failure {
                Attempt::Expired => "EXPIRED",
                Attempt::Denied => "DENIED",
                _ => "AUTH_ERR",
            };
            json!({ "response_type": t })
        }
    }
}

async fn fail_delay(ctx: &Ctx) {
    let d = ctx.shared.config.fail_delay;
    if !d.is_zero() {
        tokio::time::sleep(d).await;
    }
}

/// SUCCESS: `user_info` unless `login_options.user_info` is false; `reconnect_token` (25.10+,
/// guess) when `login_options.reconnect_token` is true.
fn success_response(ctx: &Ctx, who: &LoggedIn, opts: &Map<String, Value>) -> Value {
    let want_info = opts
        .get("user_info")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let mut m = Map::new();
    m.insert("response_type".into(), "SUCCESS".into());
    m.insert(
        "user_info".into(),
        if want_info {
            user_info(ctx, who)
        } else {
            Value::Null
        },
    );
    m.insert("authenticator".into(), "LEVEL_1".into());
    if ctx.version() >= ServerVersion::V25_10 {
        let want = opts
            .get("reconnect_token")
            .and_then(Value::as_bool)
            .unwrap_or(false);
        m.insert(
            "reconnect_token".into(),
            if want {
                mint_token(&ctx.shared, &who.username, 600, true).into()
            } else {
                Value::Null
            },
        );
    }
    Value::Object(m)
}

/// A plausible `auth.me` for a session.
pub(crate) fn user_info(ctx: &Ctx, who: &LoggedIn) -> Value {
    let user = find_user(&ctx.shared, &who.username);
    let id = user.as_ref().map_or(1, |u| u.id);
    let uid = 949 + id;
    let roles = if who.full_admin {
        json!({"$set": ["FULL_ADMIN"]})
    } else {
        json!({"$set": ["READONLY_ADMIN"]})
    };
    let mut attrs = vec!["LOCAL"];
    match who.cred {
        Cred::Password => attrs.push("PASSWORD_LOGIN"),
        Cred::ApiKey(_) => attrs.push("API_KEY"),
        Cred::Token => attrs.push("TOKEN"),
    }
    if user.as_ref().is_some_and(|u| u.otp_code.is_some()) {
        attrs.push("OTP_LOGIN");
    }
    json!({
        "pw_name": who.username,
        "pw_gecos": if who.full_admin { "Local Administrator" } else { "Local User" },
        "pw_dir": format!("/home/{}", who.username),
        "pw_shell": "/usr/bin/zsh",
        "pw_uid": uid,
        "pw_gid": uid,
        "grouplist": [uid, 544],
        "sid": null,
        "source": "LOCAL",
        "local": true,
        "attributes": {},
        "two_factor_config": {
            "secret_configured": user.as_ref().is_some_and(|u| u.otp_code.is_some()),
            "interval": 30, "otp_digits": 6,
        },
        "privilege": {
            "roles": roles,
            "allowlist": [{"method": "*", "resource": "*"}],
            "web_shell": who.full_admin,
        },
        "account_attributes": attrs,
    })
}

fn mechanisms(v: ServerVersion) -> Vec<&'static str> {
    let mut m = vec!["API_KEY_PLAIN", "TOKEN_PLAIN", "PASSWORD_PLAIN"];
    if v >= ServerVersion::V26_0 {
        m.push("SCRAM");
    }
    m
}

/// Reads a required string field of `login_data`.
fn field(data: &Map<String, Value>, key: &str) -> Result<String, MockError> {
    args::field_str(data, key, &format!("login_data.{key}"))
}

/// `auth.login_ex [login_data]` (§2.2).
async fn login_ex(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let data = args::dict(&p, 0, "login_data")?;
    let Some(mechanism) = data.get("mechanism").and_then(Value::as_str) else {
        return Err(MockError::invalid(
            Some("login_data"),
            "Unable to extract tag using discriminator 'mechanism'",
            errno::EINVAL,
        ));
    };
    let mut known = mechanisms(ctx.version());
    known.push("OTP_TOKEN");
    if !known.contains(&mechanism) {
        let tags: Vec<String> = known.iter().map(|m| format!("'{m}'")).collect();
        return Err(MockError::invalid(
            Some("login_data"),
            format!(
                "Input tag '{mechanism}' found using 'mechanism' does not match any of the expected tags: {}",
                tags.join(", ")
            ),
            errno::EINVAL,
        ));
    }
    let opts = match data.get("login_options") {
        Some(Value::Object(o)) => o.clone(),
        _ => Map::new(),
    };
    let in_progress = !matches!(lock(&ctx.conn.session).pending, Pending::None);
    let continuing = mechanism == "OTP_TOKEN"
        || (mechanism == "SCRAM"
            && data.get("scram_type").and_then(Value::as_str) == Some("CLIENT_FINAL_MESSAGE"));
    if in_progress && !continuing {
        return Err(MockError::call(
            errno::EBUSY,
            "Another login ceremony is already in progress",
        ));
    }
    let attempt = match mechanism {
        "PASSWORD_PLAIN" => {
            let (u, pw) = (field(&data, "username")?, field(&data, "password")?);
            password_plain(&ctx, &u, &pw)
        }
        "API_KEY_PLAIN" => {
            let (u, k) = (field(&data, "username")?, field(&data, "api_key")?);
            api_key_plain(&ctx, &u, &k)?
        }
        "TOKEN_PLAIN" => token_plain(&ctx, &field(&data, "token")?),
        "OTP_TOKEN" => otp_token(&ctx, &field(&data, "otp_token")?)?,
        _ => return scram_step(&ctx, &data).await,
    };
    Ok(conclude(&ctx, attempt, &opts).await)
}

/// OTP_TOKEN, only right after OTP_REQUIRED; three wrong codes end the ceremony with AUTH_ERR
/// (the count is a guess).
fn otp_token(ctx: &Ctx, code: &str) -> Result<Attempt, MockError> {
    let mut s = lock(&ctx.conn.session);
    let Pending::Otp { username, tries } = &mut s.pending else {
        return Err(MockError::call(
            errno::EINVAL,
            "No login ceremony in progress",
        ));
    };
    let username = username.clone();
    let Some(user) = find_user(&ctx.shared, &username) else {
        return Ok(Attempt::AuthErr);
    };
    if user.otp_code.as_deref() == Some(code) {
        s.pending = Pending::None;
        return Ok(gate_api_access(ctx.version(), &user, Cred::Password));
    }
    *tries += 1;
    if *tries >= 3 {
        return Ok(Attempt::AuthErr);
    }
    Ok(Attempt::OtpRequired(username))
}

/// `auth.login_ex_continue [{"mechanism":"OTP_TOKEN","otp_token":…}]`.
async fn login_ex_continue(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    let data = args::object(&p, 0, "login_data")?;
    if data.get("mechanism").and_then(Value::as_str) != Some("OTP_TOKEN") {
        return Err(MockError::invalid(
            Some("login_data.mechanism"),
            "Input should be 'OTP_TOKEN'",
            errno::EINVAL,
        ));
    }
    let attempt = otp_token(&ctx, &field(&data, "otp_token")?)?;
    let wrong_again = matches!(attempt, Attempt::OtpRequired(_));
    if wrong_again {
        fail_delay(&ctx).await;
    }
    Ok(conclude(&ctx, attempt, &Map::new()).await)
}

/// One SCRAM round trip (§2.3, 26 only; the mechanism is unknown before).
async fn scram_step(ctx: &Ctx, data: &Map<String, Value>) -> Result<Value, MockError> {
    let rfc = field(data, "rfc_str")?;
    match data.get("scram_type").and_then(Value::as_str) {
        Some("CLIENT_FIRST_MESSAGE") => scram_first(ctx, &rfc).await,
        Some("CLIENT_FINAL_MESSAGE") => scram_final(ctx, &rfc).await,
        _ => Err(MockError::invalid(
            Some("login_data.scram_type"),
            "Input should be 'CLIENT_FIRST_MESSAGE' or 'CLIENT_FINAL_MESSAGE'",
            errno::EINVAL,
        )),
    }
}

async fn scram_first(ctx: &Ctx, rfc: &str) -> Result<Value, MockError> {
    // A malformed message, a client nonce that is not 32 bytes, or binding asked for over a
    // connection without TLS (the server cannot honour it there) or of a server from before
    // binding all end with AUTH_ERR here.
    let Ok(first) = scram::parse_client_first(rfc) else {
        return Ok(conclude(ctx, Attempt::AuthErr, &Map::new()).await);
    };
    if first.binding && !(ctx.conn.tls && ctx.shared.config.scram_channel_binding) {
        return Ok(conclude(ctx, Attempt::AuthErr, &Map::new()).await);
    }
    let key = lock(&ctx.shared.keys)
        .iter()
        .find(|k| k.id == first.key_id)
        .cloned();
    let Some(key) = key.filter(|k| k.owner == first.username) else {
        return Ok(conclude(ctx, Attempt::AuthErr, &Map::new()).await);
    };
    if key.revoked {
        return Ok(conclude(ctx, Attempt::AuthErr, &Map::new()).await);
    }
    if key.expired {
        return Ok(conclude(ctx, Attempt::Expired, &Map::new()).await);
    }
    let creds = scram_creds(&ctx.shared, &key.key);
    let ex = scram::Exchange::start(first, creds, &ctx.shared.ids.bytes(scram::NONCE_LEN));
    let server_first = ex.server_first.clone();
    lock(&ctx.conn.session).pending = Pending::Scram(Box::new(ex));
    Ok(json!({
        "response_type": "SCRAM_RESPONSE",
        "scram_type": "SERVER_FIRST_RESPONSE",
        "rfc_str": server_first,
        "user_info": null,
    }))
}

/// Server credentials of a key, derived once.
fn scram_creds(shared: &Shared, key: &str) -> scram::Creds {
    if let Some(c) = lock(&shared.scram).get(key) {
        return c.clone();
    }
    let material = key.split_once('-').map_or(key, |(_, m)| m);
    let creds = scram::Creds::derive(
        material,
        shared.ids.bytes(16),
        shared.config.scram_iterations.max(50_000),
    );
    lock(&shared.scram).insert(key.to_owned(), creds.clone());
    creds
}

async fn scram_final(ctx: &Ctx, rfc: &str) -> Result<Value, MockError> {
    let ex = match std::mem::take(&mut lock(&ctx.conn.session).pending) {
        Pending::Scram(ex) => ex,
        other => {
            lock(&ctx.conn.session).pending = other;
            return Err(MockError::call(
                errno::EINVAL,
                "No login ceremony in progress",
            ));
        }
    };
    let cb = match (&ctx.shared.tls, ctx.conn.tls) {
        (Some(t), true) => tls_server_end_point(&t.cert_der).ok(),
        _ => None,
    };
    let Ok(server_final) = ex.finish(rfc, cb.as_deref()) else {
        return Ok(conclude(ctx, Attempt::AuthErr, &Map::new()).await);
    };
    let user = find_user(&ctx.shared, &ex.first.username);
    let attempt = match &user {
        Some(u) => gate_api_access(ctx.version(), u, Cred::ApiKey(ex.first.key_id)),
        None => Attempt::AuthErr,
    };
    let Attempt::Success(who) = attempt else {
        return Ok(conclude(ctx, attempt, &Map::new()).await);
    };
    lock(&ctx.conn.session).user = Some(who.clone());
    ctx.shared.faults.logins.fetch_add(1, Ordering::SeqCst);
    Ok(json!({
        "response_type": "SCRAM_RESPONSE",
        "scram_type": "SERVER_FINAL_RESPONSE",
        "rfc_str": server_final,
        "user_info": user_info(ctx, &who),
    }))
}

/// `auth.mechanism_choices`: broken when anonymous on 25.04.2–25.10.2 (§8.3), so on 25.04.
async fn mechanism_choices(ctx: Ctx, _p: Vec<Value>) -> Result<Value, MockError> {
    if ctx.version() == ServerVersion::V25_04 && !ctx.conn.logged_in() {
        return Err(MockError::Exception {
            class: "AttributeError",
            message: "'NoneType' object has no attribute 'may_create_auth_token'".into(),
        });
    }
    Ok(json!(mechanisms(ctx.version())))
}

/// `auth.login [username, password, otp_token?]` → bool.
async fn login(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 3)?;
    let username = args::string(&p, 0, "username")?;
    let password = args::string(&p, 1, "password")?;
    let otp = p.get(2).and_then(Value::as_str).map(str::to_owned);
    let mut attempt = password_plain(&ctx, &username, &password);
    if matches!(attempt, Attempt::OtpRequired(_)) {
        attempt = match otp {
            Some(code) => otp_token(&ctx, &code)?,
            None => Attempt::AuthErr,
        };
        if matches!(attempt, Attempt::OtpRequired(_)) {
            attempt = Attempt::AuthErr;
        }
    }
    let ok = matches!(attempt, Attempt::Success(_));
    conclude(&ctx, attempt, &Map::new()).await;
    Ok(ok.into())
}

/// `auth.login_with_api_key [key]` → bool: looks up the owner, then API_KEY_PLAIN (same revoke
/// rule).
async fn login_with_api_key(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let key = args::string(&p, 0, "api_key")?;
    let attempt = match key_owner(&ctx.shared, &key) {
        Some(owner) => api_key_plain(&ctx, &owner, &key)?,
        None => Attempt::AuthErr,
    };
    let ok = matches!(attempt, Attempt::Success(_));
    conclude(&ctx, attempt, &Map::new()).await;
    Ok(ok.into())
}

/// `auth.login_with_token [token]` → bool.
async fn login_with_token(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let token = args::string(&p, 0, "token")?;
    let attempt = token_plain(&ctx, &token);
    let ok = matches!(attempt, Attempt::Success(_));
    conclude(&ctx, attempt, &Map::new()).await;
    Ok(ok.into())
}

/// `auth.generate_token [ttl=600, attrs={}, match_origin=true, single_use=false]` → token.
/// `match_origin` is accepted and ignored (every mock client is on loopback).
async fn generate_token(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 4)?;
    let ttl = match p.first() {
        None | Some(Value::Null) => 600,
        Some(v) => v.as_u64().ok_or_else(|| {
            MockError::invalid(
                Some("ttl"),
                "Input should be a valid integer",
                errno::EINVAL,
            )
        })?,
    };
    let single_use = p.get(3).and_then(Value::as_bool).unwrap_or(false);
    let Some(who) = lock(&ctx.conn.session).user.clone() else {
        return Err(super::dispatch::not_authenticated());
    };
    Ok(mint_token(&ctx.shared, &who.username, ttl, single_use).into())
}

/// `auth.me`.
async fn me(ctx: Ctx, _p: Vec<Value>) -> Result<Value, MockError> {
    let Some(who) = lock(&ctx.conn.session).user.clone() else {
        return Err(super::dispatch::not_authenticated());
    };
    Ok(user_info(&ctx, &who))
}

/// `auth.logout` → true: the connection stays open, unauthenticated; event-source subscriptions
/// end with `notify_unsubscribed` (§2.1, §5.3).
async fn logout(ctx: Ctx, _p: Vec<Value>) -> Result<Value, MockError> {
    {
        let mut s = lock(&ctx.conn.session);
        s.user = None;
        s.pending = Pending::None;
    }
    super::events::end_sources(&ctx.conn);
    Ok(true.into())
}
