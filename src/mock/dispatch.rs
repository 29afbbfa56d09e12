//! Method dispatch, independent of the wire framing: the method table, the authentication and
//! rate-limit gates (`docs/middleware.md` §2.1, §2.4, §2.5), schema checks, and job launching (§4.2).
//!
//! Both framings, JSON-RPC (`rpc.rs`) and the legacy DDP of `/websocket` (`ddp.rs`), call
//! [`dispatch`] with a method name and positional params and turn the outcome into a reply.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

use futures_util::future::BoxFuture;
use serde_json::{Map, Value};
use tokio::sync::oneshot;

use super::ServerVersion;
use super::error::MockError;
use super::jobs::{self, JobCtx};
use super::state::{Conn, Shared, lock};
use crate::catalog::{Catalog, validate_params};
use crate::protocol::{ValidationEntry, errno};

/// Everything a handler knows about its call.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub shared: Arc<Shared>,
    pub conn: Arc<Conn>,
    /// The JSON-RPC id of the request (None for a notification-style call without id).
    pub request_id: Option<Value>,
    /// The method name as called.
    pub method: String,
    /// Work that waits until the reply is queued (see [`Ctx::defer`]).
    pub deferred: Arc<std::sync::Mutex<Vec<oneshot::Sender<()>>>>,
}

impl Ctx {
    /// A context for one call.
    pub fn new(
        shared: Arc<Shared>,
        conn: Arc<Conn>,
        request_id: Option<Value>,
        method: String,
    ) -> Self {
        Ctx {
            shared,
            conn,
            request_id,
            method,
            deferred: Arc::default(),
        }
    }

    /// A signal that fires once the reply to this call is queued (or the call is dropped).
    /// Legacy jobs and event sources start only then, so their events never overtake the reply
    /// carrying their id, which keeps transcripts deterministic.
    pub fn defer(&self) -> oneshot::Receiver<()> {
        let (tx, rx) = oneshot::channel();
        lock(&self.deferred).push(tx);
        rx
    }

    /// Fire every [`Ctx::defer`] signal; the framing calls it right after queuing the reply.
    pub fn release(&self) {
        for tx in lock(&self.deferred).drain(..) {
            let _ = tx.send(());
        }
    }

    /// The imitated version.
    pub fn version(&self) -> ServerVersion {
        self.shared.config.version
    }
}

/// A plain method.
pub(crate) type Handler = fn(Ctx, Vec<Value>) -> BoxFuture<'static, Result<Value, MockError>>;
/// The body of a job method.
pub(crate) type JobBody = fn(JobCtx, Vec<Value>) -> BoxFuture<'static, Result<Value, MockError>>;
/// Computes a job's lock name from its raw arguments.
pub(crate) type LockFn = fn(&[Value]) -> Option<String>;

/// Who may call a method.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// No authentication needed (and rate limited when anonymous).
    Anonymous,
    /// A login is needed.
    Login,
    /// `core.ping`: login on 25.04, anonymous from 25.10 (`docs/middleware.md` §2.1).
    AnonymousFrom25_10,
    /// `core.get_methods`: anonymous up to 25.04, login from 25.10 (`docs/middleware.md` §6.1, §0.1).
    AnonymousUntil25_04,
}

impl Access {
    /// Does the method need no authentication on `v`?
    pub fn anonymous(self, v: ServerVersion) -> bool {
        match self {
            Access::Anonymous => true,
            Access::Login => false,
            Access::AnonymousFrom25_10 => v >= ServerVersion::V25_10,
            Access::AnonymousUntil25_04 => v <= ServerVersion::V25_04,
        }
    }
}

/// A job method's settings.
#[derive(Clone, Copy)]
pub(crate) struct JobSpec {
    pub body: JobBody,
    /// Transient jobs emit no `core.get_jobs` events (`docs/middleware.md` §4.4).
    pub transient: bool,
    pub lock: Option<LockFn>,
    /// The first release on which `core.job_abort` may abort it; `None`: never abortable.
    pub abortable_since: Option<ServerVersion>,
}

/// How a method runs.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    Call(Handler),
    Job(JobSpec),
}

