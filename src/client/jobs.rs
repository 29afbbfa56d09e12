//! Waiting for middleware jobs (`docs/middleware.md` §4), in legacy job mode, which every version
//! speaks: the call answers at once with a job id, and the outcome arrives as `core.get_jobs`
//! events. The same on both dialects: on the legacy `/websocket` the subscription is a `sub`
//! and the events are `added` / `changed` frames (§1.4).
//!
//! - The connection subscribes to `core.get_jobs` *before* the first job call, and every job
//!   event is recorded by id from then on, so events that beat the job-id reply are not lost
//!   (§4.6: the official client buffers per id for the same race).
//! - Every event carries the full job object, so only the latest one per id is kept.
//! - Transient jobs send no events at all (§4.4), so a job that stays quiet is polled with
//!   `core.get_jobs [["id","=",N]]`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;

use super::Client;
use super::error::{Error, Result, ServerError};

/// Job objects remembered per connection (a full admin sees every job on the box), besides
/// the jobs this connection started and has not read the outcome of, which are all kept.
const REMEMBERED_JOBS: usize = 1024;
/// What the server keeps: its most recent 1,000 jobs (it forgets the oldest finished one when
/// a new one starts beyond that).
const SERVER_KEEPS: &str = "it keeps only its 1,000 most recent jobs";
/// How long a job may stay silent before it is polled, at first and at most.
const FIRST_POLL: Duration = Duration::from_millis(750);
const MAX_POLL: Duration = Duration::from_secs(5);

/// The latest job objects by id, and who waits for which.
#[derive(Default)]
pub(crate) struct JobTable {
    latest: HashMap<i64, Value>,
    /// Ids that may be forgotten, oldest first.
    order: VecDeque<i64>,
    /// Jobs this connection started whose outcome nobody has read yet: never forgotten, since
    /// the server forgets them after 1,000 newer jobs and a script may ask for them later.
    kept: HashSet<i64>,
    watchers: HashMap<i64, watch::Sender<Value>>,
    /// The `core.get_jobs` subscription ended; waiters rely on polling.
    events_lost: bool,
}

impl JobTable {
    /// Record a job object from an event or a poll.
    pub(crate) fn record(&mut self, job: Value) {
        let Some(id) = job.get("id").and_then(Value::as_i64) else {
            return;
        };
        if let Some(w) = self.watchers.get(&id) {
            w.send_replace(job.clone());
        }
        if self.latest.insert(id, job).is_none() && !self.kept.contains(&id) {
            self.order.push_back(id);
            self.forget_oldest();
        }
    }

    fn forget_oldest(&mut self) {
        while self.order.len() > REMEMBERED_JOBS {
            if let Some(old) = self.order.pop_front()
                && !self.kept.contains(&old)
            {
                self.latest.remove(&old);
            }
        }
    }

    /// Keep job `id` until [`JobTable::release`]: this connection started it.
    fn keep(&mut self, id: i64) {
        self.kept.insert(id);
    }

    /// The outcome of job `id` has been read: it may be forgotten like any other.
    fn release(&mut self, id: i64) {
        if self.kept.remove(&id) && self.latest.contains_key(&id) {
            self.order.push_back(id);
            self.forget_oldest();
        }
    }

    fn watch(&mut self, id: i64) -> watch::Receiver<Value> {
        let current = self.latest.get(&id).cloned().unwrap_or(Value::Null);
        let w = self
            .watchers
            .entry(id)
            .or_insert_with(|| watch::channel(current.clone()).0);
        w.send_replace(current);
        w.subscribe()
    }

    /// The ids someone waits on.
    pub(crate) fn watched(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self.watchers.keys().copied().collect();
        v.sort_unstable();
        v
    }

    fn unwatch(&mut self, id: i64) {
        self.watchers.remove(&id);
    }

    pub(crate) fn subscription_lost(&mut self) {
        self.events_lost = true;
    }

    pub(crate) fn connection_lost(&mut self) {
        self.watchers.clear();
    }
}

/// A job's progress, as reported to a progress callback.
#[derive(Debug, Clone, PartialEq)]
pub struct JobProgress {
    /// The job id.
    pub job_id: i64,
    /// WAITING, RUNNING, SUCCESS, FAILED or ABORTED.
    pub state: String,
    /// 0..=100, when the job reports it.
    pub percent: Option<f64>,
    /// The job's current description of what it does.
    pub description: Option<String>,
}

