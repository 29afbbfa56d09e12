//! Reconnect and resume: the client against the mock's injected faults (a connection dropped
//! mid-job, a close with 1011, a frozen server, a restart with state kept), through the library
//! and through the binary (`call -j`, a script waiting on a job, `subscribe`, `compose up`),
//! with the logins counted on both sides.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use midscript::client::{
    Client, ConnectOptions, Dialect, Error, Mechanism, ReconnectEvent, ReconnectPolicy, RpcOptions,
    Trust,
};
use midscript::mock::{MockConfig, MockFaults, MockServer, ServerVersion};
use serde_json::json;

use crate::support::in_process::{api_key, assert_no_secrets, mock, password};
use crate::support::standalone::{BIN, StandaloneMock, stderr, stdout};

/// Quick reconnects for tests.
fn policy() -> ReconnectPolicy {
    ReconnectPolicy {
        first_delay: Duration::from_millis(40),
        max_delay: Duration::from_millis(400),
        give_up_after: Duration::from_secs(20),
        logins_per_minute: 5,
    }
}

async fn connect(server: &MockServer, policy: ReconnectPolicy) -> Client {
    connect_observed(server, policy, None).await
}

async fn connect_observed(
    server: &MockServer,
    policy: ReconnectPolicy,
    reconnected: Option<Arc<Notify>>,
) -> Client {
    let mut options = ConnectOptions::new(server.url());
    options.credentials = Some(password(server));
    options.reconnect = Some(policy);
    if let Some(n) = reconnected {
        options.on_reconnect = Some(Arc::new(move |e: &ReconnectEvent<'_>| {
            if matches!(e, ReconnectEvent::Reconnected { .. }) {
                n.notify_one();
            }
        }));
    }
    Client::connect(options).await.expect("connects")
}

fn faulty(faults: MockFaults) -> impl FnOnce(&mut MockConfig) {
    move |c| {
        c.job_step = Duration::from_millis(30);
        c.faults = MockFaults {
            restart_downtime: Duration::from_millis(200),
            ..faults
        };
    }
}

#[tokio::test]
async fn a_job_waiter_carries_on_after_the_connection_drops_mid_job() {
    let server = mock(faulty(MockFaults {
        drop_mid_job: true,
        ..Default::default()
    }))
    .await;
    let client = connect(&server, policy()).await;
    let result = client
        .job("pool.scrub.scrub", vec![json!("tank")], |_| {})
        .await;
    assert_eq!(result.unwrap(), serde_json::Value::Null);
    assert_eq!((client.logins(), server.logins()), (2, 2));
    let t = server.transcript().to_string();
    assert!(t.contains("dropped without a close frame"), "{t}");
    client.close().await;
}

