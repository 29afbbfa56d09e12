//! Faults and bad input (issue 12): values nested without bound, scripts that never give the
//! awaited reply a turn, lost job results, unbounded file reads, failed writes, and the
//! credentials checks of the command line. Each test failed before its fix.

use crate::support::standalone::{Sandbox, StandaloneMock, run, stderr, stdout};

/// `midscript --mock -e CODE`.
fn mock_script(code: &str) -> std::process::Output {
    run(&["--mock", "-e", code])
}

#[test]
fn deeply_nested_values_are_an_error_not_a_stack_overflow() {
    let build = "let x = []; for i in 0..5000 { x = [x]; }";
    for (code, what) in [
        (
            format!("{build} call(\"system.info\", x)"),
            "system.info: argument 1: a value nested deeper than 128 levels cannot be sent as JSON (at [0][0]",
        ),
        (
            "let m = #{}; for i in 0..5000 { m = #{a: m}; } json::stringify(m)".to_owned(),
            "json::stringify: a value nested deeper than 128 levels cannot be sent as JSON (at a.a.a",
        ),
        (
            format!("{build} print(x)"),
            "print: the value is nested deeper than 128 levels and cannot be printed",
        ),
    ] {
        let o = mock_script(&code);
        let err = stderr(&o);
        assert_eq!(o.status.code(), Some(1), "{code}\n{err}");
        assert!(err.contains(what), "{code}\n{err}");
        assert!(err.contains("-e:1:"), "the error names the place: {err}");
    }
    // Interpolation cannot fail: it shows a placeholder; values within the bound print as Rhai
    // prints them.
    let o = mock_script(&format!(
        "{build} print(`${{x}}`); print([1, \"a\", #{{b: ()}}]); print(`${{[[1]]}}`)"
    ));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "<the value is nested deeper than 128 levels and cannot be printed>\n[1, \"a\", #{\"b\": ()}]\n[[1]]\n"
    );
}

#[test]
fn read_file_is_bounded() {
    let o = mock_script("let s = read_file(\"/dev/zero\"); print(s.len)");
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("read_file(/dev/zero): /dev/zero: the file is larger than 16 MiB, the most read_file reads"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
}

/// A compose project with a harmless `.env` value (an image tag), secrets by name (`DB_PASS`,
/// `JWT_KEY`), one embedded under a harmless key, and a password inside a URL.
fn project_with_secrets(sb: &Sandbox) -> std::path::PathBuf {
    sb.write(
        "web/.env",
        "TAG=1.27\nDB_PASS=hunter2-db\nJWT_KEY=jwt-signing-key\n",
    );
    sb.write(
        "web/compose.yaml",
        "services:\n  web:\n    image: nginx:${TAG}\n    environment:\n      DB_PASS: ${DB_PASS}\n      JWT_KEY: ${JWT_KEY}\n      DATABASE_URL: postgres://app:literal-pw@db/app\n      CMDLINE: \"--db-password=${DB_PASS}\"\n",
    );
    sb.home().join("web")
}

const LEAKS: [&str; 3] = ["hunter2-db", "jwt-signing-key", "literal-pw"];

#[test]
fn compose_config_masks_secrets_by_name_and_url_passwords_but_not_harmless_values() {
    let sb = Sandbox::new();
    let dir = project_with_secrets(&sb);
    let o = sb
        .command(&["compose", "config", "--dataset-root", "/mnt/tank/apps"])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let web = &doc["services"]["web"];
    assert_eq!(web["image"], "nginx:1.27", "a harmless .env value shows");
    assert_eq!(web["environment"]["DB_PASS"], "********");
    assert_eq!(web["environment"]["JWT_KEY"], "********");
    assert_eq!(
        web["environment"]["DATABASE_URL"],
        "postgres://app:********@db/app"
    );
    assert_eq!(web["environment"]["CMDLINE"], "********");
    for leak in LEAKS {
        assert!(!stdout(&o).contains(leak), "{leak}: {}", stdout(&o));
    }
}

/// A JSON-RPC server on 127.0.0.1 that answers each method with what `answer` returns (the
/// reply's `result` or `error` member) and never replies when it returns `None`: a server
/// that freezes part-way, or refuses logins. Returns its URL.
fn fake_server(answer: fn(&str) -> Option<serde_json::Value>) -> String {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else {
                    return;
                };
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
                        return;
                    };
                    while let Some(Ok(msg)) = ws.next().await {
                        let Message::Text(text) = msg else { continue };
                        let req: serde_json::Value = serde_json::from_str(&text).unwrap();
                        let method = req["method"].as_str().unwrap_or_default();
                        if let Some(serde_json::Value::Object(body)) = answer(method) {
                            let mut reply = serde_json::json!({"jsonrpc": "2.0", "id": req["id"]});
                            reply.as_object_mut().unwrap().extend(body);
                            let _ = ws.send(Message::text(reply.to_string())).await;
                        }
                    }
                });
            }
        });
    });
    format!("ws://127.0.0.1:{port}/api/current")
}