/// One entry of the method table.
#[derive(Clone, Copy)]
pub(crate) struct MethodDef {
    pub name: &'static str,
    pub access: Access,
    pub kind: Kind,
    /// `false` only for `core.set_options` (exempt from the rate limit).
    pub rate_limited: bool,
    /// Filterable query method (`[filters, options]`).
    pub filterable: bool,
    /// The first release that has it.
    pub since: ServerVersion,
    /// The last release that has it.
    pub until: ServerVersion,
}

impl MethodDef {
    /// A plain method that needs a login.
    pub const fn call(name: &'static str, h: Handler) -> Self {
        MethodDef {
            name,
            access: Access::Login,
            kind: Kind::Call(h),
            rate_limited: true,
            filterable: false,
            since: ServerVersion::V24_10,
            until: ServerVersion::V27_0,
        }
    }

    /// A job method that needs a login.
    pub const fn job(name: &'static str, spec: JobSpec) -> Self {
        MethodDef {
            name,
            access: Access::Login,
            kind: Kind::Job(spec),
            rate_limited: true,
            filterable: false,
            since: ServerVersion::V24_10,
            until: ServerVersion::V27_0,
        }
    }

    /// Change who may call it.
    pub const fn access(mut self, a: Access) -> Self {
        self.access = a;
        self
    }

    /// Mark it filterable.
    pub const fn filterable(mut self) -> Self {
        self.filterable = true;
        self
    }

    /// Absent before `v` ("Method does not exist" there).
    pub const fn since(mut self, v: ServerVersion) -> Self {
        self.since = v;
        self
    }

    /// Absent after `v`.
    pub const fn until(mut self, v: ServerVersion) -> Self {
        self.until = v;
        self
    }

    /// Does release `v` have it?
    pub fn available(&self, v: ServerVersion) -> bool {
        self.since <= v && v <= self.until
    }

    /// Exempt it from the rate limit.
    pub const fn not_rate_limited(mut self) -> Self {
        self.rate_limited = false;
        self
    }
}

/// Wrap an `async fn(Ctx, Vec<Value>)` as a [`Handler`].
macro_rules! handler {
    ($f:path) => {
        |c, p| Box::pin($f(c, p))
    };
}
pub(crate) use handler;

/// Wrap an `async fn(JobCtx, Vec<Value>)` as a [`JobBody`].
macro_rules! job_body {
    ($f:path) => {
        |c, p| Box::pin($f(c, p))
    };
}
pub(crate) use job_body;

/// The method table, built once.
pub(crate) fn table() -> &'static HashMap<&'static str, MethodDef> {
    static TABLE: OnceLock<HashMap<&'static str, MethodDef>> = OnceLock::new();
    TABLE.get_or_init(|| {
        let mut all = Vec::new();
        all.extend(super::system::methods());
        all.extend(super::auth::methods());
        all.extend(super::jobs::methods());
        all.extend(super::events::methods());
        all.extend(super::apps::methods());
        all.extend(super::filesystem::methods());
        all.extend(super::pools::methods());
        all.into_iter().map(|d| (d.name, d)).collect()
    })
}

/// Run one call through the gates and the handler.
pub(crate) async fn dispatch(ctx: Ctx, params: Vec<Value>) -> Result<Value, MockError> {
    let version = ctx.version();
    let Some(def) = table().get(ctx.method.as_str()).copied() else {
        return not_implemented(&ctx, &params).await;
    };
    if !def.available(version) {
        return Err(MockError::MethodNotFound);
    }
    let logged_in = ctx.conn.logged_in();
    let anonymous_ok = def.access.anonymous(version);
    if !logged_in && !anonymous_ok {
        // §2.4: not counted by the rate limiter, fails at once.
        return Err(not_authenticated());
    }
    if anonymous_ok && def.rate_limited && counted(&ctx) {
        rate_limit(&ctx).await?;
    }
    authorize(&ctx)?;
    match def.kind {
        Kind::Call(h) => {
            schema_check(&ctx, &def, &params)?;
            h(ctx, params).await
        }
        Kind::Job(spec) => launch_job(ctx, def, spec, params).await,
    }
}

/// `-32001 ENOTAUTHENTICATED "Not authenticated"` (§2.4).
pub(crate) fn not_authenticated() -> MockError {
    MockError::call(errno::ENOTAUTHENTICATED, "Not authenticated")
}