#[tokio::test]
async fn the_legacy_dialect_reconnects_too() {
    let server = mock(|c| {
        faulty(MockFaults {
            restart_mid_job: true,
            ..Default::default()
        })(c);
        c.version = ServerVersion::V24_10;
    })
    .await;
    let client = connect(&server, policy()).await;
    assert_eq!(client.dialect(), Dialect::Legacy);
    let app = json!({"app_name": "web", "custom_app": true,
        "custom_compose_config": {"services": {"web": {"image": "nginx:1.27"}}}});
    let result = client.job("app.create", vec![app], |_| {}).await.unwrap();
    assert_eq!(result["name"], "web");
    assert_eq!((client.logins(), server.logins()), (2, 2));
    // Each connection did the legacy handshake first.
    let t = server.transcript().to_string();
    assert_eq!(t.matches(r#""msg":"connect""#).count(), 2, "{t}");
    client.close().await;
}

#[tokio::test]
async fn a_job_waiter_gets_the_real_outcome_across_a_restart() {
    let server = mock(faulty(MockFaults {
        restart_mid_job: true,
        ..Default::default()
    }))
    .await;
    let client = connect(&server, policy()).await;
    let app = json!({"app_name": "web", "custom_app": true,
        "custom_compose_config": {"services": {"web": {"image": "nginx:1.27"}}}});
    let result = client.job("app.create", vec![app], |_| {}).await.unwrap();
    assert_eq!(result["name"], "web");
    assert_eq!((client.logins(), server.logins()), (2, 2));
    // The state was kept: the app exists after the restart.
    let apps = client.call("app.query", vec![]).await.unwrap();
    assert_eq!(apps[0]["name"], "web");
    client.close().await;
}

#[tokio::test]
async fn subscriptions_are_renewed_after_a_restart() {
    let server = mock(faulty(MockFaults::default())).await;
    let reconnected = Arc::new(Notify::new());
    let client = connect_observed(&server, policy(), Some(reconnected.clone())).await;
    let mut sub = client.subscribe("core.get_jobs").await.unwrap();
    server.restart();
    tokio::time::timeout(Duration::from_secs(10), reconnected.notified())
        .await
        .expect("reconnected, and subscribed again");
    // A job started by another client after the restart reaches the renewed subscription.
    let other = loop {
        let mut options = ConnectOptions::new(server.url());
        options.credentials = Some(password(&server));
        match Client::connect(options).await {
            Ok(c) => break c,
            Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
        }
    };
    // (A scrub is a transient job, which sends no events; app.create sends them.)
    let app = json!({"app_name": "web", "custom_app": true,
        "custom_compose_config": {"services": {"web": {"image": "nginx:1.27"}}}});
    other.job("app.create", vec![app], |_| {}).await.unwrap();
    let event = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("an event after the restart")
        .expect("open")
        .expect("an event, not an error");
    assert_eq!(event.collection, "core.get_jobs");
    assert_eq!(client.logins(), 2);
    other.close().await;
    client.close().await;
}

#[tokio::test]
async fn a_read_in_flight_is_sent_again_and_anything_else_is_reported_unknown() {
    // Message 1 is the login, 2 the read, which gets a 1011 close instead of a reply.
    let server = mock(faulty(MockFaults {
        close_1011_at: Some(2),
        ..Default::default()
    }))
    .await;
    let client = connect(&server, policy()).await;
    let info = client.call("system.info", vec![]).await.unwrap();
    assert_eq!(info["hostname"], "truenas");
    assert_eq!(client.logins(), 2);
    client.close().await;

    // Message 2 is a write now: not sent again, its outcome is unknown.
    let server = mock(faulty(MockFaults {
        close_1011_at: Some(2),
        ..Default::default()
    }))
    .await;
    let client = connect(&server, policy()).await;
    let err = client
        .call("user.update", vec![json!(1), json!({"full_name": "X"})])
        .await
        .unwrap_err();
    assert!(matches!(err, Error::OutcomeUnknown { .. }), "{err:?}");
    assert!(err.is_connection());
    let text = err.to_string();
    assert!(
        text.starts_with("user.update: the connection was lost"),
        "{text}"
    );
    assert!(text.contains("1011"), "{text}");
    assert!(
        text.contains("whether the server carried it out is unknown"),
        "{text}"
    );
    let sent = server
        .transcript()
        .to_string()
        .matches("user.update")
        .count();
    assert_eq!(sent, 1, "sent once, never again");
    // The client is still usable.
    assert_eq!(client.call("core.ping", vec![]).await.unwrap(), "pong");
    client.close().await;
}

#[tokio::test]
async fn a_frozen_server_is_detected_by_keepalive_and_left() {
    let server = mock(faulty(MockFaults {
        freeze_at: Some(2),
        ..Default::default()
    }))
    .await;
    let mut options = ConnectOptions::new(server.url());
    options.credentials = Some(password(&server));
    options.reconnect = Some(policy());
    options.rpc = RpcOptions {
        keepalive: Some(Duration::from_millis(100)),
        ..RpcOptions::default()
    };
    let client = Client::connect(options).await.unwrap();
    let info = client.call("system.info", vec![]).await.unwrap();
    assert_eq!(info["hostname"], "truenas");
    assert_eq!(client.logins(), 2);
    client.close().await;
}

#[tokio::test]
async fn logins_stay_within_the_budget() {
    let server = mock(faulty(MockFaults::default())).await;
    let client = connect(
        &server,
        ReconnectPolicy {
            logins_per_minute: 2,
            give_up_after: Duration::from_secs(3),
            ..policy()
        },
    )
    .await;
    let mut sub = client.subscribe("core.get_jobs").await.unwrap();
    server.restart();
    assert_eq!(client.call("core.ping", vec![]).await.unwrap(), "pong");
    assert_eq!(client.logins(), 2);
    // A second restart within the minute: a third login would exceed the budget.
    server.restart();
    let err = loop {
        match client.call("core.ping", vec![]).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break e,
        }
    };
    let text = err.to_string();
    assert!(matches!(err, Error::ReconnectFailed { .. }), "{err:?}");
    assert!(text.contains("2 logins in the last minute"), "{text}");
    assert_eq!((client.logins(), server.logins()), (2, 2));
    // The subscriber learns it too.
    let ended = sub.recv().await.expect("an item").unwrap_err();
    assert!(matches!(ended, Error::ReconnectFailed { .. }), "{ended:?}");
}

#[tokio::test]
async fn reconnecting_gives_up_when_the_server_is_gone() {
    let server = mock(|_| {}).await;
    let client = connect(
        &server,
        ReconnectPolicy {
            give_up_after: Duration::from_millis(600),
            ..policy()
        },
    )
    .await;
    server.shutdown().await;
    let err = loop {
        match client.call("core.ping", vec![]).await {
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            Err(e) => break e,
        }
    };
    assert!(matches!(err, Error::ReconnectFailed { .. }), "{err:?}");
    assert!(
        err.to_string().contains("could not be re-established"),
        "{err}"
    );
}

/// Over wss every connection is a TLS session of its own: the SCRAM login after a reconnect is
/// bound again (`tls-server-end-point`, with the certificate the new session presented, which
/// the server checks), whether the certificate was pinned or not checked at all (then the one
/// seen first is pinned for reconnects).
#[tokio::test]
async fn a_scram_login_after_a_reconnect_is_bound_to_the_new_connection() {
    for pinned in [true, false] {
        let server = mock(|c| {
            faulty(MockFaults::default())(c);
            c.version = ServerVersion::V26_0;
            c.tls = true;
        })
        .await;
        let reconnected = Arc::new(Notify::new());
        let mut options = ConnectOptions::new(server.url());
        options.credentials = Some(api_key(&server, true));
        options.trust = match (pinned, server.fingerprint()) {
            (true, Some(fp)) => Trust::Pinned(fp.parse().unwrap()),
            _ => Trust::Insecure,
        };
        options.reconnect = Some(policy());
        let n = reconnected.clone();
        options.on_reconnect = Some(Arc::new(move |e: &ReconnectEvent<'_>| {
            if matches!(e, ReconnectEvent::Reconnected { .. }) {
                n.notify_one();
            }
        }));
        let client = Client::connect(options).await.expect("connects");
        assert_eq!(client.login_info().unwrap().mechanism, Mechanism::Scram);
        server.restart();
        tokio::time::timeout(Duration::from_secs(10), reconnected.notified())
            .await
            .expect("reconnected, and logged in again");
        assert!(client.is_authenticated());
        client.call("system.info", vec![]).await.unwrap();
        assert_eq!(
            (client.logins(), server.logins()),
            (2, 2),
            "pinned: {pinned}"
        );
        let t = server.transcript().to_string();
        let firsts: Vec<&str> = t
            .split("CLIENT_FIRST_MESSAGE")
            .skip(1)
            .map(|rest| {
                let start = rest.find("\"rfc_str\":\"").unwrap() + 11;
                &rest[start..start + rest[start..].find('"').unwrap()]
            })
            .collect();
        assert_eq!(firsts.len(), 2, "{t}");
        for first in firsts {
            assert!(
                first.starts_with("p=tls-server-end-point,,n=truenas_admin:1,r="),
                "pinned: {pinned}: {first}"
            );
        }
        assert_no_secrets(&server);
        client.close().await;
    }
}

