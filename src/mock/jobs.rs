//! Jobs: ids from 1, WAITING → RUNNING → SUCCESS | FAILED | ABORTED, the full job object, and
//! `core.get_jobs` events (`docs/middleware.md` §4, `docs/apps.md` §1.5).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};

use serde_json::{Map, Value, json};
use tokio::sync::{oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::ServerVersion;
use super::auth;
use super::dispatch::{Ctx, JobSpec, MethodDef, args, handler, job_body};
use super::error::MockError;
use super::query;
use super::state::{Conn, Shared, lock};
use crate::protocol::{CollectionUpdate, EventKind, errno, redact};

/// The `state` of a job.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JobState {
    Waiting,
    Running,
    Success,
    Failed,
    Aborted,
}

impl JobState {
    fn as_str(self) -> &'static str {
        match self {
            JobState::Waiting => "WAITING",
            JobState::Running => "RUNNING",
            JobState::Success => "SUCCESS",
            JobState::Failed => "FAILED",
            JobState::Aborted => "ABORTED",
        }
    }

    /// Has the job ended?
    pub fn terminal(self) -> bool {
        matches!(
            self,
            JobState::Success | JobState::Failed | JobState::Aborted
        )
    }
}

/// One job.
#[derive(Debug)]
pub(crate) struct JobRec {
    pub id: i64,
    pub message_ids: Vec<Value>,
    pub method: String,
    pub arguments: Value,
    pub transient: bool,
    pub abortable: bool,
    pub percent: i64,
    pub description: String,
    pub result: Value,
    pub failure: Option<MockError>,
    pub state: JobState,
    pub time_started: i64,
    pub time_finished: Option<i64>,
    pub credentials: Value,
    pub owner: Option<String>,
    abort: CancellationToken,
    done: watch::Sender<bool>,
}

impl JobRec {
    /// The job object (`docs/middleware.md` §4.3), `message_ids` from 25.10 on.
    pub fn encode(&self, version: ServerVersion) -> Value {
        let mut m = Map::new();
        m.insert("id".into(), self.id.into());
        if version >= ServerVersion::V25_10 {
            m.insert("message_ids".into(), Value::Array(self.message_ids.clone()));
        }
        m.insert("method".into(), self.method.clone().into());
        m.insert("arguments".into(), self.arguments.clone());
        m.insert("transient".into(), self.transient.into());
        m.insert("description".into(), Value::Null);
        m.insert("abortable".into(), self.abortable.into());
        m.insert("logs_path".into(), Value::Null);
        m.insert("logs_excerpt".into(), Value::Null);
        m.insert(
            "progress".into(),
            json!({"percent": self.percent, "description": self.description, "extra": null}),
        );
        m.insert(
            "result".into(),
            if self.state == JobState::Success {
                self.result.clone()
            } else {
                Value::Null
            },
        );
        m.insert("result_encoding_error".into(), Value::Null);
        let (error, exception, exc_info) = match &self.failure {
            Some(e) => (
                Value::from(e.to_string()),
                Value::from(e.traceback(&self.method)),
                e.exc_info(),
            ),
            None => (Value::Null, Value::Null, Value::Null),
        };
        m.insert("error".into(), error);
        m.insert("exception".into(), exception);
        m.insert("exc_info".into(), exc_info);
        m.insert("state".into(), self.state.as_str().into());
        m.insert("time_started".into(), json!({"$date": self.time_started}));
        m.insert(
            "time_finished".into(),
            self.time_finished
                .map_or(Value::Null, |t| json!({"$date": t})),
        );
        m.insert("credentials".into(), self.credentials.clone());
        Value::Object(m)
    }
}

/// How many jobs the server holds before it forgets the oldest finished one as a new one
/// starts (the real server's job list does the same at 1,000).
const RETAINED_JOBS: usize = 1000;

/// The jobs the server still holds, and the per-lock queues.
#[derive(Debug, Default)]
pub(crate) struct JobStore {
    inner: Mutex<JobsInner>,
}

