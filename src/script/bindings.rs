//! The bindings that talk to the server: `call` (through `rpc_raw`), `call_all`, `job`,
//! `job_start`, `wait_job`, `wait_jobs`, `subscribe`, `events`, `wait_for`, `sleep` and `wait`.
//!
//! `call_all([[method, args..], ..])` sends its calls together on the one connection, at most
//! [`BATCH_IN_FLIGHT`] at a time (the server runs 10, queues 10 more and refuses the 21st), and
//! returns their results in order; a call that fails leaves its error map in its place (see
//! [`error_value`]) instead of failing the batch. `wait_jobs([ids])` waits for jobs together, the
//! same way.
//!
//! Every one of them blocks the script thread in [`Host::wait`], which selects on the run's
//! cancellation token, the operation itself, and the event channel of `subscribe` callbacks, in
//! that order: the awaited reply (or its timeout) wins over events that are ready, so callbacks
//! slower than the event rate cannot starve it. Callbacks run between those waits, on the
//! script thread, never inside a `block_on` (blocking on the runtime from inside a future
//! deadlocks it); an event that arrives while a callback runs waits for the next blocking
//! binding after it. Events a script cannot keep up with are dropped by the client beyond its
//! queue bound, with one warning per subscription.

use std::any::TypeId;
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::future::Future;
use std::path::PathBuf;
use std::rc::Rc;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rhai::{
    Array, Dynamic, Engine, EvalAltResult, FnPtr, INT, ImmutableString, Map, NativeCallContext,
    Position,
};
use serde_json::{Value, json};
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;

use super::Console;
use super::values::{from_dynamic, to_dynamic};
use crate::client::{self, Client, Event, JobHandle, Subscription};
use crate::protocol::errno;

/// Most arguments `call`, `job` and `job_start` take after the method (Rhai has no varargs;
/// `rpc_raw(method, [..])` takes any number).
pub(crate) const MAX_ARGS: usize = 10;
/// Most calls `call_all` keeps outstanding at once: the server's limit per connection (10
/// running, 10 queued; a 21st is refused with -32000).
pub(crate) const BATCH_IN_FLIGHT: usize = 20;
/// The tag of a [`Dynamic`] holding an error map, which `is_error` tests.
const ERROR_TAG: i16 = 0x4d53;
/// How many already-queued events a binding hands to `subscribe` callbacks after its own
/// operation is done, before it returns.
const READY_AFTER_REPLY: usize = 16;
/// How long to wait for an unsubscribe or a job abort while shutting down.
const CLEANUP: Duration = Duration::from_secs(5);

type RhaiResult = Result<Dynamic, Box<EvalAltResult>>;

/// A `subscribe(name, callback)` subscription, or a `subscribe(name)` one (no callback: each
/// event is printed as one JSON line, as the REPL's `subscribe(name)` shows them).
struct CallbackSub {
    name: String,
    callback: Option<FnPtr>,
    sub: Subscription,
    /// Events dropped because the script did not keep up; warned about once.
    dropped: u64,
}

/// What one subscription delivered: `None` when it ended.
type SubItem = (u64, Option<client::Result<Event>>);

/// Why a wait stopped before its operation finished.
pub(crate) enum Stop {
    /// The run was cancelled (Ctrl-C).
    Cancelled,
    /// A `subscribe` callback threw, or its subscription failed.
    Error(Box<EvalAltResult>),
}

enum Step<T> {
    Done(T),
    Delivered(Box<SubItem>),
    Cancelled,
}

/// What the bindings share: the connection, the runtime, the console and the subscriptions.
pub(crate) struct Host {
    /// The TrueNAS connection, once open.
    client: RefCell<Option<Client>>,
    /// How to open it on the first use, for a run that started without one.
    connect: Option<super::Connect>,
    pub(crate) rt: Handle,
    pub(crate) cancel: CancellationToken,
    pub(crate) console: Arc<dyn Console>,
    /// Where relative paths start (the script's folder).
    pub(crate) dir: PathBuf,
    subs: RefCell<BTreeMap<u64, CallbackSub>>,
    next_key: Cell<u64>,
    dispatching: Cell<bool>,
    jobs: RefCell<HashMap<i64, JobHandle>>,
    /// Set by `exit(..)`: Rhai turns an exit into a normal end, so the status is kept here.
    pub(crate) exit_status: Cell<Option<i32>>,
    /// Set by `changed()`: the script says it changed something on the server.
    pub(crate) changed: Cell<bool>,
    /// The deploy journal and the server's name in it (compose deployments, rollback); no
    /// name: the connection's URL.
    pub(crate) journal: RefCell<Option<(crate::compose::journal::Journal, Option<String>)>>,
}

impl Host {
    pub(crate) fn new(
        connector: super::Connector,
        rt: Handle,
        cancel: CancellationToken,
        console: Arc<dyn Console>,
        dir: PathBuf,
    ) -> Host {
        let (client, connect) = match connector {
            super::Connector::Ready(c) => (Some(c), None),
            super::Connector::Lazy(f) => (None, Some(f)),
        };
        Host {
            client: RefCell::new(client),
            connect,
            rt,
            cancel,
            console,
            dir,
            subs: RefCell::default(),
            next_key: Cell::new(0),
            dispatching: Cell::new(false),
            jobs: RefCell::default(),
            exit_status: Cell::new(None),
            changed: Cell::new(false),
            journal: RefCell::new(None),
        }
    }