// ---- the binary --------------------------------------------------------------------------

/// A standalone mock on plain ws with `admin:pw`, 60 ms job steps and `faults`.
fn standalone(faults: &[&str]) -> StandaloneMock {
    let mut args = vec!["--plain", "--user", "admin:pw", "--job-step-ms", "60"];
    args.extend_from_slice(faults);
    StandaloneMock::start(&args)
}

/// `midscript --url URL -U admin -P pw --trace TRACE ARGS…` with a clean environment.
fn midscript(mock: &StandaloneMock, trace: &Path, args: &[&str]) -> Command {
    let mut c = crate::support::standalone::midscript(&[]);
    let url = mock.value("URL");
    c.args(["--url", &url, "-U", "admin", "-P", "pw", "--trace"])
        .arg(trace)
        .args(args);
    c
}

/// Logins sent, as the client's trace shows them.
fn logins_in(trace: &Path) -> usize {
    std::fs::read_to_string(trace)
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("->") && l.contains("\"auth.login_ex\""))
        .count()
}

fn run(mut c: Command) -> Output {
    c.stdin(Stdio::null()).output().expect("the binary runs")
}

fn scrub_with(faults: &[&str]) {
    let mock = standalone(faults);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let o = run(midscript(
        &mock,
        &trace,
        &[
            "call",
            "-j",
            "--progress",
            "none",
            "pool.scrub.scrub",
            "tank",
        ],
    ));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(stdout(&o), "null\n");
    assert!(
        err.contains("midscript: job 1 started (pool.scrub.scrub)"),
        "{err}"
    );
    assert!(err.contains("midscript: connection lost ("), "{err}");
    assert!(err.contains("logins so far: 2"), "{err}");
    assert_eq!(logins_in(&trace), 2, "{err}");
}

