//! Unit tests of the machine interface against the in-process mock.

use serde_json::{Value, json};

use super::*;
use crate::client::{ConnectOptions, Credentials, Secret};
use crate::mock::{MockConfig, MockServer, TEST_API_KEY, TranscriptEvent};

async fn mock() -> MockServer {
    MockServer::start(MockConfig::for_tests())
        .await
        .expect("the mock starts")
}

async fn client(server: &MockServer) -> Client {
    Client::connect(options(server)).await.expect("connects")
}

/// A password login: the mock (like TrueNAS) revokes an API key sent over plain ws://.
fn options(server: &MockServer) -> ConnectOptions {
    let u = &server.config().users[0];
    let mut options = ConnectOptions::new(server.url());
    options.credentials = Some(Credentials::Password {
        username: u.username.clone(),
        password: Secret::new(u.password.clone()),
        otp: None,
        otp_prompt: None,
    });
    options
}

/// Parse, validate and run `request` (a JSON value) on `server`.
async fn handle(server: &MockServer, request: Value) -> Value {
    let request = Request::parse(&request.to_string()).expect("a valid request");
    let action = request.validate().expect("valid params");
    let c = client(server).await;
    let mut response = execute(&c, &request, &action).await;
    c.close().await;
    response.scrub(&request.connection.secrets());
    response.to_json()
}

/// The methods the client sent to the mock, in order.
fn sent(server: &MockServer) -> Vec<String> {
    server
        .transcript()
        .lines
        .iter()
        .filter_map(|l| match &l.event {
            TranscriptEvent::ClientFrame(t) => serde_json::from_str::<Value>(t)
                .ok()
                .and_then(|v| v.get("method").and_then(Value::as_str).map(str::to_owned)),
            _ => None,
        })
        .collect()
}

fn project(compose: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix("stack")
        .tempdir()
        .expect("a temporary folder");
    std::fs::write(dir.path().join("compose.yaml"), compose).unwrap();
    dir
}

const STACK: &str =
    "services:\n  web:\n    image: traefik/whoami:v1.10\n    environment:\n      TOKEN: ${TOKEN}\n";

fn compose_request(dir: &tempfile::TempDir, extra: Value) -> Value {
    let mut r = json!({
        "action": "compose",
        "params": {"name": "stack", "project_src": dir.path(), "vars": {"TOKEN": "s3cret-token"}},
    });
    if let (Some(r), Some(extra)) = (r.as_object_mut(), extra.as_object()) {
        for (k, v) in extra {
            r.insert(k.clone(), v.clone());
        }
    }
    r
}