    /// The TrueNAS connection, opened now if this is its first use (a script that never calls
    /// the API needs no server). A failure to open it is a `connection` error at `pos`.
    pub(crate) fn client(&self, pos: Position) -> Result<Client, Box<EvalAltResult>> {
        if let Some(c) = self.client.borrow().as_ref() {
            return Ok(c.clone());
        }
        let Some(connect) = self.connect.clone() else {
            return Err(script_error(
                "connection",
                "no TrueNAS connection".into(),
                pos,
            ));
        };
        let client = self
            .wait(None, connect())
            .map_err(|stop| stop.into_rhai(pos))?
            .map_err(|e| script_error("connection", e, pos))?;
        *self.client.borrow_mut() = Some(client.clone());
        Ok(client)
    }

    /// The TrueNAS connection if it is open.
    pub(crate) fn current_client(&self) -> Option<Client> {
        self.client.borrow().clone()
    }

    /// The connection as a new engine should get it: open, or still to be opened.
    pub(crate) fn connector(&self) -> super::Connector {
        match (self.current_client(), &self.connect) {
            (Some(c), _) => super::Connector::Ready(c),
            (None, Some(f)) => super::Connector::Lazy(f.clone()),
            (None, None) => super::Connector::Lazy(std::sync::Arc::new(|| {
                Box::pin(async { Err("no TrueNAS connection".to_owned()) })
            })),
        }
    }

    /// The next item of any `subscribe` subscription, taken straight from the client's queues.
    fn poll_subs(&self, cx: &mut Context<'_>) -> Poll<SubItem> {
        let Ok(mut subs) = self.subs.try_borrow_mut() else {
            return Poll::Pending;
        };
        for (key, s) in subs.iter_mut() {
            let next = s.sub.recv();
            let mut next = std::pin::pin!(next);
            if let Poll::Ready(item) = next.as_mut().poll(cx) {
                return Poll::Ready((*key, item));
            }
        }
        Poll::Pending
    }

    /// Block until `fut` completes, running `subscribe` callbacks for events that arrive
    /// meanwhile (when `ctx` is given and no callback is running already). Stops early when the
    /// run is cancelled or a callback throws.
    pub(crate) fn wait<F: Future>(
        &self,
        ctx: Option<&NativeCallContext>,
        fut: F,
    ) -> Result<F::Output, Stop> {
        let mut fut = std::pin::pin!(fut);
        loop {
            if self.cancel.is_cancelled() {
                return Err(Stop::Cancelled);
            }
            let deliver = ctx.is_some() && !self.dispatching.get();
            let step = self.rt.block_on(async {
                tokio::select! {
                    biased;
                    _ = self.cancel.cancelled() => Step::Cancelled,
                    out = &mut fut => Step::Done(out),
                    item = std::future::poll_fn(|cx| self.poll_subs(cx)), if deliver => {
                        Step::Delivered(Box::new(item))
                    }
                }
            });
            match step {
                Step::Done(out) => {
                    if let (Some(ctx), true) = (ctx, deliver) {
                        self.deliver_ready(ctx).map_err(Stop::Error)?;
                    }
                    return Ok(out);
                }
                Step::Cancelled => return Err(Stop::Cancelled),
                Step::Delivered(item) => {
                    if let Some(ctx) = ctx {
                        self.dispatch(ctx, *item).map_err(Stop::Error)?;
                    }
                }
            }
        }
    }

    /// Once the awaited operation is done, hand the events that are already queued (most
    /// likely sent before the reply) to their callbacks, but at most [`READY_AFTER_REPLY`] of
    /// them, so a steady stream of events cannot hold the binding back.
    fn deliver_ready(&self, ctx: &NativeCallContext) -> Result<(), Box<EvalAltResult>> {
        for _ in 0..READY_AFTER_REPLY {
            let ready = std::future::poll_fn(|cx| Poll::Ready(self.poll_subs(cx)));
            let Poll::Ready(item) = self.rt.block_on(ready) else {
                return Ok(());
            };
            self.dispatch(ctx, item)?;
        }
        Ok(())
    }

    /// [`Host::wait`] for bindings: a cancelled run becomes `ErrorTerminated`.
    fn wait_rhai<F: Future>(
        &self,
        ctx: &NativeCallContext,
        fut: F,
    ) -> Result<F::Output, Box<EvalAltResult>> {
        self.wait(Some(ctx), fut)
            .map_err(|stop| stop.into_rhai(ctx.call_position()))
    }

    /// Hand one subscription item to its callback.
    fn dispatch(
        &self,
        ctx: &NativeCallContext,
        (key, item): SubItem,
    ) -> Result<(), Box<EvalAltResult>> {
        let pos = ctx.call_position();
        match item {
            Some(Ok(ev)) => {
                let Some((name, callback)) = self
                    .subs
                    .borrow()
                    .get(&key)
                    .map(|s| (s.name.clone(), s.callback.clone()))
                else {
                    return Ok(()); // cancelled meanwhile
                };
                let Some(callback) = callback else {
                    self.console
                        .out(&serde_json::to_string(&ev).unwrap_or_default());
                    return Ok(());
                };
                self.dispatching.set(true);
                let result = callback.call_within_context::<Dynamic>(ctx, (event_to_dynamic(&ev),));
                self.dispatching.set(false);
                result.map(|_| ()).map_err(|err| {
                    // exit() and cancellation pass straight through, as in Rhai's own calls.
                    if matches!(*err, EvalAltResult::Exit(..)) || err.is_system_exception() {
                        return err;
                    }
                    // A closure's own frame adds nothing: its call site is this wait.
                    let (src, err) = match *err {
                        EvalAltResult::ErrorInFunctionCall(f, src, inner, _)
                            if f.starts_with("anon$") =>
                        {
                            (src, inner)
                        }
                        other => (
                            ctx.call_source().unwrap_or_default().to_owned(),
                            Box::new(other),
                        ),
                    };
                    Box::new(EvalAltResult::ErrorInFunctionCall(
                        format!("the subscribe callback for '{name}'"),
                        src,
                        err,
                        pos,
                    ))
                })
            }
            Some(Err(client::Error::Lagged { name, dropped })) => {
                let mut subs = self.subs.borrow_mut();
                let Some(s) = subs.get_mut(&key) else {
                    return Ok(());
                };
                if s.dropped == 0 {
                    self.console.err(&format!("warning: {name}: {dropped} events were dropped because the script did not wait for them in time (later drops are counted at the end)"));
                }
                s.dropped += dropped;
                Ok(())
            }
            Some(Err(e)) => {
                self.subs.borrow_mut().remove(&key);
                Err(client_error(&e, pos))
            }
            None => {
                self.subs.borrow_mut().remove(&key);
                Ok(())
            }
        }
    }