#[test]
fn call_j_survives_a_dropped_connection() {
    scrub_with(&["--fault-drop-mid-job"]);
}

#[test]
fn call_j_survives_a_restart() {
    scrub_with(&["--fault-restart-mid-job"]);
}

#[test]
fn without_reconnect_a_drop_ends_with_exit_3_and_the_job_id_shown() {
    let mock = standalone(&["--fault-drop-mid-job"]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let o = run(midscript(
        &mock,
        &trace,
        &[
            "call",
            "-j",
            "--no-reconnect",
            "--progress",
            "none",
            "pool.scrub.scrub",
            "tank",
        ],
    ));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(3), "{err}");
    assert!(
        err.contains("midscript: job 1 started (pool.scrub.scrub)"),
        "{err}"
    );
    // The job ran on; attach to it by id.
    let o = run(midscript(
        &mock,
        &trace,
        &["job", "--attach", "1", "--progress", "none"],
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "null\n");
    assert!(stderr(&o).contains("waiting for job 1 (pool.scrub.scrub)"));
    let o = run(midscript(&mock, &trace, &["job", "--attach", "99"]));
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("the server has no job 99"),
        "{}",
        stderr(&o)
    );
}

fn script_with(faults: &[&str]) {
    let mock = standalone(faults);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let code = r#"
        let app = job("app.create", #{ app_name: "web", custom_app: true,
            custom_compose_config: #{ services: #{ web: #{ image: "nginx:1.27" } } } });
        print(app.name);
    "#;
    let o = run(midscript(&mock, &trace, &["run", "-e", code]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(stdout(&o), "web\n", "{err}");
    assert!(err.contains("job 1 started (app.create)"), "{err}");
    assert!(err.contains("logins so far: 2"), "{err}");
    assert_eq!(logins_in(&trace), 2, "{err}");
}

#[test]
fn a_script_sees_a_lost_write_as_outcome_unknown_and_carries_on() {
    // Message 1 is the login, 2 the write (closed with 1011 instead of answered).
    let mock = standalone(&["--fault-close-1011-at", "2"]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let code = r#"
        try {
            call("user.update", 1, #{ full_name: "X" });
        } catch (e) {
            print(`${e.kind} ${e.outcome} ${e.method}`);
        }
        print(call("system.info").hostname);
    "#;
    let o = run(midscript(&mock, &trace, &["run", "-e", code]));
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        stdout(&o),
        "connection unknown user.update\ntruenas\n",
        "{err}"
    );
    let sent = std::fs::read_to_string(&trace).unwrap();
    let updates = sent
        .lines()
        .filter(|l| l.starts_with("->") && l.contains("\"user.update\""))
        .count();
    assert_eq!(updates, 1, "never sent again:\n{sent}");
}

#[test]
fn a_script_waiting_on_a_job_survives_a_dropped_connection() {
    script_with(&["--fault-drop-mid-job"]);
}

#[test]
fn a_script_waiting_on_a_job_survives_a_restart() {
    script_with(&["--fault-restart-mid-job"]);
}

/// `subscribe core.get_jobs -n 2` sends its login (message 1) and `core.subscribe` (2).
/// `at_subscribe`: the fault hits message 2 (the subscription is made after the reconnect);
/// otherwise `ping` logs in (3) and its `core.ping` (4, a read sent again after the
/// reconnect) is the fault. A job run after the subscriber is back makes the events it prints.
fn subscribe_with(fault: &str, at_subscribe: bool) {
    let mock = standalone(&[fault, if at_subscribe { "2" } else { "4" }]);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let mut sub = midscript(&mock, &trace, &["subscribe", "core.get_jobs", "-n", "2"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = sub.id();
    // Never hang: a subscriber still there after 60 s is killed (and the test fails).
    std::thread::spawn(move || {
        std::thread::sleep(Duration::from_secs(60));
        let _ = Command::new("kill").arg(pid.to_string()).status();
    });
    let other_trace = dir.path().join("other");
    if !at_subscribe {
        // Wait for the subscription (the trace shows its reply), then trigger the fault.
        let subscribed = || {
            std::fs::read_to_string(&trace)
                .unwrap_or_default()
                .lines()
                .any(|l| l.starts_with("<-") && l.contains("\"id\":2"))
        };
        while !subscribed() {
            std::thread::sleep(Duration::from_millis(20));
        }
        let ping = run(midscript(&mock, &other_trace, &["ping"]));
        assert_eq!(stdout(&ping), "pong\n", "{}", stderr(&ping));
    }
    let mut err = BufReader::new(sub.stderr.take().unwrap());
    let mut seen = String::new();
    while !seen.contains("reconnected") {
        let mut line = String::new();
        assert!(
            err.read_line(&mut line).unwrap() > 0,
            "stderr ended: {seen}"
        );
        seen.push_str(&line);
    }
    let job = run(midscript(
        &mock,
        &other_trace,
        &[
            "call",
            "-j",
            "--progress",
            "none",
            "app.create",
            r#"{"app_name":"web","custom_app":true,"custom_compose_config":{"services":{"web":{"image":"nginx:1.27"}}}}"#,
        ],
    ));
    assert_eq!(job.status.code(), Some(0), "{}", stderr(&job));
    let o = sub.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(0), "{seen}");
    let events: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    assert!(events.iter().all(|e| e["collection"] == "core.get_jobs"));
    assert_eq!(events[0]["fields"]["method"], "app.create");
    assert!(seen.contains("logins so far: 2"), "{seen}");
    assert_eq!(logins_in(&trace), 2, "{seen}");
}

#[test]
fn subscribe_survives_a_close_with_1011() {
    subscribe_with("--fault-close-1011-at", true);
}

#[test]
fn subscribe_survives_a_restart() {
    subscribe_with("--fault-restart-at", false);
}

fn whoami() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/compose/whoami")
}

fn compose_with(faults: &[&str]) {
    let mock = standalone(faults);
    let dir = tempfile::tempdir().unwrap();
    let trace = dir.path().join("trace");
    let mut c = Command::new(BIN);
    c.args([
        "compose",
        "up",
        "--progress",
        "none",
        "--url",
        &mock.value("URL"),
    ])
    .args(["-U", "admin", "-P", "pw", "--trace"])
    .arg(&trace)
    .current_dir(whoami())
    .env_clear()
    .env("XDG_STATE_HOME", dir.path())
    .env("HOME", dir.path())
    .env("NO_COLOR", "1");
    let o = run(c);
    let err = stderr(&o);
    assert_eq!(o.status.code(), Some(0), "{err}");
    assert_eq!(
        stdout(&o).lines().last(),
        Some("whoami: created, RUNNING"),
        "{err}"
    );
    assert!(err.contains("midscript: job 1 started"), "{err}");
    assert!(err.contains("logins so far: 2"), "{err}");
    assert_eq!(logins_in(&trace), 2, "{err}");
}

#[test]
fn a_compose_deployment_survives_a_dropped_connection() {
    compose_with(&["--fault-drop-mid-job"]);
}

#[test]
fn a_compose_deployment_survives_a_restart() {
    compose_with(&["--fault-restart-mid-job"]);
}
