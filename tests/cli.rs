//! The `midscript` binary end to end: the standalone mock's start-up contract, one-off
//! commands against it, and the exit status of every class of failure.

use std::process::Stdio;

use crate::support::standalone::{StandaloneMock, midscript, run, stderr, stdout};

#[test]
fn standalone_mock_follows_its_start_up_contract() {
    let mock = StandaloneMock::start(&["--plain", "--user", "admin:s3cret"]);
    assert!(
        mock.lines[0].starts_with("URL ws://127.0.0.1:"),
        "{:?}",
        mock.lines
    );
    assert!(mock.lines[0].ends_with("/api/current"));
    assert_eq!(mock.lines.last().unwrap(), "READY");
    assert!(
        mock.lines.iter().all(|l| !l.starts_with("FINGERPRINT")),
        "plain ws has no fingerprint"
    );
    assert!(
        mock.lines.iter().all(|l| !l.contains("s3cret")),
        "a given password is not echoed"
    );
    // A generated API key is printed, owned by the given user.
    assert!(
        mock.value("API_KEY").starts_with("admin "),
        "{:?}",
        mock.lines
    );

    let url = mock.value("URL");
    let o = run(&[
        "--url",
        &url,
        "-U",
        "admin",
        "-P",
        "s3cret",
        "call",
        "system.info",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value =
        serde_json::from_str(&stdout(&o)).expect("compact JSON when piped");
    assert_eq!(info["hostname"], "truenas");

    let o = run(&[
        "--url",
        &url,
        "-U",
        "admin",
        "-P",
        "wrong",
        "call",
        "system.info",
    ]);
    assert_eq!(
        o.status.code(),
        Some(4),
        "a failed login is exit 4: {}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("AUTH_ERR"), "{}", stderr(&o));
    assert!(stdout(&o).is_empty());
}

#[test]
fn standalone_wss_mock_prints_a_fingerprint_that_pins_it() {
    let mock = StandaloneMock::start(&[]);
    let url = mock.value("URL");
    assert!(url.starts_with("wss://"), "{url}");
    let fp = mock.value("FINGERPRINT");
    assert_eq!(fp.len(), 95, "32 colon-separated hex pairs: {fp}");
    let (user, password) = mock
        .value("USER")
        .split_once(' ')
        .map(|(u, p)| (u.to_owned(), p.to_owned()))
        .unwrap();

    let o = run(&[
        "--url",
        &url,
        "--fingerprint",
        &fp,
        "-U",
        &user,
        "-P",
        &password,
        "ping",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "pong\n");

    // Not trusted by the system: exit 3, and the fingerprint is shown to compare and pin.
    let o = run(&["--url", &url, "-U", &user, "-P", &password, "ping"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains(&fp), "{}", stderr(&o));
    assert!(!stderr(&o).contains(&password));
}

#[test]
fn the_readme_command_answers_from_the_built_in_mock() {
    let o = run(&["--mock", "call", "system.info"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let info: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert!(
        info["version"].as_str().unwrap().starts_with("25.10"),
        "{info}"
    );

    let o = run(&["--mock", "--raw", "call", "core.ping"]);
    assert_eq!(stdout(&o), "pong\n");
    let o = run(&["--mock", "call", "core.ping"]);
    assert_eq!(stdout(&o), "\"pong\"\n");
}

#[test]
fn a_job_prints_progress_lines_and_its_result() {
    let app = r#"{"app_name":"web","custom_app":true,"custom_compose_config":{"services":{"web":{"image":"nginx:1.27"}}}}"#;
    let o = run(&["--mock", "job", "--progress", "lines", "app.create", app]);
    assert!(o.status.success(), "{}", stderr(&o));
    let result: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(result["name"], "web");
    let progress = stderr(&o);
    assert!(
        progress.contains("RUNNING 25% Initial validation completed for custom app creation"),
        "{progress}"
    );
    assert!(
        progress.contains("SUCCESS 100% 'web' installed successfully"),
        "{progress}"
    );
}

#[test]
fn exit_status_per_failure_class() {
    // Usage: no server given.
    let o = run(&["call", "system.info"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("--host"), "{}", stderr(&o));
    // Usage: a fingerprint that is not one.
    let o = run(&[
        "--url",
        "wss://127.0.0.1:1/api/current",
        "--fingerprint",
        "AB:CD",
        "ping",
    ]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        stderr(&o).contains("not a SHA-256 fingerprint"),
        "{}",
        stderr(&o)
    );
    // Usage: stdin arguments that are not a JSON array.
    let mut child = midscript(&["--mock", "call", "user.update", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(b"{\"password\": \"x\"}")
        .unwrap();
    let o = child.wait_with_output().unwrap();
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    // Method errors: unknown method, validation error with its field.
    let o = run(&["--mock", "call", "no.such_method"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "midscript: error: no.such_method: method does not exist on this server\n"
    );
    let o = run(&["--mock", "call", "user.update", "1", r#"{"bogus": 1}"#]);
    assert_eq!(o.status.code(), Some(1));
    assert!(
        stderr(&o).contains("user_update.bogus: Extra inputs are not permitted [EINVAL]"),
        "{}",
        stderr(&o)
    );
    // Connection: nothing listens there.
    let o = run(&["--url", "ws://127.0.0.1:1/api/current", "ping"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // Auth: an API key over plain ws to another host is refused before connecting.
    let o = run(&[
        "--url",
        "ws://nas.example.invalid/api/current",
        "-K",
        "1-abcdef",
        "ping",
    ]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("revokes an API key"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("abcdef"), "the key is not echoed");
}

#[test]
fn validation_errors_show_the_traceback_only_with_verbose() {
    let o = run(&[
        "--mock",
        "call",
        "user.update",
        "999",
        r#"{"full_name": "x"}"#,
    ]);
    assert!(!stderr(&o).contains("Traceback"));
    assert_eq!(
        stderr(&o),
        "midscript: error: user.update: invalid arguments\n  ALL: User 999 does not exist [ENOENT]\n(run with -v for the server traceback)\n"
    );
    assert_eq!(o.status.code(), Some(1));
    let o = run(&[
        "--mock",
        "-v",
        "call",
        "user.update",
        "999",
        r#"{"full_name": "x"}"#,
    ]);
    assert!(
        stderr(&o).contains("Traceback (most recent call last)"),
        "{}",
        stderr(&o)
    );
    assert!(stderr(&o).contains("code: -32602"), "{}", stderr(&o));
}

#[test]
fn subscribe_prints_one_json_line_per_event_and_times_out_when_quiet() {
    let mock = StandaloneMock::start(&["--plain", "--user", "admin:pw"]);
    let url = mock.value("URL");
    let o = run(&[
        "--url",
        &url,
        "-U",
        "admin",
        "-P",
        "pw",
        "subscribe",
        r#"reporting.realtime:{"interval":2}"#,
        "-n",
        "2",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let lines: Vec<serde_json::Value> = stdout(&o)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for ev in &lines {
        assert_eq!(ev["msg"], "added");
        assert_eq!(ev["collection"], r#"reporting.realtime:{"interval":2}"#);
        assert!(ev["fields"]["cpu"].is_object(), "{ev}");
    }
    let o = run(&[
        "--url",
        &url,
        "-U",
        "admin",
        "-P",
        "pw",
        "subscribe",
        "alert.list",
        "-n",
        "1",
        "--timeout",
        "0.3",
    ]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("no event on alert.list within 0.3s"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn host_falls_back_to_the_legacy_websocket_of_a_24_10_box() {
    for (version, legacy) in [("24.10", true), ("25.10", false)] {
        let mock = StandaloneMock::start(&["--server-version", version]);
        let url = mock.value("URL");
        assert_eq!(url.ends_with("/websocket"), legacy, "{url}");
        let host = url
            .trim_start_matches("wss://")
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        let fp = mock.value("FINGERPRINT");
        let (user, password) = mock
            .value("USER")
            .split_once(' ')
            .map(|(u, p)| (u.to_owned(), p.to_owned()))
            .unwrap();
        let o = run(&[
            "--host",
            &host,
            "--fingerprint",
            &fp,
            "-U",
            &user,
            "-P",
            &password,
            "-v",
            "ping",
        ]);
        assert!(o.status.success(), "{version}: {}", stderr(&o));
        assert_eq!(stdout(&o), "pong\n");
        assert_eq!(
            stderr(&o).contains("using the legacy /websocket protocol"),
            legacy,
            "{version}: {}",
            stderr(&o)
        );
        // Without -v the fallback is silent (and so is a password from the environment,
        // unlike -P, which is warned about).
        let o = midscript(&["--host", &host, "--fingerprint", &fp, "-U", &user, "ping"])
            .env("MIDSCRIPT_PASSWORD", &password)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(stderr(&o).is_empty(), "{}", stderr(&o));
    }
}

/// `midscript mock --scram-iterations` takes only what the official client accepts.
#[test]
fn the_mock_refuses_scram_iterations_the_official_client_would_refuse() {
    for bad in ["1000", "5000001", "many"] {
        let o = run(&["mock", "--scram-iterations", bad]);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", stderr(&o));
        assert!(stderr(&o).contains("--scram-iterations"), "{}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{}", stdout(&o));
    }
}