impl JobProgress {
    fn from_job(job: &Value) -> Option<JobProgress> {
        Some(JobProgress {
            job_id: job.get("id")?.as_i64()?,
            state: job
                .get("state")
                .and_then(Value::as_str)
                .unwrap_or("WAITING")
                .to_owned(),
            percent: job.pointer("/progress/percent").and_then(Value::as_f64),
            description: job
                .pointer("/progress/description")
                .and_then(Value::as_str)
                .filter(|d| !d.is_empty())
                .map(str::to_owned),
        })
    }
}

/// A job that was started; wait for it with [`JobHandle::wait`] or abort it.
#[derive(Debug, Clone)]
pub struct JobHandle {
    client: Client,
    /// The job id.
    pub id: i64,
    /// The method that started it.
    pub method: String,
}

fn terminal(job: &Value) -> bool {
    matches!(
        job.get("state").and_then(Value::as_str),
        Some("SUCCESS" | "FAILED" | "ABORTED")
    )
}

impl JobHandle {
    /// Wait until the job ends; report progress changes to `progress`. Jobs can run for hours,
    /// so there is no timeout: cancel by dropping the future (and [`JobHandle::abort`] to stop
    /// the job on the server).
    pub async fn wait(&self, mut progress: impl FnMut(&JobProgress) + Send) -> Result<Value> {
        let mut rx = self.client.link.router().jobs.watch(self.id);
        let guard = Unwatch {
            client: &self.client,
            id: self.id,
        };
        let mut last: Option<JobProgress> = None;
        let mut quiet = FIRST_POLL;
        let mut misses = 0;
        loop {
            let job = rx.borrow_and_update().clone();
            if let Some(p) = JobProgress::from_job(&job)
                && last.as_ref() != Some(&p)
            {
                progress(&p);
                last = Some(p);
            }
            if terminal(&job) {
                drop(guard);
                self.client.link.router().jobs.release(self.id);
                return self.outcome(&job);
            }
            tokio::select! {
                changed = rx.changed() => {
                    if changed.is_err() {
                        return Err(self.client.link.ended_error());
                    }
                    quiet = FIRST_POLL;
                }
                _ = tokio::time::sleep(quiet) => {
                    quiet = (quiet * 2).min(MAX_POLL);
                    match self.poll().await? {
                        Some(job) => {
                            misses = 0;
                            self.client.link.router().jobs.record(job);
                        }
                        None => {
                            misses += 1;
                            if misses >= 3 {
                                return Err(Error::Protocol(format!(
                                    "job {} ({}): the server no longer has this job ({SERVER_KEEPS}), and this connection did not see it end",
                                    self.id, self.method
                                )));
                            }
                        }
                    }
                }
            }
        }
    }

    /// Ask the server for the job object.
    async fn poll(&self) -> Result<Option<Value>> {
        let filters = json!([["id", "=", self.id]]);
        let options = json!({"extra": {"raw_result": true}});
        let found = self
            .client
            .call("core.get_jobs", vec![filters, options])
            .await
            .map_err(|e| unanswered(e, &format!("job {} ({})", self.id, self.method)))?;
        Ok(found.as_array().and_then(|a| a.first()).cloned())
    }

    fn outcome(&self, job: &Value) -> Result<Value> {
        match job.get("state").and_then(Value::as_str) {
            Some("SUCCESS") => Ok(job.get("result").cloned().unwrap_or(Value::Null)),
            Some("ABORTED") => Err(Error::JobAborted {
                method: self.method.clone(),
                job_id: self.id,
            }),
            _ => Err(Error::from(ServerError::from_failed_job(&self.method, job))),
        }
    }

    /// Abort the job (`core.job_abort`). The job ends ABORTED if it supports aborting.
    pub async fn abort(&self) -> Result<()> {
        self.client
            .call("core.job_abort", vec![json!(self.id)])
            .await
            .map(|_| ())
    }
}

/// A call the client makes on its own (`core.get_jobs`, `core.subscribe` for job events) got
/// no reply: the server stopped answering, a lost connection rather than the failure of a
/// method the user called, whose name is `what` ("job 5 (app.create)", "app.create").
fn unanswered(e: Error, what: &str) -> Error {
    match e {
        Error::Timeout { after, .. } => Error::Closed {
            code: None,
            reason: String::new(),
            explanation: format!(
                "the server stopped answering: no reply within {}s while waiting for {what}; it may still be running on the server",
                after.as_secs_f64()
            ),
        },
        other => other,
    }
}

struct Unwatch<'a> {
    client: &'a Client,
    id: i64,
}

impl Drop for Unwatch<'_> {
    fn drop(&mut self) {
        self.client.link.router().jobs.unwatch(self.id);
    }
}

