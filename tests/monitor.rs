//! `midscript top` and `midscript check` end to end: the dashboard through a pseudo-terminal
//! against `--mock` (every pane updating), `top --once` JSON, and the plugin line with its exit
//! status for each state against an in-process mock.

use std::time::{Duration, Instant};

use crate::support::in_process;
use crate::support::standalone::{Sandbox, run, stderr, stdout};
use midscript::mock::{MockServer, TEST_PASSWORD};
use rexpect::session::spawn_command;

/// Run `midscript check ARGS` against `server`; returns the exit status and stdout.
async fn check(server: &MockServer, args: &[&str]) -> (i32, String) {
    let out = check_output(server, args).await;
    (out.status.code().unwrap_or(-1), stdout(&out))
}

/// [`check`], returning the whole output (the password never in it).
async fn check_output(server: &MockServer, args: &[&str]) -> std::process::Output {
    let mut all: Vec<String> = [
        "check",
        "--url",
        &server.url(),
        "-U",
        "truenas_admin",
        "-P",
        TEST_PASSWORD,
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    all.extend(args.iter().map(|s| s.to_string()));
    let out = tokio::task::spawn_blocking(move || {
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        run(&refs)
    })
    .await
    .expect("the binary runs");
    assert!(!stdout(&out).contains(TEST_PASSWORD) && !stderr(&out).contains(TEST_PASSWORD));
    out
}

async fn demo() -> MockServer {
    in_process::mock(|c| c.demo = true).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_ok_on_an_empty_server() {
    let server = in_process::mock(|_| {}).await;
    let (code, line) = check(&server, &[]).await;
    assert_eq!(
        line,
        "TRUENAS OK - no alerts; no pools; no apps; 0 jobs running | alerts_critical=0;;;0; alerts_warning=0;;;0; alerts=0;;;0; apps=0;;;0; apps_not_running=0;;;0; jobs_running=0;;;0; jobs_failed=0;;;0;\n"
    );
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_critical_for_a_crashed_app_and_warns_for_alerts() {
    let server = demo().await;
    let (code, line) = check(&server, &[]).await;
    assert!(
        line.starts_with("TRUENAS CRITICAL - 1 app not running (vaultwarden: CRASHED); 1 warning alert (VolumeVersion) | "),
        "{line}"
    );
    assert!(line.contains(" tank_used=62%;80;90;0;100 "), "{line}");
    assert_eq!(code, 2);

    let (code, line) = check(&server, &["alerts"]).await;
    assert!(line.starts_with("TRUENAS WARNING - 1 warning alert (VolumeVersion) | alerts_critical=0;;;0; alerts_warning=1;;;0;"), "{line}");
    assert_eq!(code, 1);

    // --ignore leaves out alert classes and apps.
    let (code, line) = check(&server, &["alerts", "--ignore", "VolumeVersion"]).await;
    assert!(line.starts_with("TRUENAS OK - "), "{line}");
    assert_eq!(code, 0);
    let (code, line) = check(&server, &["apps", "--ignore", "vaultwarden"]).await;
    assert!(
        line.starts_with("TRUENAS OK - 2 apps running | apps=2;;;0; apps_not_running=0;;;0;"),
        "{line}"
    );
    assert_eq!(code, 0);
    let (code, _) = check(&server, &["all", "--ignore", "vaultwarden,VolumeVersion"]).await;
    assert_eq!(code, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_judges_pool_usage_against_the_thresholds_and_health() {
    let server = demo().await;
    let (code, line) = check(&server, &["pools"]).await;
    assert_eq!(code, 0, "{line}");
    assert!(
        line.starts_with("TRUENAS OK - 1 pool healthy | tank_used=62"),
        "{line}"
    );

    let (code, line) = check(&server, &["pools", "-w", "60", "-c", "70"]).await;
    assert!(
        line.starts_with("TRUENAS WARNING - pool tank is 62."),
        "{line}"
    );
    assert!(line.contains(";60;70;0;100"), "{line}");
    assert_eq!(code, 1);

    let (code, line) = check(&server, &["pools", "-w", "50", "-c", "60"]).await;
    assert!(
        line.starts_with("TRUENAS CRITICAL - pool tank is 62."),
        "{line}"
    );
    assert_eq!(code, 2);

    // Thresholds the wrong way round are UNKNOWN, not a guess.
    let (code, line) = check(&server, &["pools", "-w", "90", "-c", "80"]).await;
    assert!(
        line.starts_with("TRUENAS UNKNOWN - bad thresholds"),
        "{line}"
    );
    assert_eq!(code, 3);

    assert!(server.set_pool_status("tank", "DEGRADED"));
    let (code, line) = check(&server, &["pools"]).await;
    assert!(
        line.starts_with("TRUENAS CRITICAL - pool tank is DEGRADED | "),
        "{line}"
    );
    assert_eq!(code, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_maps_alert_levels_and_failed_jobs() {
    let server = in_process::mock(|_| {}).await;
    let uuid = server.raise_alert(
        "SMARTTestFailed",
        "CRITICAL",
        "Disk sdb failed its SMART test.",
    );
    let (code, line) = check(&server, &["alerts"]).await;
    assert!(
        line.starts_with(
            "TRUENAS CRITICAL - 1 critical alert (SMARTTestFailed) | alerts_critical=1;;;0;"
        ),
        "{line}"
    );
    assert_eq!(code, 2);
    assert!(server.clear_alert(&uuid));
    server.raise_alert("NTPHealthCheck", "INFO", "NTP is fine.");
    let (code, line) = check(&server, &["alerts"]).await;
    assert!(
        line.starts_with("TRUENAS OK - 1 alert, none at WARNING or above | "),
        "{line}"
    );
    assert_eq!(code, 0);

    // A failed job (starting an app that does not exist) is a warning.
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        run(&[
            "job",
            "--url",
            &url,
            "-U",
            "truenas_admin",
            "-P",
            TEST_PASSWORD,
            "app.start",
            "nosuch",
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let (code, line) = check(&server, &["jobs"]).await;
    assert!(
        line.starts_with(
            "TRUENAS WARNING - 1 failed job (1 app.start) | jobs_running=0;;;0; jobs_failed=1;;;0;"
        ),
        "{line}"
    );
    assert_eq!(code, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_is_unknown_without_a_server_or_a_login_and_speaks_json() {
    let out =
        tokio::task::spawn_blocking(|| run(&["check", "--url", "ws://127.0.0.1:1/api/current"]))
            .await
            .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out)
            .starts_with("TRUENAS UNKNOWN - cannot connect to ws://127.0.0.1:1/api/current"),
        "{}",
        stdout(&out)
    );

    let server = demo().await;
    let url = server.url();
    let out = tokio::task::spawn_blocking(move || {
        run(&[
            "check",
            "--url",
            &url,
            "-U",
            "truenas_admin",
            "-P",
            "wrong-password-123",
        ])
    })
    .await
    .unwrap();
    assert_eq!(out.status.code(), Some(3));
    assert!(
        stdout(&out).starts_with("TRUENAS UNKNOWN - "),
        "{}",
        stdout(&out)
    );
    assert!(!stdout(&out).contains("wrong-password-123"));

    let (code, text) = check(&server, &["-o", "json", "apps"]).await;
    assert_eq!(code, 2);
    let v: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    assert_eq!(v["state"], "CRITICAL");
    assert_eq!(v["code"], 2);
    assert_eq!(v["checks"][0]["name"], "apps");
    assert_eq!(v["checks"][0]["perfdata"][1]["label"], "apps_not_running");
    assert_eq!(v["checks"][0]["perfdata"][1]["value"], 1.0);
}

#[test]
fn top_once_prints_one_snapshot_of_every_pane() {
    let out = run(&["--mock", "top", "--once"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert!(v["metrics"]["cpu"]["usage"].is_number(), "{v}");
    assert!(v["metrics"]["memory"]["total"].as_u64().unwrap() > 0);
    assert_eq!(v["pools"][0]["name"], "tank");
    let states: Vec<(&str, &str)> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| (a["name"].as_str().unwrap(), a["state"].as_str().unwrap()))
        .collect();
    assert_eq!(
        states,
        [
            ("jellyfin", "RUNNING"),
            ("nextcloud", "RUNNING"),
            ("vaultwarden", "CRASHED")
        ]
    );
    assert_eq!(v["alerts"].as_array().unwrap().len(), 2, "{v}");
    assert!(v["jobs"].is_array());
    assert_eq!(v["unavailable"], serde_json::json!({}));

    // Not on a terminal, plain `top` prints the snapshot too; --empty starts the mock bare.
    let out = run(&["--mock", "--empty", "top"]);
    assert_eq!(out.status.code(), Some(0), "{}", stderr(&out));
    let v: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    assert_eq!(v["apps"], serde_json::json!([]));
    assert_eq!(v["pools"], serde_json::json!([]));
}

/// Between two words on the screen: spaces, or the cursor moves and colour changes the
/// terminal gets instead of blanks that are already there.
const GAP: &str = r"(?:\x1b\[[0-9;]*[A-Za-z]| )+";

/// The middle dot between a title and its count: rexpect reads the terminal byte by byte as
/// Latin-1, so the two UTF-8 bytes of `·` arrive as two characters.
const DOT: &str = r"\S{1,2}";

/// The five pane titles with their update counts, as drawn after a full repaint.
fn titles() -> String {
    let title = |words: &[&str]| words.join(GAP);
    format!(
        "(?s){}.*?{}.*?{}.*?{}.*?{}",
        title(&["System", DOT, r"(\d+)", "updates"]),
        title(&["Pools", r"\(1\)", DOT, r"(\d+)", "updates"]),
        title(&["Alerts", r"\(\d+\)", DOT, r"(\d+)", "updates"]),
        title(&["Apps", r"\(3\)", DOT, r"(\d+)", "updates"]),
        title(&["Jobs", r"\(\d+", r"running\)", DOT, r"(\d+)", "updates"]),
    )
}

#[test]
fn top_on_a_terminal_shows_every_pane_updating() {
    let sandbox = Sandbox::new();
    // A fresh pseudo-terminal has no size: give it one (stty on the terminal), then run top.
    let inner = sandbox.command(&["--mock", "top"]);
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg("stty cols 120 rows 40 && exec \"$0\" \"$@\"")
        .arg(inner.get_program())
        .args(inner.get_args());
    for (k, v) in inner.get_envs() {
        match v {
            Some(v) => cmd.env(k, v),
            None => cmd.env_remove(k),
        };
    }
    cmd.env("TERM", "xterm");
    let mut p = spawn_command(cmd, Some(15_000)).expect("top starts in a pseudo-terminal");
    p.exp_string("midscript top").unwrap();
    p.exp_string("connected").unwrap();
    let pattern = titles();
    let titles = regex::Regex::new(&pattern).unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let counts = loop {
        // Ctrl-L repaints the whole screen, so every title is drawn again in one piece.
        p.send_control('l').unwrap();
        let (_, drawn) = p.exp_regex(&pattern).expect("the five panes are drawn");
        let c = titles.captures(&drawn).expect("matched");
        let counts: Vec<u64> = (1..=5).map(|i| c[i].parse().unwrap()).collect();
        // Each pane took its first state and then at least one change.
        if counts.iter().all(|n| *n >= 2) {
            break counts;
        }
        assert!(
            Instant::now() < deadline,
            "panes not all updating: {counts:?}"
        );
        // Poll the screen again shortly (the demo changes every second).
        std::thread::sleep(Duration::from_millis(500));
    };
    assert_eq!(counts.len(), 5);
    p.send("q").unwrap();
    p.flush().unwrap();
    p.exp_eof().unwrap();
}

/// A plugin answers at once: a connection lost during the check is UNKNOWN, never a minute of
/// reconnecting (the CLI reconnects by default, `check` must not).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_does_not_reconnect_when_the_connection_drops() {
    let server = in_process::mock(|c| {
        c.demo = true;
        c.faults.close_1011_at = Some(3);
    })
    .await;
    let out = check_output(&server, &[]).await;
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    assert!(
        stdout(&out).starts_with("TRUENAS UNKNOWN - "),
        "{}",
        stdout(&out)
    );
    assert!(!stderr(&out).contains("reconnect"), "{}", stderr(&out));
    assert_eq!(server.logins(), 1);
}
