//! What feeds the [`Model`](super::Model): one connection, queries for the current state and
//! event subscriptions for every change (no polling): `reporting.realtime`, `app.stats`,
//! `pool.query`, `app.query`, `alert.list` and `core.get_jobs`.
//!
//! A server that lacks a method or an event source leaves that pane [`Unavailable`]
//! (`Update::Unavailable`) and the others go on. When the connection drops, [`run`] says so and
//! reconnects, with a growing pause (1 s up to 5 s).
//!
//! [`Unavailable`]: super::PaneState::Unavailable

use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use super::model::{Model, Pane, Update};
use crate::client::{Client, Error, Subscription};

/// The metrics source, every 2 s (the server's minimum and default).
pub const REALTIME: &str = r#"reporting.realtime:{"interval":2}"#;
/// Per-app usage, every 2 s.
pub const APP_STATS: &str = r#"app.stats:{"interval":2}"#;

/// The query that gives a pane's current state, and the event that changes it.
fn source(pane: Pane) -> Option<(&'static str, Vec<Value>, &'static str)> {
    match pane {
        Pane::Metrics => None,
        Pane::Pools => Some(("pool.query", vec![], "pool.query")),
        Pane::Apps => Some(("app.query", vec![], "app.query")),
        Pane::Alerts => Some(("alert.list", vec![], "alert.list")),
        Pane::Jobs => Some((
            "core.get_jobs",
            // Running jobs and the newest finished ones; the model keeps a few.
            vec![
                Value::Array(vec![]),
                serde_json::json!({"order_by": ["-id"], "limit": 50}),
            ],
            "core.get_jobs",
        )),
    }
}

/// A short note for a pane the server cannot feed.
fn note(what: &str, e: &Error) -> String {
    match e.server() {
        Some(s) => format!("{what}: {}", s.message),
        None => format!("{what}: {e}"),
    }
}

/// The state of the four queried panes, once, without events (for `check`). A failed query
/// leaves its pane unavailable; a lost connection is an error.
pub async fn load(client: &Client, model: &mut Model) -> Result<(), Error> {
    let panes = [Pane::Pools, Pane::Apps, Pane::Alerts, Pane::Jobs];
    let calls = panes.map(|pane| {
        let client = client.clone();
        async move {
            let (method, params, _) = source(pane).expect("queried panes have a source");
            (pane, method, client.call(method, params).await)
        }
    });
    let results = futures_util::future::join_all(calls).await;
    for (pane, method, result) in results {
        match result {
            Ok(v) => model.apply(Update::Snapshot(pane, items(v))),
            Err(e) if e.is_connection() => return Err(e),
            Err(e) => model.apply(Update::Unavailable(pane, note(method, &e))),
        }
    }
    model.apply(Update::Connected);
    Ok(())
}

fn items(v: Value) -> Vec<Value> {
    match v {
        Value::Array(a) => a,
        Value::Null => Vec::new(),
        other => vec![other],
    }
}

/// Subscribe to one pane's event (and for the panes with a query, take its current state),
/// then forward every event until the subscription ends. Returns the connection error that
/// ended it, or `None` when only this pane stopped.
async fn pane_feed(
    client: Client,
    pane: Pane,
    name: &'static str,
    tx: mpsc::Sender<Update>,
) -> Option<Error> {
    let sub = match client.subscribe(name).await {
        Ok(s) => s,
        Err(e) if e.is_connection() => return Some(e),
        Err(e) => {
            let _ = tx.send(Update::Unavailable(pane, note(name, &e))).await;
            return None;
        }
    };
    // Subscribed first, queried second: a change between the two is not lost (its event
    // waits in the subscription and is applied after the snapshot).
    let query = if name == APP_STATS || name == REALTIME {
        None
    } else {
        source(pane)
    };
    if let Some((method, params, _)) = query {
        match client.call(method, params).await {
            Ok(v) => {
                if tx.send(Update::Snapshot(pane, items(v))).await.is_err() {
                    return None;
                }
            }
            Err(e) if e.is_connection() => return Some(e),
            Err(e) => {
                let _ = tx.send(Update::Unavailable(pane, note(method, &e))).await;
                return None;
            }
        }
    }
    forward(sub, pane, name, tx).await
}

async fn forward(
    mut sub: Subscription,
    pane: Pane,
    name: &str,
    tx: mpsc::Sender<Update>,
) -> Option<Error> {
    loop {
        let update = match sub.recv().await {
            Some(Ok(ev)) => {
                if name == REALTIME {
                    Update::Realtime(ev.fields.unwrap_or(Value::Null))
                } else if name == APP_STATS {
                    Update::AppStats(ev.fields.unwrap_or(Value::Null))
                } else {
                    Update::Event(pane, ev)
                }
            }
            // Events were dropped while the screen was busy: the next one brings it up to date.
            Some(Err(Error::Lagged { .. })) => continue,
            Some(Err(e)) if e.is_connection() => return Some(e),
            Some(Err(e)) => Update::Unavailable(pane, note(name, &e)),
            None => Update::Unavailable(pane, format!("{name}: the server ended the stream")),
        };
        let last = matches!(update, Update::Unavailable(..));
        if tx.send(update).await.is_err() || last {
            return None;
        }
    }
}

/// Feed `tx` from `client` until the connection drops; returns why it dropped.
pub async fn feed(client: &Client, tx: &mpsc::Sender<Update>) -> Error {
    let mut tasks = JoinSet::new();
    let feeds = [
        (Pane::Metrics, REALTIME),
        (Pane::Apps, "app.query"),
        (Pane::Apps, APP_STATS),
        (Pane::Pools, "pool.query"),
        (Pane::Alerts, "alert.list"),
        (Pane::Jobs, "core.get_jobs"),
    ];
    for (pane, name) in feeds {
        tasks.spawn(pane_feed(client.clone(), pane, name, tx.clone()));
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Some(e)) = done {
            return e;
        }
    }
    // Every pane ended on its own; the connection may still be up: wait for it to go.
    while client.is_open() {
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Error::closed(None, "", client.url())
}

/// Feed `tx` for as long as it is read: from `first`, then from each new connection `reconnect`
/// makes after a drop, saying [`Update::Disconnected`] and [`Update::Connected`] as it goes.
pub async fn run<F, Fut>(first: Client, reconnect: F, tx: mpsc::Sender<Update>)
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<Client, String>>,
{
    let mut client = Some(first);
    let mut pause = Duration::from_secs(1);
    loop {
        if let Some(c) = client.take() {
            if tx.send(Update::Connected).await.is_err() {
                return;
            }
            pause = Duration::from_secs(1);
            let why = feed(&c, &tx).await;
            c.close().await;
            if tx
                .send(Update::Disconnected(format!(
                    "connection lost ({why}); reconnecting"
                )))
                .await
                .is_err()
            {
                return;
            }
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
        match reconnect().await {
            Ok(c) => client = Some(c),
            Err(e) => {
                if tx
                    .send(Update::Disconnected(format!("reconnecting: {e}")))
                    .await
                    .is_err()
                {
                    return;
                }
            }
        }
    }
}
