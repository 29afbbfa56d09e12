//! Subscriptions (`docs/middleware.md` §5): `core.subscribe` / `core.unsubscribe` (and the legacy
//! `sub` / `unsub`, §1.4, through [`start`] and [`stop`]), plain events routed by the exact
//! `collection` string, and event sources with `name:{json}` arguments that end with
//! `notify_unsubscribed` (legacy: `nosub`).
//!
//! Event sources: `app.container_log_follow`, `app.stats`, `reporting.realtime`. Periodic
//! sources tick every `interval` seconds; in deterministic mode one "second" lasts one
//! `job_step` (5 ms in [`MockConfig::for_tests`](super::MockConfig::for_tests)), so
//! `{"interval": 2}` ticks every 10 ms in tests. Unlike the real server, which shares one
//! source instance per `(name, arg)`, each subscription runs its own instance; delivery is the
//! same (one copy per subscription, §5.1).

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Map, Value, json};
use tokio_util::sync::CancellationToken;

use super::dispatch::{Ctx, MethodDef, args, handler};
use super::error::MockError;
use super::state::{Conn, Framing, Shared, lock};
use crate::protocol::{CollectionUpdate, EventKind, Notification, errno};

/// One subscription of a connection.
#[derive(Debug, Clone)]
pub(crate) struct Sub {
    pub id: String,
    /// The full name as subscribed.
    pub name: String,
    /// Set for event sources: cancels the source.
    pub source: Option<CancellationToken>,
}

pub(crate) fn methods() -> Vec<MethodDef> {
    vec![
        MethodDef::call("core.subscribe", handler!(subscribe)),
        MethodDef::call("core.unsubscribe", handler!(unsubscribe)),
    ]
}

/// The event sources the mock provides.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    LogFollow,
    AppStats,
    Realtime,
}

impl Source {
    fn from_short(s: &str) -> Option<Source> {
        match s {
            "app.container_log_follow" => Some(Source::LogFollow),
            "app.stats" => Some(Source::AppStats),
            "reporting.realtime" => Some(Source::Realtime),
            _ => None,
        }
    }
}

/// Validated source arguments.
#[derive(Debug, Clone)]
enum SourceArgs {
    Log {
        app_name: String,
        container_id: String,
        tail_lines: Option<u64>,
    },
    Interval(u64),
}

/// `validate_arg`: JSON and field checks (errors go out before the subscribe reply, §5.3).
/// Guess: attributes are the bare field names (`interval`), JSON errors have attribute null.
fn validate(source: Source, raw: Option<&str>) -> Result<SourceArgs, MockError> {
    let arg: Map<String, Value> = match raw {
        None => Map::new(),
        Some(text) => match serde_json::from_str::<Value>(text) {
            Ok(Value::Object(m)) => m,
            Ok(Value::Null) => Map::new(),
            Ok(_) => {
                return Err(MockError::invalid(
                    None,
                    "Input should be a valid dictionary",
                    errno::EINVAL,
                ));
            }
            Err(e) => {
                return Err(MockError::invalid(
                    None,
                    format!("Invalid JSON: {e}"),
                    errno::EINVAL,
                ));
            }
        },
    };
    let bad = |attr: &str, msg: &str| MockError::invalid(Some(attr), msg, errno::EINVAL);
    match source {
        Source::LogFollow => {
            let app_name = args::field_str(&arg, "app_name", "app_name")?;
            let container_id = args::field_str(&arg, "container_id", "container_id")?;
            let tail_lines = match arg.get("tail_lines") {
                None => Some(500),
                Some(Value::Null) => None,
                Some(v) => match v.as_i64() {
                    Some(n) if n >= 1 => Some(n as u64),
                    Some(_) => {
                        return Err(bad(
                            "tail_lines",
                            "Input should be greater than or equal to 1",
                        ));
                    }
                    None => return Err(bad("tail_lines", "Input should be a valid integer")),
                },
            };
            Ok(SourceArgs::Log {
                app_name,
                container_id,
                tail_lines,
            })
        }
        Source::AppStats | Source::Realtime => match arg.get("interval") {
            None => Ok(SourceArgs::Interval(2)),
            Some(v) => match v.as_i64() {
                Some(n) if n >= 2 => Ok(SourceArgs::Interval(n as u64)),
                Some(_) => Err(bad(
                    "interval",
                    "Input should be greater than or equal to 2",
                )),
                None => Err(bad("interval", "Input should be a valid integer")),
            },
        },
    }
}