#[derive(Debug, Default)]
struct JobsInner {
    next_id: i64,
    jobs: BTreeMap<i64, JobRec>,
    locks: HashMap<String, Arc<tokio::sync::Mutex<()>>>,
}

impl JobStore {
    /// Run `f` on job `id`.
    pub fn with<R>(&self, id: i64, f: impl FnOnce(&mut JobRec) -> R) -> Option<R> {
        lock(&self.inner).jobs.get_mut(&id).map(f)
    }

    fn lock_for(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        lock(&self.inner)
            .locks
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Encoded jobs that `viewer` may see (full admins see all, others their own: §4.4).
    pub fn visible(&self, viewer: &auth::LoggedIn, version: ServerVersion) -> Vec<Value> {
        lock(&self.inner)
            .jobs
            .values()
            .filter(|j| viewer.full_admin || j.owner.as_deref() == Some(&viewer.username))
            .map(|j| j.encode(version))
            .collect()
    }

    fn watch(&self, id: i64) -> Option<watch::Receiver<bool>> {
        self.with(id, |j| j.done.subscribe())
    }
}

/// A queued job, to wait for its end.
pub(crate) struct JobHandle {
    pub id: i64,
    shared: Arc<Shared>,
    done: watch::Receiver<bool>,
}

impl JobHandle {
    /// Wait for the end: the result, the failure, or `null` when aborted (new-style replies).
    pub async fn outcome(mut self) -> Result<Value, MockError> {
        let _ = self.done.wait_for(|d| *d).await;
        self.shared
            .jobs
            .with(self.id, |j| match j.state {
                JobState::Success => Ok(j.result.clone()),
                JobState::Failed => Err(j
                    .failure
                    .clone()
                    .unwrap_or_else(|| MockError::call(errno::EFAULT, "Job failed"))),
                _ => Ok(Value::Null),
            })
            .unwrap_or(Ok(Value::Null))
    }
}

/// What a job body sees.
#[derive(Clone)]
pub(crate) struct JobCtx {
    pub shared: Arc<Shared>,
    pub id: i64,
    /// The connection that started the job (for the mid-job faults).
    starter: std::sync::Weak<super::state::Conn>,
}

impl JobCtx {
    /// `job.set_progress(percent, description)`: an empty description keeps the old one; a
    /// `changed` event goes out when something changed.
    pub fn progress(&self, percent: i64, description: &str) {
        let changed = self
            .shared
            .jobs
            .with(self.id, |j| {
                let p = percent.clamp(0, 100);
                let mut changed = false;
                if j.percent != p {
                    j.percent = p;
                    changed = true;
                }
                if !description.is_empty() && j.description != description {
                    j.description = description.to_owned();
                    changed = true;
                }
                changed
            })
            .unwrap_or(false);
        if changed {
            emit(&self.shared, self.id, EventKind::Changed);
        }
        self.mid_job_fault();
    }

    /// [`super::MockFaults::drop_mid_job`] and [`super::MockFaults::restart_mid_job`], at the
    /// first progress step of the first job.
    fn mid_job_fault(&self) {
        let f = &self.shared.config.faults;
        if !(f.drop_mid_job || f.restart_mid_job)
            || self
                .shared
                .faults
                .mid_job_fired
                .swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return;
        }
        if f.restart_mid_job {
            self.shared.faults.restart.notify_one();
        } else if let Some(conn) = self.starter.upgrade() {
            conn.drop_abruptly();
        }
    }

    /// Wait one `job_step`.
    pub async fn step(&self) {
        let d = self.shared.config.job_step;
        if !d.is_zero() {
            tokio::time::sleep(d).await;
        }
    }
}

/// Secret fields of job arguments, shown as `"********"` (`docs/apps.md` §1.2).
const SECRET_ARGS: &[&str] = &[
    "custom_compose_config",
    "custom_compose_config_string",
    "values",
];