    /// Subscribe to `name`; events go to `callback`, or are printed as JSON lines without one.
    fn subscribe_with(
        &self,
        ctx: &NativeCallContext,
        name: ImmutableString,
        callback: Option<FnPtr>,
    ) -> Result<SubHandle, Box<EvalAltResult>> {
        let client = self.client(ctx.call_position())?;
        let sub = self
            .wait_rhai(ctx, client.subscribe(&name))?
            .map_err(|e| client_error(&e, ctx.call_position()))?;
        let key = self.next_key.get() + 1;
        self.next_key.set(key);
        self.subs.borrow_mut().insert(
            key,
            CallbackSub {
                name: name.to_string(),
                callback,
                sub,
                dropped: 0,
            },
        );
        Ok(SubHandle { key, name })
    }

    fn cancel_sub(&self, key: u64) {
        let removed = self.subs.borrow_mut().remove(&key);
        if let Some(s) = removed {
            if s.dropped > 0 {
                self.console.err(&format!(
                    "warning: {}: {} events were dropped in all",
                    s.name, s.dropped
                ));
            }
            self.unsubscribe(s.sub);
        }
    }

    /// End every subscription still open (in the order they were made), at the end of a run.
    pub(crate) fn shutdown(&self) {
        let keys: Vec<u64> = self.subs.borrow().keys().copied().collect();
        for key in keys {
            self.cancel_sub(key);
        }
    }

    fn unsubscribe(&self, sub: Subscription) {
        if self.cancel.is_cancelled() {
            return; // dropping it unsubscribes in the background
        }
        let _ = self
            .rt
            .block_on(async { tokio::time::timeout(CLEANUP, sub.unsubscribe()).await });
    }

    fn rpc(&self, ctx: &NativeCallContext, method: &str, params: Vec<Value>) -> RhaiResult {
        let client = self.client(ctx.call_position())?;
        match self.wait_rhai(ctx, client.call(method, params))? {
            Ok(v) => Ok(to_dynamic(&v)),
            Err(e) => Err(client_error(&e, ctx.call_position())),
        }
    }

    /// Send every call of `batch` at once (at most [`BATCH_IN_FLIGHT`] outstanding), and
    /// return the results in order, a failed call's error map in its place.
    fn call_all(&self, ctx: &NativeCallContext, batch: Vec<(String, Vec<Value>)>) -> RhaiResult {
        use futures_util::StreamExt as _;
        if batch.is_empty() {
            return Ok(Dynamic::from_array(Array::new()));
        }
        let client = self.client(ctx.call_position())?;
        let calls = batch.into_iter().map(|(method, params)| {
            let client = client.clone();
            async move { client.call(&method, params).await }
        });
        let all = futures_util::stream::iter(calls)
            .buffered(BATCH_IN_FLIGHT)
            .collect::<Vec<_>>();
        let results = self.wait_rhai(ctx, all)?;
        Ok(Dynamic::from_array(
            results
                .iter()
                .map(|r| match r {
                    Ok(v) => to_dynamic(v),
                    Err(e) => error_value(error_map(e)),
                })
                .collect(),
        ))
    }

    /// The handle of job `id`: one this script started, or one found with `core.get_jobs`.
    /// `Ok(Err(map))` when the server has no such job.
    fn job_handle(
        &self,
        ctx: &NativeCallContext,
        what: &str,
        id: INT,
    ) -> Result<Result<JobHandle, Map>, Box<EvalAltResult>> {
        if let Some(handle) = self.jobs.borrow().get(&id).cloned() {
            return Ok(Ok(handle));
        }
        let found = self.rpc(ctx, "core.get_jobs", vec![json!([["id", "=", id]])])?;
        let method = found
            .into_typed_array::<Dynamic>()
            .ok()
            .and_then(|a| a.into_iter().next())
            .and_then(|j| j.try_cast::<Map>())
            .and_then(|j| j.get("method").map(|m| m.to_string()));
        let Some(method) = method else {
            return Ok(Err(blank_error(
                "argument",
                format!(
                    "{what}: the server has no job {id}: there never was one, or it was forgotten (the server keeps only its 1,000 most recent jobs)"
                ),
            )));
        };
        let client = self.client(ctx.call_position())?;
        Ok(Ok(self
            .wait_rhai(ctx, client.attach_job(id, &method))?
            .map_err(|e| client_error(&e, ctx.call_position()))?))
    }