#[test]
fn bad_requests_name_what_is_wrong() {
    let e = Request::parse("{\"action\": \"deploy\"}").unwrap_err();
    assert!(e.to_string().contains("unknown variant `deploy`"), "{e}");
    assert!(e.to_string().contains("line 1 column"), "{e}");
    let e = Request::parse("{\"action\": \"call\", \"conection\": {}}").unwrap_err();
    assert!(e.to_string().contains("unknown field `conection`"), "{e}");
    let e = Request::parse("not json").unwrap_err();
    assert!(e.to_string().starts_with("the request"), "{e}");

    // A secret in the wrong place is not quoted back.
    let e = Request::parse(r#"{"action": "call", "connection": {"timeout": "1-secret\"key"}}"#)
        .unwrap_err()
        .to_string();
    assert!(!e.contains("secret"), "{e}");
    assert!(e.contains("invalid type: string, expected f64"), "{e}");
    let r = Request::parse(
        r#"{"action": "call", "params": {"method": ["1-secret"], "job": "1-secret"}}"#,
    )
    .unwrap();
    let e = r.validate().unwrap_err().to_string();
    assert!(!e.contains("secret"), "{e}");

    let r = Request::parse(r#"{"action": "call", "params": {"methd": "x"}}"#).unwrap();
    let e = r.validate().unwrap_err().to_string();
    assert!(e.starts_with("call: params: unknown field `methd`"), "{e}");
    let r = Request::parse(r#"{"action": "compose", "params": {"state": "gone"}}"#).unwrap();
    let e = r.validate().unwrap_err().to_string();
    assert!(e.contains("compose: params: unknown variant `gone`"), "{e}");
    let r = Request::parse(r#"{"action": "script"}"#).unwrap();
    let e = r.validate().unwrap_err().to_string();
    assert!(e.contains("script: params: missing field `path`"), "{e}");
}

#[test]
fn connection_debug_and_scrub_hide_secrets() {
    let c: Connection =
        serde_json::from_value(json!({"api_key": "1-topsecret", "password": "hunter2"})).unwrap();
    let shown = format!("{c:?}");
    assert!(
        !shown.contains("topsecret") && !shown.contains("hunter2"),
        "{shown}"
    );
    let mut r = Response::failure("login as 1-topsecret failed");
    r.data
        .insert("echo".into(), json!(["x hunter2 y", {"k": "1-topsecret"}]));
    r.diff = Some(json!({"prepared": "hunter2"}));
    r.scrub(&c.secrets());
    let text = r.to_json().to_string();
    assert!(
        !text.contains("topsecret") && !text.contains("hunter2"),
        "{text}"
    );
    assert_eq!(r.msg, "login as ******** failed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_reads_and_reports_no_change() {
    let server = mock().await;
    let r = handle(
        &server,
        json!({"action": "call", "params": {"method": "system.info"}}),
    )
    .await;
    assert_eq!(r["changed"], json!(false), "{r}");
    assert_eq!(r["failed"], json!(false), "{r}");
    assert_eq!(r["result"]["hostname"], json!("truenas"), "{r}");

    let r = handle(
        &server,
        json!({"action": "call", "params": {"method": "no.such_method"}}),
    )
    .await;
    assert_eq!(r["failed"], json!(true), "{r}");
    assert!(
        r["msg"].as_str().unwrap().starts_with("no.such_method: "),
        "{r}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_in_check_mode_sends_only_reads() {
    let server = mock().await;
    server.clear_transcript();
    let r = handle(
        &server,
        json!({"action": "call", "check_mode": true,
               "params": {"method": "app.stop", "args": ["x"], "job": true}}),
    )
    .await;
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["called"], json!(false), "{r}");
    assert!(!sent(&server).contains(&"app.stop".to_owned()));
    let r = handle(
        &server,
        json!({"action": "call", "check_mode": true, "params": {"method": "app.query"}}),
    )
    .await;
    assert_eq!(r["called"], json!(true), "{r}");
    assert_eq!(r["result"], json!([]), "{r}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_waits_for_a_job() {
    let server = mock().await;
    let dir = project(STACK);
    handle(&server, compose_request(&dir, json!({}))).await;
    let r = handle(
        &server,
        json!({"action": "call", "params": {"method": "app.stop", "args": ["stack"], "job": true}}),
    )
    .await;
    assert_eq!(r["failed"], json!(false), "{r}");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert!(r["job_id"].as_i64().is_some(), "{r}");
    let r = handle(
        &server,
        json!({"action": "call", "params": {"method": "app.query", "args": [[["name", "=", "stack"]]]}}),
    )
    .await;
    assert_eq!(r["result"][0]["state"], json!("STOPPED"), "{r}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_deploys_once_then_changes_nothing() {
    let server = mock().await;
    let dir = project(STACK);
    let r = handle(&server, compose_request(&dir, json!({"diff": true}))).await;
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["failed"], json!(false), "{r}");
    assert_eq!(r["action"], json!("created"), "{r}");
    assert_eq!(r["state"], json!("RUNNING"), "{r}");
    let prepared = r["diff"]["prepared"].as_str().unwrap();
    assert!(prepared.contains("+ web"), "{prepared}");
    assert!(
        !r.to_string().contains("s3cret-token"),
        "an interpolated variable is masked: {r}"
    );

    server.clear_transcript();
    let r = handle(&server, compose_request(&dir, json!({"diff": true}))).await;
    assert_eq!(r["changed"], json!(false), "{r}");
    assert_eq!(r["action"], json!("unchanged"), "{r}");
    assert_eq!(r["diff"]["prepared"], json!("no changes"), "{r}");
    let methods = sent(&server);
    assert!(
        !methods
            .iter()
            .any(|m| m == "app.create" || m == "app.update"),
        "{methods:?}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_check_mode_sends_nothing_and_says_what_would_change() {
    let server = mock().await;
    let dir = project(STACK);
    server.clear_transcript();
    let r = handle(&server, compose_request(&dir, json!({"check_mode": true}))).await;
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["action"], json!("created"), "{r}");
    assert_eq!(r["msg"], json!("check mode: stack would be created"), "{r}");
    let methods = sent(&server);
    assert!(
        methods.iter().all(|m| m.starts_with("auth.")
            || m == "app.query"
            || m == "core.subscribe"
            || m == "core.set_options"),
        "{methods:?}"
    );
    let c = client(&server).await;
    assert!(
        crate::compose::deploy::app_entry(&c, "stack")
            .await
            .unwrap()
            .is_none()
    );
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_deployment_fails_with_the_container_logs() {
    let server = mock().await;
    server.set_crash("stack", true);
    let dir = project(STACK);
    let r = handle(&server, compose_request(&dir, json!({}))).await;
    assert_eq!(r["failed"], json!(true), "{r}");
    assert_eq!(r["state"], json!("CRASHED"), "{r}");
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.starts_with("stack crashed (created)"), "{msg}");
    assert!(msg.contains("web | fatal error (simulated crash)"), "{msg}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_absent_deletes_once() {
    let server = mock().await;
    let dir = project(STACK);
    handle(&server, compose_request(&dir, json!({}))).await;
    let absent = json!({"action": "compose", "params": {"name": "stack", "state": "absent"}});
    let mut check = absent.clone();
    check["check_mode"] = json!(true);
    let r = handle(&server, check).await;
    assert_eq!(
        (r["changed"].clone(), r["action"].clone()),
        (json!(true), json!("deleted"))
    );
    let r = handle(&server, absent.clone()).await;
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(r["msg"], json!("stack: deleted"), "{r}");
    let r = handle(&server, absent).await;
    assert_eq!(r["changed"], json!(false), "{r}");
    let r = handle(
        &server,
        json!({"action": "compose", "params": {"state": "absent"}}),
    )
    .await;
    assert_eq!(r["failed"], json!(true), "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .contains("needs `name` or `project_src`"),
        "{r}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_errors_name_the_file() {
    let server = mock().await;
    let dir = project("services:\n  web:\n    image: [unclosed\n");
    let r = handle(&server, compose_request(&dir, json!({}))).await;
    assert_eq!(r["failed"], json!(true), "{r}");
    assert!(r["msg"].as_str().unwrap().contains("compose.yaml:"), "{r}");
    server.shutdown().await;
}

fn script(text: &str) -> (tempfile::TempDir, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("task.rhai");
    std::fs::write(&path, text).unwrap();
    (dir, path.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_reports_changed_and_returns_a_value() {
    let server = mock().await;
    let (_dir, path) = script(
        r#"
        let info = call("system.info");
        print(`host ${info.hostname}`);
        if vars.rename { changed(); }
        #{ greeting: `hello ${vars.who}`, check: check_mode, args: args }
        "#,
    );
    let r = handle(
        &server,
        json!({"action": "script", "params": {"path": path, "vars": {"who": "fleet", "rename": true}, "args": ["a"]}}),
    )
    .await;
    assert_eq!(r["failed"], json!(false), "{r}");
    assert_eq!(r["changed"], json!(true), "{r}");
    assert_eq!(
        r["result"],
        json!({"greeting": "hello fleet", "check": false, "args": ["a"]}),
        "{r}"
    );
    assert_eq!(r["stdout_lines"], json!(["host truenas"]), "{r}");

    let r = handle(
        &server,
        json!({"action": "script", "params": {"path": path, "vars": {"who": "x", "rename": false}}}),
    )
    .await;
    assert_eq!(r["changed"], json!(false), "{r}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_script_fails_with_its_error_report() {
    let server = mock().await;
    let (_dir, path) = script("let x = 1;\ncall(\"no.such_method\");\n");
    let r = handle(
        &server,
        json!({"action": "script", "params": {"path": path}}),
    )
    .await;
    assert_eq!(r["failed"], json!(true), "{r}");
    let msg = r["msg"].as_str().unwrap();
    assert!(msg.contains("task.rhai:2:"), "{msg}");
    let (_dir2, path2) = script("exit(3);");
    let r = handle(
        &server,
        json!({"action": "script", "params": {"path": path2}}),
    )
    .await;
    assert_eq!(r["failed"], json!(true), "{r}");
    assert_eq!(r["exit_status"], json!(3), "{r}");
    let r = handle(
        &server,
        json!({"action": "script", "params": {"path": "/nonexistent/x.rhai"}}),
    )
    .await;
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .starts_with("cannot read the script /nonexistent/x.rhai")
    );
    let (_dir3, path3) = script("|x| x");
    let r = handle(
        &server,
        json!({"action": "script", "params": {"path": path3}}),
    )
    .await;
    assert!(
        r["msg"].as_str().unwrap().contains("the returned value"),
        "{r}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_script_runs_in_check_mode_only_when_it_says_it_can() {
    let server = mock().await;
    let (_dir, path) = script("if !check_mode { changed(); } check_mode");
    let r = handle(
        &server,
        json!({"action": "script", "check_mode": true, "params": {"path": path}}),
    )
    .await;
    assert_eq!(r["skipped"], json!(true), "{r}");
    let r = handle(
        &server,
        json!({"action": "script", "check_mode": true, "params": {"path": path, "supports_check_mode": true}}),
    )
    .await;
    assert_eq!(
        (r["changed"].clone(), r["result"].clone()),
        (json!(false), json!(true)),
        "{r}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_api_key_is_scrubbed_from_results() {
    let server = mock().await;
    let (_dir, path) = script("print(vars.k); vars.k");
    let r = handle(
        &server,
        json!({"action": "script", "connection": {"api_key": TEST_API_KEY},
               "params": {"path": path, "vars": {"k": TEST_API_KEY}}}),
    )
    .await;
    assert!(!r.to_string().contains(TEST_API_KEY), "{r}");
    assert_eq!(r["result"], json!("********"), "{r}");
    server.shutdown().await;
}

#[test]
fn which_methods_only_read() {
    for m in [
        "app.query",
        "pool.dataset.get_instance",
        "ssh.config",
        "system.info",
        "core.ping",
        "core.get_jobs",
        "app.used_ports_choices",
        "pool.scrub.status",
    ] {
        assert!(call::reads_only(m), "{m}");
    }
    for m in [
        "app.create",
        "pool.dataset.delete",
        "core.job_abort",
        "user.update",
        "system.reboot",
    ] {
        assert!(!call::reads_only(m), "{m}");
    }
}

#[tokio::test]
async fn a_rate_limited_login_is_retried_until_the_window_ends() {
    use std::time::Duration;
    let start = tokio::time::Instant::now();
    let mut tries = 0;
    let r: Result<u32, &str> = retry_rate_limited(
        Duration::from_millis(80),
        Duration::from_millis(10),
        async || {
            tries += 1;
            if tries < 4 { Err("limited") } else { Ok(tries) }
        },
        |e| *e == "limited",
    )
    .await;
    assert_eq!(r, Ok(4));
    assert!(start.elapsed() >= Duration::from_millis(30), "three pauses");

    let mut tries = 0;
    let r: Result<(), &str> = retry_rate_limited(
        Duration::from_millis(80),
        Duration::from_millis(10),
        async || {
            tries += 1;
            Err("limited")
        },
        |e| *e == "limited",
    )
    .await;
    assert_eq!(
        (r, tries),
        (Err("limited"), 8),
        "gives up within its patience"
    );

    let mut tries = 0;
    let r: Result<(), &str> = retry_rate_limited(
        Duration::from_millis(80),
        Duration::from_millis(10),
        async || {
            tries += 1;
            Err("refused")
        },
        |e| *e == "limited",
    )
    .await;
    assert_eq!(
        (r, tries),
        (Err("refused"), 1),
        "other errors are not retried"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_over_the_mocks_rate_limit_succeeds_once_its_window_ends() {
    use std::time::Duration;
    let mut config = MockConfig::for_tests();
    config.rate_limit.max_calls = 1;
    config.rate_limit.window = Duration::from_millis(300);
    let server = MockServer::start(config).await.unwrap();
    let first = client(&server).await;
    first.close().await;
    let refused = Client::connect(options(&server)).await.unwrap_err();
    assert!(is_rate_limited(&refused), "{refused}");
    let c = retry_rate_limited(
        Duration::from_secs(5),
        Duration::from_millis(100),
        async || Client::connect(options(&server)).await,
        is_rate_limited,
    )
    .await
    .unwrap();
    c.close().await;
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deployment_that_cannot_start_fails_and_names_the_path() {
    let server = mock().await;
    server.add_file("/mnt/tank/apps/stack/data");
    let dir = project(
        "services:\n  web:\n    image: traefik/whoami:v1.10\n    volumes:\n      - ./data:/data\n",
    );
    let r = handle(
        &server,
        json!({"action": "compose", "params": {
            "name": "stack", "project_src": dir.path(), "dataset_root": "/mnt/tank/apps",
            "create_dirs": true}}),
    )
    .await;
    assert_eq!(r["failed"], json!(true), "{r}");
    assert_eq!(r["action"], json!("failed"), "{r}");
    assert_eq!(
        r["msg"],
        json!(
            "stack: /mnt/tank/apps/stack/data exists on the NAS but is not a directory (it is FILE)"
        ),
        "{r}"
    );
    let r = handle(
        &server,
        json!({"action": "compose", "params": {"name": "stack", "project_src": dir.path(), "wait_timeout": -1}}),
    )
    .await;
    assert_eq!(
        r["msg"],
        json!("compose: params: wait_timeout must be a positive number of seconds, not -1"),
        "{r}"
    );
    server.shutdown().await;
}