fn redacted_arguments(method: &str, params: &[Value]) -> Value {
    let mut p = params.to_vec();
    redact::redact_params(method, &mut p);
    if method.starts_with("app.") {
        for v in p.iter_mut() {
            if let Some(m) = v.as_object_mut() {
                for k in SECRET_ARGS {
                    if let Some(x) = m.get_mut(*k) {
                        *x = redact::REDACTED.into();
                    }
                }
            }
        }
    }
    Value::Array(p)
}

/// Send a `core.get_jobs` event for job `id` to every subscribed connection allowed to see it.
fn emit(shared: &Arc<Shared>, id: i64, kind: EventKind) {
    let Some((fields, transient, owner)) = shared.jobs.with(id, |j| {
        (
            j.encode(shared.config.version),
            j.transient,
            j.owner.clone(),
        )
    }) else {
        return;
    };
    if transient {
        return;
    }
    shared.publish(
        CollectionUpdate {
            msg: kind,
            collection: "core.get_jobs".into(),
            id: Some(id.into()),
            fields: Some(fields),
            extra: None,
        },
        |conn: &Conn| {
            lock(&conn.session)
                .user
                .as_ref()
                .is_some_and(|u| u.full_admin || owner.as_deref() == Some(u.username.as_str()))
        },
    );
}