    /// Wait for every job of `ids` together; their results in order, a failed (or unknown)
    /// job's error map in its place. Cancelled, it aborts the jobs still running.
    fn wait_jobs(&self, ctx: &NativeCallContext, ids: &[INT]) -> RhaiResult {
        let mut slots: Vec<Result<JobHandle, Map>> = Vec::with_capacity(ids.len());
        for &id in ids {
            slots.push(self.job_handle(ctx, "wait_jobs", id)?);
        }
        let done: Vec<Cell<bool>> = slots.iter().map(|_| Cell::new(false)).collect();
        let waits = slots.iter().zip(&done).map(|(slot, done)| {
            let console = self.console.clone();
            async move {
                let handle = slot.as_ref().ok()?;
                let method = handle.method.clone();
                let result = handle.wait(move |p| console.job_progress(&method, p)).await;
                done.set(true);
                Some(result)
            }
        });
        let result = self.wait(Some(ctx), futures_util::future::join_all(waits));
        for handle in slots.iter().flatten() {
            self.console.job_finished(handle.id);
            self.jobs.borrow_mut().remove(&handle.id);
        }
        match result {
            Ok(results) => Ok(Dynamic::from_array(
                slots
                    .into_iter()
                    .zip(results)
                    .map(|(slot, result)| match (slot, result) {
                        (Err(unknown), _) => error_value(unknown),
                        (Ok(_), Some(Ok(v))) => to_dynamic(&v),
                        (Ok(_), Some(Err(e))) => error_value(error_map(&e)),
                        (Ok(_), None) => Dynamic::UNIT,
                    })
                    .collect(),
            )),
            Err(Stop::Cancelled) => {
                for (slot, done) in slots.iter().zip(&done) {
                    if let (Ok(handle), false) = (slot, done.get()) {
                        self.abort_on_cancel(handle);
                    }
                }
                Err(terminated(ctx.call_position()))
            }
            Err(Stop::Error(e)) => Err(e),
        }
    }

    /// Abort `handle`'s job because the run was cancelled, warning when that fails.
    fn abort_on_cancel(&self, handle: &JobHandle) {
        self.console.err(&format!(
            "cancelling: aborting job {} ({})",
            handle.id, handle.method
        ));
        let aborted = self
            .rt
            .block_on(async { tokio::time::timeout(CLEANUP, handle.abort()).await });
        if let Ok(Err(e)) = aborted {
            self.console
                .err(&format!("warning: core.job_abort {}: {e}", handle.id));
        }
    }

    fn start_job(
        &self,
        ctx: &NativeCallContext,
        method: &str,
        params: Vec<Value>,
    ) -> Result<JobHandle, Box<EvalAltResult>> {
        let client = self.client(ctx.call_position())?;
        let handle = self
            .wait_rhai(ctx, client.start_job(method, params))?
            .map_err(|e| client_error(&e, ctx.call_position()))?;
        self.jobs.borrow_mut().insert(handle.id, handle.clone());
        self.console.job_started(method, handle.id);
        Ok(handle)
    }

    fn wait_job_handle(&self, ctx: &NativeCallContext, handle: JobHandle) -> RhaiResult {
        let console = self.console.clone();
        let method = handle.method.clone();
        let result = self.wait(
            Some(ctx),
            handle.wait(move |p| console.job_progress(&method, p)),
        );
        self.console.job_finished(handle.id);
        self.jobs.borrow_mut().remove(&handle.id);
        match result {
            Ok(Ok(v)) => Ok(to_dynamic(&v)),
            Ok(Err(e)) => Err(client_error(&e, ctx.call_position())),
            Err(Stop::Cancelled) => {
                self.abort_on_cancel(&handle);
                Err(terminated(ctx.call_position()))
            }
            Err(Stop::Error(e)) => Err(e),
        }
    }
}

impl Stop {
    pub(crate) fn into_rhai(self, pos: Position) -> Box<EvalAltResult> {
        match self {
            Stop::Cancelled => terminated(pos),
            Stop::Error(e) => e,
        }
    }
}

/// The error a cancelled run stops with (not catchable by `try`/`catch`).
pub(crate) fn terminated(pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorTerminated("cancelled".into(), pos))
}

/// The keys of every error map a binding throws, so scripts can read any of them (unset ones
/// are `()`) even with strict property access.
const ERROR_KEYS: [&str; 13] = [
    "kind",
    "summary",
    "code",
    "message",
    "errno",
    "errname",
    "reason",
    "extra",
    "trace",
    "method",
    "job_id",
    "validation",
    "outcome",
];

/// An error map of `kind` with every key of [`ERROR_KEYS`] (unset ones `()`).
pub(crate) fn blank_error(kind: &str, summary: String) -> Map {
    let mut m = Map::new();
    for k in ERROR_KEYS {
        m.insert(k.into(), Dynamic::UNIT);
    }
    m.insert("kind".into(), kind.into());
    m.insert("message".into(), summary.clone().into());
    m.insert("summary".into(), summary.into());
    m.insert("validation".into(), Dynamic::from_array(Array::new()));
    m
}

/// `error(message)` / `error(errname, message)`: the error map scripts and stdlib modules
/// throw, shaped like the ones the bindings throw (kind `"script"`).
fn user_error(errname: Option<&str>, message: &str) -> Dynamic {
    let mut m = blank_error("script", message.to_owned());
    if let Some(name) = errname {
        m.insert("errname".into(), name.into());
        m.insert("errno".into(), opt(errno::number(name)));
    }
    error_value(m)
}

/// A thrown error map of `kind` (`"argument"`, `"io"`, `"json"`, `"timeout"`, …).
pub(crate) fn script_error(kind: &str, summary: String, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        error_value(blank_error(kind, summary)),
        pos,
    ))
}

/// An error map as a value, tagged so that `is_error(v)` tells it from a result that happens
/// to be a map with the same keys.
pub(crate) fn error_value(map: Map) -> Dynamic {
    let mut value = Dynamic::from_map(map);
    value.set_tag(ERROR_TAG.into());
    value
}

fn opt<T: Into<Dynamic>>(v: Option<T>) -> Dynamic {
    v.map_or(Dynamic::UNIT, Into::into)
}