/// A method outside the mock's table. Unknown to the bundled 25.04 catalog too: -32601. Known
/// there (the real server has it): the same gates as a real call (login, rate limit, roles,
/// argument schema → -32602), then -32001 ENOSYS "… is not implemented by the midscript mock"
/// (the mock's own answer; the real server would run the method).
async fn not_implemented(ctx: &Ctx, params: &[Value]) -> Result<Value, MockError> {
    let Some(info) = Catalog::bundled().get(&ctx.method) else {
        return Err(MockError::MethodNotFound);
    };
    let logged_in = ctx.conn.logged_in();
    if !logged_in && !info.no_auth_required {
        return Err(not_authenticated());
    }
    if info.no_auth_required && counted(ctx) {
        rate_limit(ctx).await?;
    }
    authorize(ctx)?;
    if !info.job {
        catalog_validation(&ctx.method, params)?;
    }
    Err(MockError::call(
        ENOSYS,
        format!(
            "Method {:?} is not implemented by the midscript mock",
            ctx.method
        ),
    ))
}

/// Function not implemented.
const ENOSYS: i64 = 38;

/// Methods whose 25.04 schema in the catalog does not fit every imitated version (SCRAM and
/// `reconnect_token` in `auth.login_ex`, `legacy_jobs` in `core.set_options`, …): the mock's
/// handlers check their arguments themselves.
const VERSION_SPECIFIC_SCHEMAS: &[&str] = &[
    "auth.login_ex",
    "auth.login_ex_continue",
    "auth.generate_token",
    "core.set_options",
];

/// -32602 entries from the bundled catalog's schema of `method` (pydantic-like messages).
pub(crate) fn catalog_validation(method: &str, params: &[Value]) -> Result<(), MockError> {
    if VERSION_SPECIFIC_SCHEMAS.contains(&method) {
        return Ok(());
    }
    match Catalog::bundled().get(method) {
        Some(info) => validate_params(info, params).map_err(MockError::Validation),
        None => Ok(()),
    }
}

/// Roles: a full admin may call anything; other users (READONLY_ADMIN in the mock) only methods
/// whose catalog roles include READONLY_ADMIN or that need no role (-32001 EACCES "Not
/// authorized", §2.4).
fn authorize(ctx: &Ctx) -> Result<(), MockError> {
    let Some(user) = lock(&ctx.conn.session).user.clone() else {
        return Ok(());
    };
    if user.full_admin {
        return Ok(());
    }
    let allowed = Catalog::bundled()
        .get(&ctx.method)
        .is_none_or(|m| m.roles.is_empty() || m.roles.iter().any(|r| r == "READONLY_ADMIN"));
    if allowed {
        Ok(())
    } else {
        Err(MockError::call(errno::EACCES, "Not authorized"))
    }
}

/// Argument-schema check of a non-job method (-32602 with pydantic-like entries from the
/// catalog). Job methods are checked inside the job instead (`docs/middleware.md` §4.2).
fn schema_check(ctx: &Ctx, _def: &MethodDef, params: &[Value]) -> Result<(), MockError> {
    catalog_validation(&ctx.method, params)
}

/// Does the rate limiter count this call to a no-auth method? Anonymous calls only, except on
/// 24.10, which counted logged-in ones too (`docs/middleware.md` §2.5).
fn counted(ctx: &Ctx) -> bool {
    !ctx.conn.logged_in() || ctx.version() == ServerVersion::V24_10
}

/// Count an anonymous call; over the limit, stall and fail with EBUSY (§2.5).
async fn rate_limit(ctx: &Ctx) -> Result<(), MockError> {
    let cfg = &ctx.shared.config.rate_limit;
    let over =
        lock(&ctx.shared.rate).over_limit(&ctx.method, ctx.conn.ip, cfg.max_calls, cfg.window);
    if !over {
        return Ok(());
    }
    let delay = ctx
        .shared
        .ids
        .duration_between(cfg.delay_min, cfg.delay_max);
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    Err(MockError::call(errno::EBUSY, "Rate Limit Exceeded"))
}

