//! The model and the verdict, without a server or a terminal.

use serde_json::json;

use super::check::{self, Options, Scope, State, Verdict};
use super::{Link, Model, Pane, PaneState, Update};
use crate::protocol::{CollectionUpdate, EventKind};

fn event(
    pane_collection: &str,
    msg: EventKind,
    id: serde_json::Value,
    fields: Option<serde_json::Value>,
) -> CollectionUpdate {
    CollectionUpdate {
        msg,
        collection: pane_collection.into(),
        id: Some(id),
        fields,
        extra: None,
    }
}

fn pool(id: i64, name: &str, status: &str, allocated: u64) -> serde_json::Value {
    json!({"id": id, "name": name, "status": status, "healthy": status == "ONLINE",
           "size": 1000, "allocated": allocated})
}

#[test]
fn events_update_what_the_snapshot_gave() {
    let mut m = Model::default();
    m.apply(Update::Snapshot(
        Pane::Pools,
        vec![pool(1, "tank", "ONLINE", 500)],
    ));
    // A `changed` with only some fields keeps the others.
    m.apply(Update::Event(
        Pane::Pools,
        event(
            "pool.query",
            EventKind::Changed,
            json!(1),
            Some(json!({"allocated": 950})),
        ),
    ));
    let tank = &m.pools["tank"];
    assert_eq!(
        (tank.status.as_str(), tank.allocated, tank.size),
        ("ONLINE", 950, 1000)
    );
    assert_eq!(tank.used_percent(), 95.0);

    m.apply(Update::Snapshot(
        Pane::Alerts,
        vec![json!({"uuid": "a1", "klass": "X", "level": "WARNING", "formatted": "x"})],
    ));
    m.apply(Update::Event(
        Pane::Alerts,
        event("alert.list", EventKind::Removed, json!("a1"), None),
    ));
    m.apply(Update::Event(
        Pane::Alerts,
        event(
            "alert.list",
            EventKind::Changed,
            json!("a2"),
            Some(json!({"klass": "Y", "level": "CRITICAL", "text": "y"})),
        ),
    ));
    assert_eq!(m.alerts.keys().collect::<Vec<_>>(), ["a2"]);

    m.apply(Update::Snapshot(
        Pane::Apps,
        vec![json!({"name": "web", "state": "RUNNING"})],
    ));
    m.apply(Update::AppStats(
        json!([{"app_name": "web", "cpu_usage": 7.0, "memory": 1024}]),
    ));
    m.apply(Update::Event(
        Pane::Apps,
        event(
            "app.query",
            EventKind::Changed,
            json!("web"),
            Some(json!({"state": "CRASHED"})),
        ),
    ));
    let web = &m.apps["web"];
    assert_eq!(
        (web.state.as_str(), web.cpu, web.memory),
        ("CRASHED", Some(7.0), Some(1024))
    );
    assert_eq!(m.updates[&Pane::Apps], 3);
}

#[test]
fn realtime_samples_fill_the_trends_and_jobs_are_trimmed() {
    let mut m = Model::default();
    for i in 0..70 {
        m.apply(Update::Realtime(json!({
            "cpu": {"cpu": {"usage": i as f64}, "cpu1": {"usage": 1.0}, "cpu0": {"usage": 2.0}},
            "memory": {"physical_memory_total": 100, "physical_memory_available": 25, "arc_size": 10},
            "interfaces": {"eth0": {"received_bytes_rate": 5.0, "sent_bytes_rate": 6.0}},
        })));
    }
    let x = &m.metrics;
    assert_eq!(x.cpu_history.len(), super::HISTORY);
    assert_eq!(x.cpu_history.back(), Some(&69));
    assert_eq!(
        x.cores.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(),
        ["cpu0", "cpu1"]
    );
    assert_eq!(x.memory.as_ref().map(|m| m.used_percent()), Some(75.0));
    assert_eq!(x.interfaces["eth0"].tx, 6.0);

    let jobs: Vec<_> = (1..=20)
        .map(|id| json!({"id": id, "method": "m", "state": if id == 20 { "RUNNING" } else { "SUCCESS" }, "progress": {"percent": 50}}))
        .collect();
    m.apply(Update::Snapshot(Pane::Jobs, jobs));
    assert_eq!(
        m.jobs.len(),
        9,
        "the running job and the 8 newest finished ones"
    );
    assert!(m.jobs.contains_key(&20) && !m.jobs.contains_key(&11));
}

#[test]
fn the_link_and_missing_sources_are_shown_not_fatal() {
    let mut m = Model::default();
    assert_eq!(m.link, Link::Connecting);
    m.apply(Update::Connected);
    m.apply(Update::Unavailable(
        Pane::Metrics,
        "reporting.realtime: no such source".into(),
    ));
    m.apply(Update::Disconnected("connection lost; reconnecting".into()));
    assert_eq!(m.link, Link::Down("connection lost; reconnecting".into()));
    assert_eq!(
        m.panes[&Pane::Metrics],
        PaneState::Unavailable("reporting.realtime: no such source".into())
    );
    assert_eq!(
        m.to_json()["unavailable"],
        json!({"system": "reporting.realtime: no such source"})
    );

    // A pane the server cannot feed makes its part of a check UNKNOWN (exit 3).
    m.apply(Update::Unavailable(
        Pane::Alerts,
        "alert.list: Method does not exist".into(),
    ));
    let v = check::judge(&m, Scope::Alerts, &Options::default());
    assert_eq!(v.state, State::Unknown);
    assert_eq!(
        v.line(),
        "TRUENAS UNKNOWN - alert.list: Method does not exist"
    );
    assert_eq!(v.state.code(), 3);
}

#[test]
fn the_plugin_line_quotes_labels_and_ranks_states() {
    let mut m = Model::default();
    m.apply(Update::Snapshot(
        Pane::Pools,
        vec![
            pool(1, "my pool", "ONLINE", 850),
            pool(2, "b", "FAULTED", 10),
        ],
    ));
    let v = check::judge(&m, Scope::Pools, &Options::default());
    assert_eq!(
        v.line(),
        "TRUENAS CRITICAL - pool b is FAULTED, pool my pool is 85.0% full | b_used=1%;80;90;0;100 'my pool_used'=85%;80;90;0;100"
    );
    assert!(State::Critical > State::Unknown && State::Unknown > State::Warning);
    assert_eq!(
        Verdict::unknown("cannot connect | x").line(),
        "TRUENAS UNKNOWN - cannot connect / x"
    );
}