/// The map a client error becomes in a script's `catch (err)`.
pub(crate) fn error_map(e: &client::Error) -> Map {
    match e {
        client::Error::Server(s) => {
            let kind = if s.is_validation {
                "validation"
            } else {
                "server"
            };
            let mut m = blank_error(kind, s.to_string());
            m.insert("code".into(), opt(s.code));
            m.insert("message".into(), s.message.clone().into());
            m.insert("errno".into(), opt(s.errno));
            m.insert("errname".into(), opt(s.errname.clone()));
            m.insert("reason".into(), opt(s.reason.clone()));
            m.insert(
                "extra".into(),
                s.extra.as_ref().map_or(Dynamic::UNIT, to_dynamic),
            );
            m.insert(
                "trace".into(),
                s.trace.as_ref().map_or(Dynamic::UNIT, to_dynamic),
            );
            m.insert("method".into(), s.method.clone().into());
            m.insert("job_id".into(), opt(s.job_id));
            let entries: Array = s
                .validation()
                .iter()
                .map(|v| {
                    to_dynamic(
                        &json!({"attribute": v.attribute, "message": v.message, "errno": v.errno}),
                    )
                })
                .collect();
            m.insert("validation".into(), Dynamic::from_array(entries));
            m
        }
        client::Error::JobAborted { method, job_id } => {
            let mut m = blank_error("aborted", e.to_string());
            m.insert("method".into(), method.clone().into());
            m.insert("job_id".into(), (*job_id).into());
            m.insert("errname".into(), "ECANCELED".into());
            m.insert("errno".into(), opt(errno::number("ECANCELED")));
            m
        }
        client::Error::Timeout { method, .. } => {
            let mut m = blank_error("timeout", e.to_string());
            m.insert("method".into(), method.clone().into());
            m.insert("errname".into(), "ETIMEDOUT".into());
            m.insert("errno".into(), opt(errno::number("ETIMEDOUT")));
            m
        }
        client::Error::SubscriptionEnded { error, .. } => {
            let mut m = blank_error("subscription", e.to_string());
            m.insert("errno".into(), opt(error.error));
            m.insert("errname".into(), opt(error.errname.clone()));
            m.insert("reason".into(), opt(error.reason.clone()));
            m.insert(
                "extra".into(),
                error.extra.as_ref().map_or(Dynamic::UNIT, to_dynamic),
            );
            m
        }
        client::Error::OutcomeUnknown { method, .. } => {
            // The call may or may not have been carried out: the script checks and decides.
            let mut m = blank_error("connection", e.to_string());
            m.insert("method".into(), method.clone().into());
            m.insert("outcome".into(), "unknown".into());
            m
        }
        e if e.is_connection() => blank_error("connection", e.to_string()),
        e => blank_error("client", e.to_string()),
    }
}

/// A client error, thrown at `pos`.
pub(crate) fn client_error(e: &client::Error, pos: Position) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(error_value(error_map(e)), pos))
}

/// An event as scripts see it: `msg`, `collection`, `id`, `fields` (`()` when the server sent
/// none), and `extra` when the server sent it.
pub(crate) fn event_to_dynamic(ev: &Event) -> Dynamic {
    let mut m = Map::new();
    m.insert("msg".into(), ev.msg.as_str().into());
    m.insert("collection".into(), ev.collection.as_str().into());
    m.insert(
        "id".into(),
        ev.id.as_ref().map_or(Dynamic::UNIT, to_dynamic),
    );
    m.insert(
        "fields".into(),
        ev.fields.as_ref().map_or(Dynamic::UNIT, to_dynamic),
    );
    if let Some(extra) = &ev.extra {
        m.insert("extra".into(), to_dynamic(extra));
    }
    Dynamic::from_map(m)
}

/// Convert call arguments to JSON, naming the one that cannot be.
fn json_params(
    what: &str,
    args: &[Dynamic],
    pos: Position,
) -> Result<Vec<Value>, Box<EvalAltResult>> {
    args.iter()
        .enumerate()
        .map(|(i, a)| {
            from_dynamic(a).map_err(|e| {
                script_error("argument", format!("{what}: argument {}: {e}", i + 1), pos)
            })
        })
        .collect()
}

/// The type name a script knows a value by (`string`, `map`, `int`, …).
fn type_name(value: &Dynamic) -> &'static str {
    let full = value.type_name();
    full.rsplit("::").next().unwrap_or(full)
}

/// `call_all`'s argument as `(method, params)` pairs, naming the position of a bad entry.
fn batch_calls(
    calls: &Dynamic,
    pos: Position,
) -> Result<Vec<(String, Vec<Value>)>, Box<EvalAltResult>> {
    let Some(calls) = calls.read_lock::<Array>() else {
        return Err(script_error(
            "argument",
            format!(
                "call_all: expected a list of calls such as [[\"core.ping\"], [\"user.query\", [[\"uid\", \"=\", 0]]]], not a {}",
                type_name(calls)
            ),
            pos,
        ));
    };
    calls
        .iter()
        .enumerate()
        .map(|(i, entry)| {
            let n = i + 1;
            let Some(entry) = entry.read_lock::<Array>() else {
                return Err(script_error(
                    "argument",
                    format!(
                        "call_all: call {n}: expected a list [method, args..], not a {}",
                        type_name(entry)
                    ),
                    pos,
                ));
            };
            let Some((method, args)) = entry.split_first() else {
                return Err(script_error(
                    "argument",
                    format!("call_all: call {n}: the method name is missing (an empty list)"),
                    pos,
                ));
            };
            let Some(method) = method.read_lock::<ImmutableString>().map(|m| m.to_string()) else {
                return Err(script_error(
                    "argument",
                    format!(
                        "call_all: call {n}: the method name must be a string, not a {}",
                        type_name(method)
                    ),
                    pos,
                ));
            };
            let params = json_params(&format!("call_all: call {n} ({method})"), args, pos)?;
            Ok((method, params))
        })
        .collect()
}

