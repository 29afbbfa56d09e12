//! `midscript machine` through the binary: one JSON result on stdout in every case, exit
//! statuses, no secret echoed, and a compose deployment on every mock version (24.10's legacy
//! `/websocket` included).

use serde_json::{Value, json};

use crate::support::standalone::{Sandbox, StandaloneMock, stderr, stdout};

/// Run `midscript machine` with `request` on stdin: (exit status, the parsed result).
fn machine(sandbox: &Sandbox, request: &str) -> (i32, Value) {
    let out = sandbox.run_with_stdin(&["machine"], request);
    let text = stdout(&out);
    assert_eq!(
        text.lines().count(),
        1,
        "one line of JSON: {text:?} {}",
        stderr(&out)
    );
    let result: Value = serde_json::from_str(&text).expect("the result is JSON");
    (out.status.code().unwrap_or(-1), result)
}

#[test]
fn a_request_on_the_built_in_mock_answers_with_changed_failed_msg() {
    let sandbox = Sandbox::new();
    let (code, r) = machine(
        &sandbox,
        r#"{"action": "call", "connection": {"mock": true}, "params": {"method": "system.info"}}"#,
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["changed"], false);
    assert_eq!(r["failed"], false);
    assert_eq!(r["msg"], "system.info returned");
    assert_eq!(r["result"]["hostname"], "truenas");
}

#[test]
fn a_bad_request_is_a_failed_result_with_exit_2() {
    let sandbox = Sandbox::new();
    let (code, r) = machine(&sandbox, "{\"action\": \"call\", \"api_key\": \"1-x\"}");
    assert_eq!(code, 2, "{r}");
    assert_eq!(r["failed"], true);
    assert_eq!(
        r["msg"],
        "the request (JSON on stdin) is not valid: unknown field `api_key`, expected one of `action`, `connection`, `check_mode`, `diff`, `params` at line 1 column 28"
    );
    let (code, r) = machine(&sandbox, "");
    assert_eq!(code, 2, "{r}");
    let (code, r) = machine(
        &sandbox,
        r#"{"action": "compose", "connection": {"mock": true}, "params": {"project": "x"}}"#,
    );
    assert_eq!(code, 2, "{r}");
    assert!(
        r["msg"]
            .as_str()
            .unwrap()
            .starts_with("compose: params: unknown field `project`"),
        "{r}"
    );
    let (code, r) = machine(&sandbox, &" ".repeat((16 << 20) + 1));
    assert_eq!(code, 2, "{r}");
    assert_eq!(
        r["msg"],
        "the request is larger than 16 MiB: it carries parameters, not files"
    );
    // Refused before stdin is read (so nothing is written to it: the pipe may be closed).
    let out = sandbox.run(&["--mock", "machine"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("takes its connection settings from the request"));
}

#[test]
fn a_refused_login_fails_without_echoing_the_key() {
    let mock = StandaloneMock::start(&[]);
    let sandbox = Sandbox::new();
    let key = "7-NotTheRightKeyMaterialAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    let request = json!({
        "action": "call",
        "connection": {"url": mock.value("URL"), "fingerprint": mock.value("FINGERPRINT"), "api_key": key},
        "params": {"method": "system.info"},
    });
    let (code, r) = machine(&sandbox, &request.to_string());
    assert_eq!(code, 1, "{r}");
    assert_eq!(r["failed"], true);
    assert!(
        r["msg"].as_str().unwrap().starts_with("cannot connect: "),
        "{r}"
    );
    assert!(!r.to_string().contains("NotTheRightKey"), "{r}");

    // An unknown certificate is refused: nobody is there to be asked.
    let request = json!({
        "action": "call",
        "connection": {"url": mock.value("URL"), "api_key": key},
        "params": {"method": "system.info"},
    });
    let (code, r) = machine(&sandbox, &request.to_string());
    assert_eq!(code, 1, "{r}");
    assert!(!r.to_string().contains("NotTheRightKey"), "{r}");
}

#[test]
fn compose_deploys_on_every_server_version_and_a_second_request_changes_nothing() {
    let sandbox = Sandbox::new();
    let project = sandbox.write(
        "web/compose.yaml",
        "services:\n  web:\n    image: traefik/whoami:v1.10\n",
    );
    let dir = project.parent().unwrap();
    for version in ["24.10", "25.04", "25.10", "26.0"] {
        let mock = StandaloneMock::start(&["--server-version", version]);
        let url = mock.value("URL");
        let url = if version == "24.10" {
            url.replace("/api/current", "/websocket")
        } else {
            url
        };
        let request = json!({
            "action": "compose",
            "diff": true,
            "connection": {
                "url": url,
                "fingerprint": mock.value("FINGERPRINT"),
                "username": "truenas_admin",
                "password": mock.value("USER").split_once(' ').unwrap().1,
            },
            "params": {"project_src": dir, "wait_timeout": 30},
        })
        .to_string();
        let (code, r) = machine(&sandbox, &request);
        assert_eq!(code, 0, "{version}: {r}");
        assert_eq!(
            (&r["changed"], &r["action"], &r["state"]),
            (&json!(true), &json!("created"), &json!("RUNNING")),
            "{version}: {r}"
        );
        assert!(
            r["diff"]["prepared"].as_str().unwrap().contains("+ web"),
            "{r}"
        );
        let (code, r) = machine(&sandbox, &request);
        assert_eq!(code, 0, "{version}: {r}");
        assert_eq!(
            (&r["changed"], &r["action"]),
            (&json!(false), &json!("unchanged")),
            "{version}: {r}"
        );
    }
}

#[test]
fn a_profile_names_the_server_and_its_key() {
    let mock = StandaloneMock::start(&[]);
    let sandbox = Sandbox::new();
    let key = sandbox.write("nas1.key", mock.value("API_KEY").split_once(' ').unwrap().1);
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    sandbox.write(
        sandbox.config_file(),
        &format!(
            "[profiles.nas1]\nurl = \"{}\"\nfingerprint = \"{}\"\napi_key_file = \"{}\"\n",
            mock.value("URL"),
            mock.value("FINGERPRINT"),
            key.display()
        ),
    );
    let (code, r) = machine(
        &sandbox,
        r#"{"action": "call", "connection": {"profile": "nas1"}, "params": {"method": "core.ping"}}"#,
    );
    assert_eq!(code, 0, "{r}");
    assert_eq!(r["result"], "pong", "{r}");
    let (code, r) = machine(
        &sandbox,
        r#"{"action": "call", "connection": {"profile": "nas9"}, "params": {"method": "core.ping"}}"#,
    );
    assert_eq!(code, 1, "{r}");
    assert!(r["msg"].as_str().unwrap().contains("nas9"), "{r}");
}