/// `notify_unsubscribed`, or `nosub` on a legacy connection (§5.3, §1.4), with the error in
/// that framing's shape.
fn notify_unsubscribed(conn: &Conn, ctx_shared: &Shared, name: &str, error: Option<&MockError>) {
    let version = ctx_shared.config.version;
    match conn.framing {
        Framing::JsonRpc => conn.notify(&Notification::NotifyUnsubscribed {
            collection: name.to_owned(),
            error: error.map(|e| e.error_data(name, version)),
        }),
        Framing::Ddp => {
            super::ddp::nosub(conn, name, error.map(|e| e.to_legacy_error(name, version)))
        }
    }
}

/// `core.subscribe [name]` → subscription id. Plain names are not validated (§5.1).
async fn subscribe(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let name = args::string(&p, 0, "name")?;
    let id = ctx.shared.ids.uuid();
    start(&ctx, name, id.clone());
    Ok(id.into())
}

/// Subscribe the connection of `ctx` to `name` under `id` (a server uuid on JSON-RPC, the
/// client's id on legacy `sub`). Bad event-source arguments end it at once with
/// `notify_unsubscribed` / `nosub`, before the reply (`docs/middleware.md` §5.3); a source starts once the
/// reply is queued ([`Ctx::release`]).
pub(crate) fn start(ctx: &Ctx, name: String, id: String) {
    let (short, raw) = match name.split_once(':') {
        Some((s, r)) => (s, Some(r)),
        None => (name.as_str(), None),
    };
    let Some(source) = Source::from_short(short) else {
        lock(&ctx.conn.subs).push(Sub {
            id,
            name,
            source: None,
        });
        return;
    };
    let parsed = match validate(source, raw) {
        Ok(a) => a,
        Err(e) => {
            notify_unsubscribed(&ctx.conn, &ctx.shared, &name, Some(&e));
            return;
        }
    };
    let token = CancellationToken::new();
    lock(&ctx.conn.subs).push(Sub {
        id: id.clone(),
        name: name.clone(),
        source: Some(token.clone()),
    });
    let go = ctx.defer();
    let (shared, conn, sub_id) = (ctx.shared.clone(), ctx.conn.clone(), id.clone());
    tokio::spawn(async move {
        let _ = go.await;
        let run = run_source(&shared, &conn, &name, parsed);
        let outcome = tokio::select! {
            r = run => Some(r),
            _ = token.cancelled() => None,
            _ = conn.gone.cancelled() => None,
        };
        if let Some(result) = outcome {
            finish_source(&shared, &conn, &sub_id, result.err().as_ref());
        }
    });
}

/// A source ended on its own: drop the subscription and tell the client (unless it already
/// unsubscribed).
fn finish_source(shared: &Shared, conn: &Conn, sub_id: &str, error: Option<&MockError>) {
    let removed = {
        let mut subs = lock(&conn.subs);
        subs.iter()
            .position(|s| s.id == sub_id)
            .map(|i| subs.remove(i))
    };
    if let Some(sub) = removed {
        notify_unsubscribed(conn, shared, &sub.name, error);
    }
}

/// `core.unsubscribe [id]` → null; unknown ids are ignored.
async fn unsubscribe(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let id = args::string(&p, 0, "id")?;
    stop(&ctx.shared, &ctx.conn, &id);
    Ok(Value::Null)
}

/// End subscription `id` of `conn` (`core.unsubscribe`, legacy `unsub`); an event source says
/// so with `notify_unsubscribed` / `nosub`. Unknown ids are ignored.
pub(crate) fn stop(shared: &Shared, conn: &Conn, id: &str) {
    let removed = {
        let mut subs = lock(&conn.subs);
        subs.iter().position(|s| s.id == id).map(|i| subs.remove(i))
    };
    if let Some(Sub {
        name,
        source: Some(token),
        ..
    }) = removed
    {
        token.cancel();
        notify_unsubscribed(conn, shared, &name, None);
    }
}