/// `wait_jobs`'s argument: a list of job ids, naming the position of a bad one.
fn job_ids(ids: &Dynamic, pos: Position) -> Result<Vec<INT>, Box<EvalAltResult>> {
    let Some(ids) = ids.read_lock::<Array>() else {
        return Err(script_error(
            "argument",
            format!(
                "wait_jobs: expected a list of job ids, not a {}",
                type_name(ids)
            ),
            pos,
        ));
    };
    ids.iter()
        .enumerate()
        .map(|(i, id)| {
            id.as_int().map_err(|t| {
                script_error(
                    "argument",
                    format!(
                        "wait_jobs: job {}: expected a job id (an int), not a {t}",
                        i + 1
                    ),
                    pos,
                )
            })
        })
        .collect()
}

fn millis(ms: INT) -> Duration {
    Duration::from_millis(ms.max(0) as u64)
}

/// A `subscribe` subscription, as scripts hold it: `h.cancel()`, `h.name`.
#[derive(Debug, Clone)]
pub(crate) struct SubHandle {
    key: u64,
    name: ImmutableString,
}

/// An `events(name)` stream: iterate it with `for ev in stream { .. }`, pass it to `wait_for`,
/// end it with `cancel()` (or by dropping it).
#[derive(Clone)]
pub(crate) struct EventStream(Rc<RefCell<StreamInner>>);

struct StreamInner {
    name: ImmutableString,
    sub: Option<Subscription>,
    cancelled: bool,
    host: Rc<Host>,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        if let Some(sub) = self.sub.take() {
            self.host.unsubscribe(sub);
        }
    }
}

impl EventStream {
    fn name(&self) -> ImmutableString {
        self.0
            .try_borrow()
            .map(|i| i.name.clone())
            .unwrap_or_default()
    }

    fn cancel(&self) {
        let Ok(mut inner) = self.0.try_borrow_mut() else {
            return;
        };
        inner.cancelled = true;
        if let Some(sub) = inner.sub.take() {
            inner.host.unsubscribe(sub);
        }
    }

    /// Take the subscription out while something waits on it (so script code that runs
    /// meanwhile can't trip over a borrowed stream).
    fn take(&self) -> Option<(Subscription, Rc<Host>)> {
        let mut inner = self.0.try_borrow_mut().ok()?;
        let host = inner.host.clone();
        inner.sub.take().map(|s| (s, host))
    }

    fn put_back(&self, sub: Subscription) {
        match self.0.try_borrow_mut() {
            Ok(mut inner) if !inner.cancelled => inner.sub = Some(sub),
            Ok(inner) => inner.host.unsubscribe(sub),
            Err(_) => drop(sub),
        }
    }
}

/// Iterates an [`EventStream`]: one event per step, ending when the subscription does.
pub(crate) struct EventIter(EventStream);

impl IntoIterator for EventStream {
    type Item = Result<Dynamic, Box<EvalAltResult>>;
    type IntoIter = EventIter;
    fn into_iter(self) -> EventIter {
        EventIter(self)
    }
}

impl Iterator for EventIter {
    type Item = Result<Dynamic, Box<EvalAltResult>>;

    fn next(&mut self) -> Option<Self::Item> {
        let (mut sub, host) = self.0.take()?;
        loop {
            let got = host.wait(None, sub.recv());
            match got {
                Ok(Some(Ok(ev))) => {
                    self.0.put_back(sub);
                    return Some(Ok(event_to_dynamic(&ev)));
                }
                Ok(Some(Err(client::Error::Lagged { name, dropped }))) => {
                    host.console.err(&format!("warning: {name}: {dropped} events were dropped because the script did not read them in time"));
                }
                Ok(Some(Err(e))) => return Some(Err(client_error(&e, Position::NONE))),
                Ok(None) => return None,
                Err(stop) => {
                    self.0.put_back(sub);
                    return Some(Err(stop.into_rhai(Position::NONE)));
                }
            }
        }
    }
}