/// Queue a job. Legacy mode answers with the job id at once (the job starts after the reply is
/// queued); new-style mode (25.10+, `legacy_jobs: false`) answers at the end (§4.2): the result,
/// the job's error, or `null` when aborted.
async fn launch_job(
    ctx: Ctx,
    def: MethodDef,
    spec: JobSpec,
    params: Vec<Value>,
) -> Result<Value, MockError> {
    let legacy = ctx.version() < ServerVersion::V25_10 || lock(&ctx.conn.options).legacy_jobs;
    let lock_name = match spec.lock {
        Some(f) => match f(&params) {
            Some(name) => Some(name),
            None => {
                // §4.2: a lock name that cannot be computed fails the call itself.
                return Err(MockError::call(
                    errno::EINVAL,
                    format!("Error handling job lock for {}", def.name),
                ));
            }
        },
        None => None,
    };
    let go = legacy.then(|| ctx.defer());
    let handle = jobs::submit(&ctx, def.name, spec, lock_name, params, go);
    if legacy {
        return Ok(Value::from(handle.id));
    }
    handle.outcome().await
}

/// Helpers to read positional arguments with pydantic-like errors.
pub(crate) mod args {
    use super::*;

    /// A required string argument.
    pub fn string(p: &[Value], i: usize, attr: &str) -> Result<String, MockError> {
        match p.get(i) {
            None => Err(required(attr)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(MockError::invalid(
                Some(attr),
                "Input should be a valid string",
                errno::EINVAL,
            )),
        }
    }

    /// A required integer argument.
    pub fn int(p: &[Value], i: usize, attr: &str) -> Result<i64, MockError> {
        match p.get(i) {
            None => Err(required(attr)),
            Some(v) => v.as_i64().ok_or_else(|| {
                MockError::invalid(Some(attr), "Input should be a valid integer", errno::EINVAL)
            }),
        }
    }

    /// An optional object argument (missing or null = empty).
    pub fn object(p: &[Value], i: usize, attr: &str) -> Result<Map<String, Value>, MockError> {
        match p.get(i) {
            None | Some(Value::Null) => Ok(Map::new()),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(MockError::invalid(
                Some(attr),
                "Input should be a valid dictionary",
                errno::EINVAL,
            )),
        }
    }

    /// A required object argument.
    pub fn dict(p: &[Value], i: usize, attr: &str) -> Result<Map<String, Value>, MockError> {
        match p.get(i) {
            None => Err(required(attr)),
            Some(Value::Object(m)) => Ok(m.clone()),
            Some(_) => Err(MockError::invalid(
                Some(attr),
                "Input should be a valid dictionary",
                errno::EINVAL,
            )),
        }
    }

    /// A required string field `key` of an object, reported at `attr`.
    pub fn field_str(m: &Map<String, Value>, key: &str, attr: &str) -> Result<String, MockError> {
        match m.get(key) {
            None => Err(required(attr)),
            Some(Value::String(s)) => Ok(s.clone()),
            Some(_) => Err(MockError::invalid(
                Some(attr),
                "Input should be a valid string",
                errno::EINVAL,
            )),
        }
    }

    /// "Field required".
    pub fn required(attr: &str) -> MockError {
        MockError::invalid(Some(attr), "Field required", errno::EINVAL)
    }

    /// `Too many arguments (expected N, found M)` when more than `max` were given.
    pub fn at_most(p: &[Value], max: usize) -> Result<(), MockError> {
        if p.len() > max {
            return Err(MockError::Validation(vec![ValidationEntry {
                attribute: Some(String::new()),
                message: format!("Too many arguments (expected {max}, found {})", p.len()),
                errno: errno::EINVAL,
            }]));
        }
        Ok(())
    }

    /// Optional boolean field of an options object.
    pub fn flag(
        m: &Map<String, Value>,
        key: &str,
        default: bool,
        attr: &str,
    ) -> Result<bool, MockError> {
        match m.get(key) {
            None => Ok(default),
            Some(Value::Bool(b)) => Ok(*b),
            Some(_) => Err(MockError::invalid(
                Some(&format!("{attr}.{key}")),
                "Input should be a valid boolean",
                errno::EINVAL,
            )),
        }
    }
}
