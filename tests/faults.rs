//! Faults and bad input (issue 12): values nested without bound, scripts that never give the
//! awaited reply a turn, lost job results, unbounded file reads, failed writes, and the
//! credentials checks of the command line. Each test failed before its fix.

use crate::support::standalone::{Sandbox, run, stderr, stdout};

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

/// A JSON-RPC server on 127.0.0.1 that answers what `answer` returns for each method and
/// never replies when it returns `None`: a server that freezes part-way. Returns its URL.
fn frozen_server(answer: fn(&str) -> Option<serde_json::Value>) -> String {
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
                        if let Some(result) = answer(method) {
                            let reply = serde_json::json!({"jsonrpc": "2.0", "id": req["id"], "result": result});
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
    match method {
        "core.get_jobs" => None,
        "auth.mechanism_choices" => Some(json!(["PASSWORD_PLAIN", "API_KEY_PLAIN"])),
        "auth.login_ex" => {
            Some(json!({"response_type": "SUCCESS", "user_info": {"username": "admin"}}))
        }
        "auth.login" | "auth.login_with_api_key" => Some(json!(true)),
        "core.subscribe" => Some(json!("sub-1")),
        "frozen.job" => Some(json!(7)),
        _ => Some(serde_json::Value::Null),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_stops_answering_during_a_job_is_a_lost_connection() {
    use midscript::client::{Client, ConnectOptions};
    let mut options = ConnectOptions::new(frozen_server(freezes_after_starting_a_job));
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