/// Register the server bindings on `engine`.
pub(crate) fn register(engine: &mut Engine, host: &Rc<Host>) {
    // rpc_raw(method, [params]): the one path `call(..)` and stdlib modules use.
    let h = host.clone();
    engine.register_fn(
        "rpc_raw",
        move |ctx: NativeCallContext, method: ImmutableString, params: Array| -> RhaiResult {
            let params = json_params(&method, &params, ctx.call_position())?;
            h.rpc(&ctx, &method, params)
        },
    );
    // __call_fn_ptr(fp, [args]): `call(fp, args..)` forwarded by the custom syntax.
    engine.register_fn(
        "__call_fn_ptr",
        |ctx: NativeCallContext, fp: FnPtr, args: Array| -> RhaiResult {
            fp.call_raw(&ctx, None, args)
        },
    );

    // job(method, args..), job_start(method, args..): one overload per arity.
    for n in 0..=MAX_ARGS {
        let mut types = vec![TypeId::of::<ImmutableString>()];
        types.extend(std::iter::repeat_n(TypeId::of::<Dynamic>(), n));
        let h = host.clone();
        engine.register_raw_fn(
            "job",
            types.clone(),
            move |ctx: NativeCallContext, args: &mut [&mut Dynamic]| -> RhaiResult {
                let (method, params) = method_and_params(&ctx, args)?;
                let handle = h.start_job(&ctx, &method, params)?;
                h.wait_job_handle(&ctx, handle)
            },
        );
        let h = host.clone();
        engine.register_raw_fn(
            "job_start",
            types,
            move |ctx: NativeCallContext, args: &mut [&mut Dynamic]| -> RhaiResult {
                let (method, params) = method_and_params(&ctx, args)?;
                Ok(Dynamic::from_int(h.start_job(&ctx, &method, params)?.id))
            },
        );
    }
    let h = host.clone();
    engine.register_fn(
        "job_raw",
        move |ctx: NativeCallContext, method: ImmutableString, params: Array| -> RhaiResult {
            let params = json_params(&method, &params, ctx.call_position())?;
            let handle = h.start_job(&ctx, &method, params)?;
            h.wait_job_handle(&ctx, handle)
        },
    );
    let h = host.clone();
    engine.register_fn(
        "wait_job",
        move |ctx: NativeCallContext, id: INT| -> RhaiResult {
            match h.job_handle(&ctx, "wait_job", id)? {
                Ok(handle) => h.wait_job_handle(&ctx, handle),
                Err(unknown) => Err(Box::new(EvalAltResult::ErrorRuntime(
                    error_value(unknown),
                    ctx.call_position(),
                ))),
            }
        },
    );
    // wait_jobs([ids]): wait for jobs together.
    let h = host.clone();
    engine.register_fn(
        "wait_jobs",
        move |ctx: NativeCallContext, ids: Dynamic| -> RhaiResult {
            let ids = job_ids(&ids, ctx.call_position())?;
            h.wait_jobs(&ctx, &ids)
        },
    );
    // call_all([[method, args..], ..]): calls sent together, results in order.
    let h = host.clone();
    engine.register_fn(
        "call_all",
        move |ctx: NativeCallContext, calls: Dynamic| -> RhaiResult {
            let batch = batch_calls(&calls, ctx.call_position())?;
            h.call_all(&ctx, batch)
        },
    );
    engine.register_fn("is_error", |value: Dynamic| {
        i64::from(value.tag()) == i64::from(ERROR_TAG) && value.is_map()
    });

    // subscribe(name, callback) and subscribe(name) (events printed) -> handle with cancel().
    engine.register_type_with_name::<SubHandle>("Subscription");
    let h = host.clone();
    engine.register_fn(
        "subscribe",
        move |ctx: NativeCallContext,
              name: ImmutableString,
              callback: FnPtr|
              -> Result<SubHandle, Box<EvalAltResult>> {
            h.subscribe_with(&ctx, name, Some(callback))
        },
    );
    let h = host.clone();
    engine.register_fn(
        "subscribe",
        move |ctx: NativeCallContext,
              name: ImmutableString|
              -> Result<SubHandle, Box<EvalAltResult>> {
            h.subscribe_with(&ctx, name, None)
        },
    );
    let h = host.clone();
    engine.register_fn("cancel", move |s: &mut SubHandle| h.cancel_sub(s.key));
    engine.register_get("name", |s: &mut SubHandle| s.name.clone());
    engine.register_fn("to_string", |s: &mut SubHandle| {
        format!("Subscription({})", s.name)
    });
    engine.register_fn("to_debug", |s: &mut SubHandle| {
        format!("Subscription({})", s.name)
    });

    // events(name) -> iterable stream.
    engine.register_type_with_name::<EventStream>("Events");
    engine.register_iterator_result::<EventStream, Dynamic>();
    let h = host.clone();
    engine.register_fn(
        "events",
        move |ctx: NativeCallContext,
              name: ImmutableString|
              -> Result<EventStream, Box<EvalAltResult>> {
            let client = h.client(ctx.call_position())?;
            let sub = h
                .wait_rhai(&ctx, client.subscribe(&name))?
                .map_err(|e| client_error(&e, ctx.call_position()))?;
            Ok(EventStream(Rc::new(RefCell::new(StreamInner {
                name,
                sub: Some(sub),
                cancelled: false,
                host: h.clone(),
            }))))
        },
    );
    engine.register_fn("cancel", |s: &mut EventStream| s.cancel());
    engine.register_get("name", |s: &mut EventStream| s.name());
    engine.register_fn("to_string", |s: &mut EventStream| {
        format!("Events({})", s.name())
    });
    engine.register_fn("to_debug", |s: &mut EventStream| {
        format!("Events({})", s.name())
    });

    // wait_for(name | stream, [predicate,] timeout_ms)
    let h = host.clone();
    engine.register_fn(
        "wait_for",
        move |ctx: NativeCallContext, name: ImmutableString, pred: FnPtr, ms: INT| {
            wait_for_name(&h, &ctx, &name, Some(pred), ms)
        },
    );
    let h = host.clone();
    engine.register_fn(
        "wait_for",
        move |ctx: NativeCallContext, name: ImmutableString, ms: INT| {
            wait_for_name(&h, &ctx, &name, None, ms)
        },
    );
    engine.register_fn(
        "wait_for",
        |ctx: NativeCallContext, s: EventStream, pred: FnPtr, ms: INT| {
            wait_for_stream(&ctx, &s, Some(pred), ms)
        },
    );
    engine.register_fn(
        "wait_for",
        |ctx: NativeCallContext, s: EventStream, ms: INT| wait_for_stream(&ctx, &s, None, ms),
    );

    // exit(), exit(value): end the run with a status (Rhai's own exit loses the value).
    let h = host.clone();
    engine.register_fn("exit", move |ctx: NativeCallContext| -> RhaiResult {
        h.exit_status.set(Some(0));
        Err(Box::new(EvalAltResult::Exit(
            Dynamic::UNIT,
            ctx.call_position(),
        )))
    });
    let h = host.clone();
    engine.register_fn(
        "exit",
        move |ctx: NativeCallContext, value: Dynamic| -> RhaiResult {
            h.exit_status.set(Some(exit_status(&value)));
            Err(Box::new(EvalAltResult::Exit(value, ctx.call_position())))
        },
    );
    // changed(), changed(flag): the script reports that it changed something (the machine
    // interface's `changed`); `changed(false)` takes it back.
    let h = host.clone();
    engine.register_fn("changed", move || h.changed.set(true));
    let h = host.clone();
    engine.register_fn("changed", move |flag: bool| h.changed.set(flag));
    engine.register_fn("error", |message: &str| user_error(None, message));
    engine.register_fn("error", |errname: &str, message: &str| {
        user_error(Some(errname), message)
    });

    // sleep(ms), wait(), wait(ms)
    let h = host.clone();
    engine.register_fn(
        "sleep",
        move |ctx: NativeCallContext, ms: INT| -> Result<(), Box<EvalAltResult>> {
            h.wait_rhai(&ctx, async move { tokio::time::sleep(millis(ms)).await })
        },
    );
    let h = host.clone();
    engine.register_fn(
        "wait",
        move |ctx: NativeCallContext| -> Result<(), Box<EvalAltResult>> {
            let all_ended = std::future::poll_fn(|_| {
                if h.subs.try_borrow().is_ok_and(|s| s.is_empty()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            h.wait_rhai(&ctx, all_ended)
        },
    );
    let h = host.clone();
    engine.register_fn(
        "wait",
        move |ctx: NativeCallContext, ms: INT| -> Result<(), Box<EvalAltResult>> {
            let all_ended = std::future::poll_fn(|_| {
                if h.subs.try_borrow().is_ok_and(|s| s.is_empty()) {
                    Poll::Ready(())
                } else {
                    Poll::Pending
                }
            });
            h.wait_rhai(&ctx, async {
                tokio::select! {
                    _ = all_ended => {}
                    _ = tokio::time::sleep(millis(ms)) => {}
                }
            })
        },
    );
}

fn method_and_params(
    ctx: &NativeCallContext,
    args: &mut [&mut Dynamic],
) -> Result<(String, Vec<Value>), Box<EvalAltResult>> {
    let pos = ctx.call_position();
    let Some((first, rest)) = args.split_first() else {
        return Err(script_error(
            "argument",
            format!("{}: the method name is missing", ctx.fn_name()),
            pos,
        ));
    };
    let method = first.to_string();
    let rest: Vec<Dynamic> = rest.iter().map(|d| (**d).clone()).collect();
    let params = json_params(&method, &rest, pos)?;
    Ok((method, params))
}

fn wait_for_name(
    h: &Rc<Host>,
    ctx: &NativeCallContext,
    name: &str,
    pred: Option<FnPtr>,
    ms: INT,
) -> RhaiResult {
    let client = h.client(ctx.call_position())?;
    let mut sub = h
        .wait_rhai(ctx, client.subscribe(name))?
        .map_err(|e| client_error(&e, ctx.call_position()))?;
    let result = wait_for_event(h, ctx, &mut sub, name, pred, ms);
    h.unsubscribe(sub);
    result
}

fn wait_for_stream(
    ctx: &NativeCallContext,
    stream: &EventStream,
    pred: Option<FnPtr>,
    ms: INT,
) -> RhaiResult {
    let name = stream.name().to_string();
    let Some((mut sub, host)) = stream.take() else {
        return Err(script_error(
            "subscription",
            format!("wait_for: the event stream {name} has ended or is in use"),
            ctx.call_position(),
        ));
    };
    let result = wait_for_event(&host, ctx, &mut sub, &name, pred, ms);
    stream.put_back(sub);
    result
}

fn wait_for_event(
    h: &Host,
    ctx: &NativeCallContext,
    sub: &mut Subscription,
    name: &str,
    pred: Option<FnPtr>,
    ms: INT,
) -> RhaiResult {
    let pos = ctx.call_position();
    let deadline = tokio::time::Instant::now() + millis(ms);
    loop {
        let got = h.wait_rhai(ctx, async {
            tokio::time::timeout_at(deadline, sub.recv()).await
        })?;
        let ev = match got {
            Err(_elapsed) => {
                let mut m = blank_error(
                    "timeout",
                    format!("wait_for({name}): no matching event within {ms} ms"),
                );
                m.insert("errname".into(), "ETIMEDOUT".into());
                m.insert("errno".into(), opt(errno::number("ETIMEDOUT")));
                return Err(Box::new(EvalAltResult::ErrorRuntime(
                    Dynamic::from_map(m),
                    pos,
                )));
            }
            Ok(None) => {
                return Err(script_error(
                    "subscription",
                    format!("wait_for({name}): the subscription ended before a matching event"),
                    pos,
                ));
            }
            Ok(Some(Err(client::Error::Lagged { .. }))) => continue,
            Ok(Some(Err(e))) => return Err(client_error(&e, pos)),
            Ok(Some(Ok(ev))) => event_to_dynamic(&ev),
        };
        let Some(pred) = &pred else { return Ok(ev) };
        let verdict = pred.call_within_context::<Dynamic>(ctx, (ev.clone(),))?;
        match verdict.as_bool() {
            Ok(true) => return Ok(ev),
            Ok(false) => {}
            Err(t) => {
                return Err(script_error(
                    "argument",
                    format!("wait_for({name}): the predicate must return true or false, not {t}"),
                    pos,
                ));
            }
        }
    }
}

/// `exit()` is 0, `exit(n)` is n (clamped to 0..=255), `exit(true/false)` 0/1, other values 1.
fn exit_status(value: &Dynamic) -> i32 {
    if value.is_unit() {
        return 0;
    }
    if let Ok(n) = value.as_int() {
        return n.clamp(0, 255) as i32;
    }
    match value.as_bool() {
        Ok(ok) => i32::from(!ok),
        Err(_) => 1,
    }
}