/// End every event-source subscription of `conn` with `notify_unsubscribed` (on logout).
pub(crate) fn end_sources(conn: &Conn) {
    let ended: Vec<Sub> = {
        let mut subs = lock(&conn.subs);
        let (sources, plain): (Vec<Sub>, Vec<Sub>) =
            subs.drain(..).partition(|s| s.source.is_some());
        *subs = plain;
        sources
    };
    for s in ended {
        if let Some(t) = &s.source {
            t.cancel();
        }
        conn.notify(&Notification::NotifyUnsubscribed {
            collection: s.name,
            error: None,
        });
    }
}

/// Cancel every source of a closed connection, silently.
pub(crate) fn drop_all(conn: &Conn) {
    for s in lock(&conn.subs).drain(..) {
        if let Some(t) = s.source {
            t.cancel();
        }
    }
}

fn added(conn: &Conn, name: &str, fields: Value) {
    conn.notify(&Notification::CollectionUpdate(CollectionUpdate {
        msg: EventKind::Added,
        collection: name.to_owned(),
        id: None,
        fields: Some(fields),
        extra: None,
    }));
}

/// Length of one interval "second" (a `job_step` in deterministic mode).
fn second(shared: &Shared) -> Duration {
    if shared.config.deterministic {
        shared.config.job_step.max(Duration::from_millis(1))
    } else {
        Duration::from_secs(1)
    }
}

async fn run_source(
    shared: &Arc<Shared>,
    conn: &Arc<Conn>,
    name: &str,
    args: SourceArgs,
) -> Result<(), MockError> {
    match args {
        SourceArgs::Log {
            app_name,
            container_id,
            tail_lines,
        } => {
            let (lines, running) = shared.apps.container_logs(&app_name, &container_id)?;
            let skip = tail_lines.map_or(0, |n| lines.len().saturating_sub(n as usize));
            for (timestamp, data) in lines.into_iter().skip(skip) {
                added(conn, name, json!({"data": data, "timestamp": timestamp}));
                tokio::task::yield_now().await;
            }
            // As `docker logs -f`: the stream of a running container stays open (until the
            // client unsubscribes); that of a container that exited ends with its log.
            if running {
                std::future::pending::<()>().await;
            }
            Ok(())
        }
        SourceArgs::Interval(n) => {
            let period = second(shared) * (n as u32);
            let mut tick = 0u64;
            loop {
                tokio::time::sleep(period).await;
                tick += 1;
                let fields = if name.starts_with("app.stats") {
                    shared.apps.stats(tick, n)
                } else {
                    realtime(tick)
                };
                added(conn, name, fields);
            }
        }
    }
}

/// A plausible `reporting.realtime` sample (cpu, memory, interfaces, disks, zfs ARC).
fn realtime(tick: u64) -> Value {
    let t = tick as f64;
    let usage = |core: f64| ((t * 7.0 + core * 13.0) % 40.0 * 10.0).round() / 10.0 + 1.0;
    json!({
        "cpu": {
            "cpu": {"usage": usage(0.0), "temp": 41.0},
            "cpu0": {"usage": usage(1.0), "temp": 41.0},
            "cpu1": {"usage": usage(2.0), "temp": 42.0},
        },
        "memory": {
            "arc_size": 4_294_967_296_u64,
            "arc_free_memory": 2_147_483_648_u64,
            "arc_available_memory": 6_442_450_944_u64,
            "physical_memory_total": 17_179_869_184_u64,
            "physical_memory_available": 9_663_676_416_u64 - tick % 16 * 1_048_576,
        },
        "interfaces": {
            "enp1s0": {
                "link_state": "LINK_STATE_UP",
                "speed": 1000,
                "received_bytes_rate": 1200.0 + t * 10.0,
                "sent_bytes_rate": 800.0 + t * 5.0,
            }
        },
        "disks": {"busy": 0.5, "read_bytes": 4096.0, "write_bytes": 8192.0, "read_ops": 1.0, "write_ops": 2.0},
        "zfs": {
            "demand_accesses_per_second": 120,
            "demand_data_hits_per_second": 100,
            "demand_data_misses_per_second": 2,
            "demand_data_hit_percentage": 98,
            "demand_metadata_hits_per_second": 18,
        },
    })
}