/// Answers logins and starts job 7, then never answers `core.get_jobs`.
fn freezes_after_starting_a_job(method: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    let result = match method {
        "core.get_jobs" => return None,
        "auth.mechanism_choices" => json!(["PASSWORD_PLAIN", "API_KEY_PLAIN"]),
        "auth.login_ex" => json!({"response_type": "SUCCESS", "user_info": {"username": "admin"}}),
        "auth.login" | "auth.login_with_api_key" => json!(true),
        "core.subscribe" => json!("sub-1"),
        "frozen.job" => json!(7),
        _ => serde_json::Value::Null,
    };
    Some(json!({ "result": result }))
}

/// Refuses every login with the server's rate-limit error.
fn rate_limited(method: &str) -> Option<serde_json::Value> {
    use serde_json::json;
    Some(match method {
        m if m.starts_with("auth.") => {
            json!({"error": {"code": -32001, "message": "Method call error", "data": {
            "error": 16, "errname": "EBUSY", "reason": "[EBUSY] Rate Limit Exceeded", "trace": null, "extra": null}}})
        }
        _ => json!({"result": null}),
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_during_a_job_is_a_lost_connection() {
    use midscript::client::{Client, ConnectOptions};
    let mut options = ConnectOptions::new(fake_server(freezes_after_starting_a_job));
    options.rpc.call_timeout = std::time::Duration::from_millis(300);
    let client = Client::connect(options).await.unwrap();
    let err = client.job("frozen.job", vec![], |_| {}).await.unwrap_err();
    assert!(err.is_connection(), "{err:?}");
    let text = err.to_string();
    assert!(!text.contains("core.get_jobs"), "{text}");
    assert!(
        text.contains("the server stopped answering: no reply within 0.3s while waiting for job 7 (frozen.job)"),
        "{text}"
    );
}

#[test]
fn a_frozen_server_during_call_j_is_exit_3_naming_the_job() {
    let url = fake_server(freezes_after_starting_a_job);
    let o = run(&[
        "--url",
        &url,
        "-U",
        "admin",
        "-P",
        "pw",
        "-t",
        "0.3",
        "call",
        "-j",
        "frozen.job",
    ]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(!stderr(&o).contains("core.get_jobs"), "{}", stderr(&o));
    assert!(stderr(&o).contains("job 7 (frozen.job)"), "{}", stderr(&o));
}

#[test]
fn connecting_honours_the_timeout() {
    // A listener that accepts and never answers the WebSocket upgrade.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("ws://{}/api/current", listener.local_addr().unwrap());
    let started = std::time::Instant::now();
    let o = run(&["--url", &url, "-t", "0.5", "ping"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    assert!(stderr(&o).contains("no answer within"), "{}", stderr(&o));
    assert!(started.elapsed() < std::time::Duration::from_secs(5));
    drop(listener);
}

#[test]
fn the_login_rate_limit_is_exit_4_and_says_when_to_retry() {
    let url = fake_server(rate_limited);
    let o = run(&["--url", &url, "-U", "admin", "-P", "pw", "ping"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(stderr(&o).contains("Rate Limit Exceeded"), "{}", stderr(&o));
    assert!(stderr(&o).contains("Retry in a minute"), "{}", stderr(&o));
}

#[test]
fn a_script_with_a_syntax_error_is_refused_before_connecting() {
    // Nothing listens there: connecting first would fail with exit 3.
    let o = run(&[
        "--url",
        "ws://127.0.0.1:9/api/current",
        "-U",
        "admin",
        "-P",
        "pw",
        "-e",
        "let x = ;",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("-e:1:"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("connect"), "{}", stderr(&o));
}

#[test]
fn bad_durations_are_usage_errors_not_panics() {
    let sb = Sandbox::new();
    for args in [
        &["--mock", "-t", "1e300", "ping"][..],
        &["--mock", "-t=-1", "ping"],
        &["--mock", "subscribe", "core.get_jobs", "-t=-1"],
        &[
            "--mock",
            "subscribe",
            "core.get_jobs",
            "--call-timeout",
            "1e300",
        ],
    ] {
        let o = sb.run(args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", stderr(&o));
        assert!(stderr(&o).contains("seconds"), "{args:?}: {}", stderr(&o));
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
    }
    sb.write(
        "config/midscript/config.toml",
        "[profiles.p]\nurl = \"ws://127.0.0.1:9/api/current\"\ntimeout = 1e300\n",
    );
    let o = sb.run(&["--profile", "p", "ping"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("timeout"), "{}", stderr(&o));
    assert!(!stderr(&o).contains("panicked"), "{}", stderr(&o));
}

/// `> /dev/full`: the write fails, and the exit status says so (before: 0, nothing written).
#[test]
fn a_failed_write_is_an_error() {
    let full = || {
        std::fs::OpenOptions::new()
            .write(true)
            .open("/dev/full")
            .unwrap()
    };
    for args in [
        &["--mock", "call", "core.ping"][..],
        &["--mock", "-o", "yaml", "call", "system.info"],
        &["--mock", "-e", "print(\"hello\")"],
        &["compose", "config", "--dataset-root", "/mnt/tank/apps"],
    ] {
        let sb = Sandbox::new();
        let dir = project_with_secrets(&sb);
        let o = sb
            .command(args)
            .current_dir(&dir)
            .stdout(full())
            .output()
            .unwrap();
        assert_eq!(o.status.code(), Some(5), "{args:?}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("cannot write to stdout: No space left on device"),
            "{args:?}: {}",
            stderr(&o)
        );
    }
}

/// A reader that goes away (`| true`, `| head`): no panic, no error.
#[test]
fn a_closed_pipe_is_not_a_panic() {
    for args in [
        &["compose", "config", "--dataset-root", "/mnt/tank/apps"][..],
        &["compose", "diff", "--mock"],
        &["--mock", "call", "system.info"],
    ] {
        let sb = Sandbox::new();
        let dir = project_with_secrets(&sb);
        let mut child = sb
            .command(args)
            .current_dir(&dir)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader is gone before anything is written
        let o = child.wait_with_output().unwrap();
        assert!(!stderr(&o).contains("panicked"), "{args:?}: {}", stderr(&o));
        assert_ne!(o.status.code(), Some(101), "{args:?}");
        assert_eq!(o.status.code(), Some(0), "{args:?}: {}", stderr(&o));
    }
}

// ---- credentials and URLs (items 8, 9, 11) ------------------------------------------------

/// The standalone mock's URL, user name and password.
fn account(mock: &StandaloneMock) -> (String, String, String) {
    let user = mock.value("USER");
    let (name, password) = user.split_once(' ').unwrap();
    (mock.value("URL"), name.to_owned(), password.to_owned())
}

#[test]
fn passwords_come_from_a_file_or_the_environment_and_minus_p_is_warned_about() {
    let mock = StandaloneMock::start(&["--plain"]);
    let (url, name, password) = account(&mock);
    let sb = Sandbox::new();
    let file = sb.write("pw", &format!("{password}\n"));
    std::fs::set_permissions(&file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let file = file.to_str().unwrap();

    let o = sb.run(&["--url", &url, "-U", &name, "--password-file", file, "ping"]);
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));
    assert_eq!(stderr(&o), "", "a password file is not warned about");

    let o = sb
        .command(&["--url", &url, "-U", &name, "ping"])
        .env("MIDSCRIPT_PASSWORD", &password)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));

    let o = sb.run(&["--url", &url, "-U", &name, "-P", &password, "ping"]);
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: -P/--password shows in the process list"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(&password), "{}", stderr(&o));

    let o = sb.run(&[
        "--url",
        &url,
        "-U",
        &name,
        "--password-file",
        "/nonexistent/pw",
        "ping",
    ]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("cannot read the password file /nonexistent/pw"));
}

#[test]
fn a_plain_key_is_not_sent_to_an_unverified_server_unless_insisted() {
    let mock = StandaloneMock::start(&[]);
    let url = mock.value("URL");
    let key = mock.value("API_KEY");
    let (_, key) = key.split_once(' ').unwrap();
    let sb = Sandbox::new();
    let key_file = sb.write("key", key);
    std::fs::set_permissions(
        &key_file,
        std::os::unix::fs::PermissionsExt::from_mode(0o600),
    )
    .unwrap();
    let key_file = key_file.to_str().unwrap();

    let o = sb.run(&["--url", &url, "-k", "--api-key-file", key_file, "ping"]);
    assert_eq!(o.status.code(), Some(4), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: --insecure: the server's certificate is not checked"),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains(
            "refusing to send the API key itself to a server whose certificate is not checked"
        ),
        "{}",
        stderr(&o)
    );

    let o = sb.run(&[
        "--url",
        &url,
        "-k",
        "--send-key-unverified",
        "--api-key-file",
        key_file,
        "ping",
    ]);
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));

    let o = sb.run(&[
        "--url",
        &url,
        "-k",
        "-K",
        key,
        "--send-key-unverified",
        "ping",
    ]);
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));
    assert!(
        stderr(&o).contains("warning: -K/--api-key shows in the process list"),
        "{}",
        stderr(&o)
    );
    assert!(!stderr(&o).contains(key), "{}", stderr(&o));
}

#[test]
fn the_key_rule_reads_the_host_the_connection_goes_to_and_userinfo_is_refused() {
    let sb = Sandbox::new();
    // Each of these goes to nas.invalid (or nowhere), never to 127.0.0.1: refused before any
    // connection, with the key unsent.
    for url in [
        "ws://nas.invalid?@127.0.0.1/api/current",
        "ws://nas.invalid#@127.0.0.1/api/current",
        "ws://nas.invalid/api/current?@127.0.0.1",
        "ws://localhost.evil.com/api/current",
        "ws://127.0.0.1.nip.io/api/current",
        "ws://[fe80::1]/api/current",
    ] {
        let o = sb.run(&["--url", url, "-K", "1-abcdef", "ping"]);
        let err = stderr(&o);
        assert!(
            matches!(o.status.code(), Some(2 | 4)),
            "{url}: {:?} {err}",
            o.status
        );
        assert!(
            err.contains("refusing to send an API key over plain ws://")
                || err.contains("invalid URL"),
            "{url}: {err}"
        );
    }
    for url in [
        "wss://admin:PW-s3cret@nas.invalid/api/current",
        "ws://admin:PW-s3cret@127.0.0.1:9/api/current",
    ] {
        let o = sb.run(&["--url", url, "ping"]);
        assert_eq!(o.status.code(), Some(2), "{url}: {}", stderr(&o));
        assert!(
            stderr(&o).contains("a user name or password in the URL is not accepted"),
            "{}",
            stderr(&o)
        );
        assert!(!stderr(&o).contains("PW-s3cret"), "{}", stderr(&o));
        assert!(!stderr(&o).contains("admin"), "{}", stderr(&o));
    }
}

#[test]
fn the_trace_is_private_and_redacted_by_the_same_rule() {
    let sb = Sandbox::new();
    let dir = project_with_secrets(&sb);
    let trace = sb.home().join("compose.trace");
    let o = sb
        .command(&[
            "compose",
            "up",
            "--mock",
            "--name",
            "web",
            "--no-wait",
            "--progress",
            "none",
            "--trace",
            trace.to_str().unwrap(),
        ])
        .current_dir(&dir)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&trace).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600);
    let text = std::fs::read_to_string(&trace).unwrap();
    assert!(text.contains("app.create"), "{text}");
    assert!(text.contains(r#""DB_PASS":"********""#), "{text}");
    assert!(text.contains(r#""JWT_KEY":"********""#), "{text}");
    assert!(text.contains("postgres://app:********@db/app"), "{text}");
    assert!(
        text.contains("nginx:1.27"),
        "a harmless value shows: {text}"
    );
    for leak in LEAKS {
        assert!(!text.contains(leak), "{leak}: {text}");
    }
}