/// Queue a job (state WAITING, `added` event) and spawn its runner, which waits for `go`.
pub(crate) fn submit(
    ctx: &Ctx,
    method: &str,
    spec: JobSpec,
    lock_name: Option<String>,
    params: Vec<Value>,
    go: Option<oneshot::Receiver<()>>,
) -> JobHandle {
    let shared = ctx.shared.clone();
    let user = lock(&ctx.conn.session).user.clone();
    let (done_tx, done_rx) = watch::channel(false);
    let abort = CancellationToken::new();
    let id = {
        let mut inner = lock(&shared.jobs.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        if inner.jobs.len() > RETAINED_JOBS {
            let oldest_finished = inner
                .jobs
                .iter()
                .find(|(_, j)| j.state.terminal())
                .map(|(id, _)| *id);
            if let Some(old) = oldest_finished {
                inner.jobs.remove(&old);
            }
        }
        inner.jobs.insert(
            id,
            JobRec {
                id,
                message_ids: ctx.request_id.clone().into_iter().collect(),
                method: method.to_owned(),
                arguments: redacted_arguments(method, &params),
                transient: spec.transient,
                abortable: spec.abortable_since.is_some_and(|v| ctx.version() >= v),
                percent: 0,
                description: String::new(),
                result: Value::Null,
                failure: None,
                state: JobState::Waiting,
                time_started: shared.ids.now_ms(),
                time_finished: None,
                credentials: user
                    .as_ref()
                    .map_or(Value::Null, auth::LoggedIn::credentials),
                owner: user.map(|u| u.username),
                abort: abort.clone(),
                done: done_tx,
            },
        );
        id
    };
    emit(&shared, id, EventKind::Added);
    let jctx = JobCtx {
        shared: shared.clone(),
        id,
        starter: Arc::downgrade(&ctx.conn),
    };
    tokio::spawn(run(jctx, spec, lock_name, params, go, abort));
    JobHandle {
        id,
        shared,
        done: done_rx,
    }
}

/// Start a job that the server runs on its own, with no caller (a scheduled task): owned by
/// nobody, so only full admins see its `core.get_jobs` events. `body` reports progress through
/// its [`JobCtx`].
pub(crate) fn spawn_system_job<F, Fut>(
    shared: &Arc<Shared>,
    method: &str,
    params: Vec<Value>,
    body: F,
) where
    F: FnOnce(JobCtx) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = Result<Value, MockError>> + Send + 'static,
{
    let (done_tx, _done_rx) = watch::channel(false);
    let id = {
        let mut inner = lock(&shared.jobs.inner);
        inner.next_id += 1;
        let id = inner.next_id;
        inner.jobs.insert(
            id,
            JobRec {
                id,
                message_ids: Vec::new(),
                method: method.to_owned(),
                arguments: redacted_arguments(method, &params),
                transient: false,
                abortable: false,
                percent: 0,
                description: String::new(),
                result: Value::Null,
                failure: None,
                state: JobState::Running,
                time_started: shared.ids.now_ms(),
                time_finished: None,
                credentials: Value::Null,
                owner: None,
                abort: CancellationToken::new(),
                done: done_tx,
            },
        );
        id
    };
    emit(shared, id, EventKind::Added);
    // Started by the server itself: no connection to drop for a mid-job fault.
    let jctx = JobCtx {
        shared: shared.clone(),
        id,
        starter: std::sync::Weak::new(),
    };
    let shared = shared.clone();
    tokio::spawn(async move {
        let outcome = match body(jctx).await {
            Ok(v) => Outcome::Success(v),
            Err(e) => Outcome::Failed(e),
        };
        finish(&shared, id, outcome);
    });
}

async fn run(
    jctx: JobCtx,
    spec: JobSpec,
    lock_name: Option<String>,
    params: Vec<Value>,
    go: Option<oneshot::Receiver<()>>,
    abort: CancellationToken,
) {
    if let Some(go) = go {
        let _ = go.await;
    }
    let shared = jctx.shared.clone();
    let id = jctx.id;
    let _guard = match lock_name {
        Some(name) => {
            let m = shared.jobs.lock_for(&name);
            tokio::select! {
                g = m.lock_owned() => Some(g),
                _ = abort.cancelled() => {
                    finish(&shared, id, Outcome::Aborted);
                    return;
                }
            }
        }
        None => None,
    };
    if abort.is_cancelled() {
        finish(&shared, id, Outcome::Aborted);
        return;
    }
    shared.jobs.with(id, |j| j.state = JobState::Running);
    emit(&shared, id, EventKind::Changed);
    let method = shared
        .jobs
        .with(id, |j| j.method.clone())
        .unwrap_or_default();
    // `docs/middleware.md` §4.2: on /api/current the argument schema is checked inside the job.
    if let Err(e) = super::dispatch::catalog_validation(&method, &params) {
        finish(&shared, id, Outcome::Failed(e));
        return;
    }
    let body = (spec.body)(jctx, params);
    let outcome = tokio::select! {
        r = body => match r {
            Ok(v) => Outcome::Success(v),
            Err(e) => Outcome::Failed(e),
        },
        _ = abort.cancelled() => Outcome::Aborted,
    };
    finish(&shared, id, outcome);
}

enum Outcome {
    Success(Value),
    Failed(MockError),
    Aborted,
}

fn finish(shared: &Arc<Shared>, id: i64, outcome: Outcome) {
    let now = shared.ids.now_ms();
    let success = matches!(outcome, Outcome::Success(_));
    shared.jobs.with(id, |j| {
        j.time_finished = Some(now);
        match outcome {
            Outcome::Success(v) => {
                j.result = v;
                j.percent = 100;
                j.state = JobState::Success;
            }
            Outcome::Failed(e) => {
                j.failure = Some(e);
                j.state = JobState::Failed;
            }
            Outcome::Aborted => j.state = JobState::Aborted,
        }
    });
    emit(shared, id, EventKind::Changed);
    if success {
        // §4.4: the final set_progress(100) and the `finally` block each send one.
        emit(shared, id, EventKind::Changed);
    }
    // `send_replace`, not `send`: with nobody subscribed yet (the caller got its job id and
    // left), `send` would drop the value, and a `core.job_wait` subscribing later would wait
    // for an end that already came.
    shared.jobs.with(id, |j| {
        j.done.send_replace(true);
    });
}

pub(crate) fn methods() -> Vec<MethodDef> {
    vec![
        MethodDef::call("core.get_jobs", handler!(get_jobs)).filterable(),
        MethodDef::call("core.job_abort", handler!(job_abort)),
        MethodDef::job(
            "core.job_wait",
            JobSpec {
                body: job_body!(job_wait),
                transient: false,
                lock: None,
                abortable_since: Some(ServerVersion::V24_10),
            },
        ),
        MethodDef::job(
            "pool.scrub.scrub",
            JobSpec {
                body: job_body!(scrub),
                transient: true,
                lock: Some(|p| {
                    p.first()
                        .and_then(Value::as_str)
                        .map(|n| format!("scrub_{n}"))
                }),
                abortable_since: Some(ServerVersion::V24_10),
            },
        ),
    ]
}

/// `core.get_jobs [filters, options]`.
async fn get_jobs(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    let Some(user) = lock(&ctx.conn.session).user.clone() else {
        return Err(super::dispatch::not_authenticated());
    };
    let items = ctx.shared.jobs.visible(&user, ctx.version());
    query::query(items, &p)
}

/// `core.job_abort [id]` → null. Unknown ids fail with ENOENT (a guess: the real server's
/// message was not checked).
async fn job_abort(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    let id = args::int(&p, 0, "id")?;
    let token = ctx
        .shared
        .jobs
        .with(id, |j| (!j.state.terminal()).then(|| j.abort.clone()))
        .ok_or_else(|| {
            MockError::call(errno::ENOENT, format!("Job with id {id} does not exist"))
        })?;
    if let Some(t) = token {
        t.cancel();
    }
    Ok(Value::Null)
}

/// `core.job_wait [id]`: mirrors the target's progress and ends like it.
async fn job_wait(jctx: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    let id = args::int(&p, 0, "id")?;
    let mut rx = jctx.shared.jobs.watch(id).ok_or_else(|| {
        MockError::call(errno::ENOENT, format!("Job with id {id} does not exist"))
    })?;
    loop {
        let snapshot = jctx
            .shared
            .jobs
            .with(id, |j| (j.percent, j.description.clone(), j.state));
        if let Some((pct, desc, _)) = &snapshot {
            jctx.progress(*pct, desc);
        }
        if *rx.borrow() {
            break;
        }
        tokio::select! {
            r = rx.changed() => if r.is_err() { break },
            _ = tokio::time::sleep(jctx.shared.config.job_step.max(std::time::Duration::from_millis(1))) => {}
        }
    }
    jctx.shared
        .jobs
        .with(id, |j| match j.state {
            JobState::Success => Ok(j.result.clone()),
            JobState::Failed => Err(j
                .failure
                .clone()
                .unwrap_or_else(|| MockError::call(errno::EFAULT, "Job failed"))),
            _ => Err(MockError::call(
                errno::EFAULT,
                format!("Job {id} did not succeed (state='ABORTED')"),
            )),
        })
        .unwrap_or(Ok(Value::Null))
}

/// `pool.scrub.scrub [name, action="START"]`: a TRANSIENT job on the real server (no
/// `core.get_jobs` events, `docs/apps.md` §1.5), here over the one mock pool `tank`.
async fn scrub(jctx: JobCtx, p: Vec<Value>) -> Result<Value, MockError> {
    let name = args::string(&p, 0, "name")?;
    let action = match p.get(1) {
        None => "START".to_owned(),
        Some(Value::String(s)) if ["START", "STOP", "PAUSE"].contains(&s.as_str()) => s.clone(),
        Some(_) => {
            return Err(MockError::invalid(
                Some("action"),
                "Input should be 'START', 'STOP' or 'PAUSE'",
                errno::EINVAL,
            ));
        }
    };
    if name != "tank" {
        return Err(MockError::MatchNotFound);
    }
    if action != "START" {
        return Ok(Value::Null);
    }
    for pct in [25, 50, 75, 100] {
        jctx.step().await;
        jctx.progress(pct, &format!("Scrubbing {name}"));
    }
    Ok(Value::Null)
}