impl Client {
    /// Make sure this connection receives `core.get_jobs` events (once per connection).
    async fn ensure_job_events(&self) -> Result<()> {
        let _gate = self.link.jobs_gate.lock().await;
        let is_new = self.link.router().add_internal("core.get_jobs");
        if !is_new {
            return Ok(());
        }
        self.link.subscribe("core.get_jobs").await
    }

    /// Start a job method and return its handle without waiting.
    pub async fn start_job(&self, method: &str, params: Vec<Value>) -> Result<JobHandle> {
        self.ensure_job_events()
            .await
            .map_err(|e| unanswered(e, method))?;
        let reply = self.call(method, params).await?;
        let id = reply.as_i64().ok_or_else(|| {
            Error::Protocol(format!(
                "{method} returned {reply} instead of a job id: it is not a job method"
            ))
        })?;
        self.link.router().jobs.keep(id);
        Ok(JobHandle {
            client: self.clone(),
            id,
            method: method.to_owned(),
        })
    }

    /// A handle on a job that was started elsewhere (listed by `core.get_jobs`, or started by
    /// another connection), to wait for it or abort it.
    pub async fn attach_job(&self, id: i64, method: &str) -> Result<JobHandle> {
        self.ensure_job_events().await?;
        Ok(JobHandle {
            client: self.clone(),
            id,
            method: method.to_owned(),
        })
    }

    /// Run a job method to its end: the result on SUCCESS, a [`ServerError`] on FAILED
    /// (validation failures included), [`Error::JobAborted`] on ABORTED.
    ///
    /// App jobs (`app.create`, `app.stop`, …) of this client (and its clones) run one at a time
    /// per app: the server locks each operation separately (`app_stop_<name>`,
    /// `app_start_<name>`, …), so a stop and a start of one app would otherwise overlap.
    pub async fn job(
        &self,
        method: &str,
        params: Vec<Value>,
        progress: impl FnMut(&JobProgress) + Send,
    ) -> Result<Value> {
        self.job_with_id(method, params, |_| {}, progress).await
    }

    /// [`Client::job`], telling `started` the job id once the server has accepted the call.
    pub async fn job_with_id(
        &self,
        method: &str,
        params: Vec<Value>,
        started: impl FnOnce(i64),
        progress: impl FnMut(&JobProgress) + Send,
    ) -> Result<Value> {
        let _turn = match app_of_job(method, &params) {
            Some(app) => Some(self.link.app_jobs.lock(&app).await),
            None => None,
        };
        let handle = self.start_job(method, params).await?;
        started(handle.id);
        handle.wait(progress).await
    }
}

/// Per-app locks shared by a client's clones.
#[derive(Clone, Default)]
pub(crate) struct AppJobLocks(Arc<Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>>);

impl AppJobLocks {
    async fn lock(&self, app: &str) -> tokio::sync::OwnedMutexGuard<()> {
        let m = {
            let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
            map.entry(app.to_owned()).or_default().clone()
        };
        m.lock_owned().await
    }
}

/// The app an app job acts on: `app_name` of `app.create`, the first argument of the others.
fn app_of_job(method: &str, params: &[Value]) -> Option<String> {
    let first = params.first()?;
    match method {
        "app.create" => first.get("app_name")?.as_str().map(str::to_owned),
        "app.update" | "app.delete" | "app.start" | "app.stop" | "app.redeploy"
        | "app.pull_images" | "app.upgrade" | "app.rollback" => first.as_str().map(str::to_owned),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: i64, state: &str) -> Value {
        json!({"id": id, "method": "x", "state": state})
    }

    #[test]
    fn jobs_started_here_are_kept_until_their_outcome_is_read() {
        let mut t = JobTable::default();
        t.record(job(1, "RUNNING"));
        t.keep(1);
        t.keep(2);
        for id in 3..3 + 2 * REMEMBERED_JOBS as i64 {
            t.record(job(id, "SUCCESS"));
        }
        t.record(job(2, "SUCCESS")); // its event came after many others
        assert!(t.latest.contains_key(&1) && t.latest.contains_key(&2));
        assert!(!t.latest.contains_key(&3), "other jobs are forgotten");
        assert!(t.latest.len() <= REMEMBERED_JOBS + 2);
        t.release(1);
        t.release(2);
        for id in 10_000..10_000 + REMEMBERED_JOBS as i64 {
            t.record(job(id, "SUCCESS"));
        }
        assert!(!t.latest.contains_key(&1) && !t.latest.contains_key(&2));
        assert_eq!(t.latest.len(), REMEMBERED_JOBS);
    }
}
