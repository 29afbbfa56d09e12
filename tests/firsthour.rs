//! What a new user meets in the first hour (issue 15): the mock as a playground (`mock --env`,
//! `--plain` on loopback, `--no-rate-limit`), "did you mean" for one-off calls and events,
//! REPL sessions saved as scripts, `run -`, `-q`, compose's `--exit-code`, `-o yaml`, refusals
//! for a missing app, the mock's logs and profiles.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Output, Stdio};

use crate::support::standalone::{Sandbox, StandaloneMock, run, stderr, stdout};

/// A compose project in a folder of its own: a web service and one under a profile.
fn project() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let folder = dir.path().join("playground");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(
        folder.join("compose.yaml"),
        "services:\n  web:\n    image: nginx:${TAG}\n    ports: [\"8080:80\"]\n  debug:\n    image: busybox\n    profiles: [debug]\n",
    )
    .unwrap();
    std::fs::write(folder.join(".env"), "TAG=1.27\n").unwrap();
    dir
}

/// Run `args` in `dir` (a sandbox's home and clean environment).
fn run_in(sb: &Sandbox, dir: &Path, args: &[&str]) -> Output {
    sb.command(args)
        .current_dir(dir)
        .stdin(Stdio::null())
        .output()
        .unwrap()
}

/// The standalone mock on plain ws with admin:pw, and the flags that reach it.
fn plain_mock() -> (StandaloneMock, Vec<String>) {
    let mock = StandaloneMock::start(&["--plain", "--user", "admin:pw"]);
    let flags = ["--url", &mock.value("URL"), "-U", "admin", "-P", "pw"]
        .map(String::from)
        .to_vec();
    (mock, flags)
}

fn with<'a>(flags: &'a [String], args: &[&'a str]) -> Vec<&'a str> {
    let mut all: Vec<&str> = args.to_vec();
    all.extend(flags.iter().map(String::as_str));
    all
}

#[test]
fn a_misspelt_method_gets_did_you_mean() {
    let o = run(&["--mock", "call", "app.craete"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert_eq!(
        stderr(&o),
        "midscript: error: app.craete: method does not exist on this server\ndid you mean: app.create, app.delete?\n"
    );
    // Nothing near: the plain error.
    let o = run(&["--mock", "call", "zzzz.qqqq"]);
    assert_eq!(
        stderr(&o),
        "midscript: error: zzzz.qqqq: method does not exist on this server\n"
    );
}

#[test]
fn an_unknown_event_is_warned_about_and_still_subscribed() {
    let o = run(&["--mock", "subscribe", "app.qurey", "-t", "0.5"]);
    assert_eq!(o.status.code(), Some(1));
    assert_eq!(
        stderr(&o),
        "midscript: warning: the catalog knows no event app.qurey (did you mean: app.query?); subscribed anyway, but events may never come\n\
         midscript: no event on app.qurey within 0.5s\n"
    );
    // A known event, with arguments: no warning.
    let o = run(&[
        "--mock",
        "subscribe",
        "reporting.realtime:{\"interval\": 2}",
        "-n",
        "1",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stderr(&o), "");
}

#[test]
fn an_empty_attribute_reads_all_and_no_traceback_hint_without_one() {
    let o = run(&["--mock", "call", "core.ping", "1"]);
    assert_eq!(o.status.code(), Some(1));
    let err = stderr(&o);
    assert!(
        err.contains("\n  ALL: Too many arguments (expected 0, found 1)"),
        "{err}"
    );
    assert!(!err.contains("\n  : "), "{err}");
}

#[test]
fn a_repl_session_with_a_subscription_saves_as_a_script_that_runs() {
    let sb = Sandbox::new();
    let saved = sb.home().join("session.rhai");
    let o = sb.run_with_stdin(
        &["repl", "--mock"],
        &format!(
            "let w = subscribe(\"app.query\")\nw\nw.name\n.save {}\n",
            saved.display()
        ),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert_eq!(out, "Watch(app.query)\n\"app.query\"\n", "{}", stderr(&o));
    let script = std::fs::read_to_string(&saved).unwrap();
    assert!(
        script.contains("let w = subscribe(\"app.query\");\nw;\n"),
        "{script}"
    );
    // The saved script runs: subscribe(name) prints events as JSON lines in a script.
    let o = sb.run(&["--mock", "run", saved.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = sb.run(&[
        "--mock",
        "-e",
        "let s = subscribe(\"app.query\"); job(\"app.stop\", \"jellyfin\"); sleep(200); s.cancel(); print(s)",
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.contains("\"collection\":\"app.query\""), "{out}");
    assert!(out.ends_with("Subscription(app.query)\n"), "{out}");
}

#[test]
fn run_dash_reads_the_script_from_stdin_and_names_it_in_errors() {
    let sb = Sandbox::new();
    let o = sb.run_with_stdin(
        &["--mock", "run", "-", "a1"],
        "print(args[0]); print(call(\"core.ping\"));",
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "a1\npong\n");
    let o = sb.run_with_stdin(&["--mock", "run", "-"], "let x = ;");
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("<stdin>:1:"), "{}", stderr(&o));
}

#[test]
fn quiet_is_global_and_hides_job_progress() {
    let o = run(&["-q", "--mock", "call", "-j", "app.stop", "jellyfin"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(!stderr(&o).contains("RUNNING"), "{}", stderr(&o));
    let o = run(&["--mock", "call", "-j", "app.stop", "jellyfin", "--quiet"]);
    assert!(!stderr(&o).contains("RUNNING"), "{}", stderr(&o));
    let o = run(&["--mock", "call", "-j", "app.stop", "jellyfin"]);
    assert!(stderr(&o).contains("RUNNING"), "{}", stderr(&o));
}

#[test]
fn the_mock_refuses_output_options() {
    let o = run(&["mock", "-o", "json"]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).contains("-o/--output and --raw do not apply"));
    let o = run(&["mock", "--help"]);
    assert!(!stdout(&o).contains("--raw"), "{}", stdout(&o));
}

#[test]
fn compose_config_follows_output_yaml() {
    let dir = project();
    let sb = Sandbox::new();
    let o = run_in(
        &sb,
        &dir.path().join("playground"),
        &["-o", "yaml", "compose", "config"],
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert!(
        stdout(&o).starts_with("services:\n  web:\n    image: nginx:1.27\n"),
        "{}",
        stdout(&o)
    );
    let o = run_in(&sb, &dir.path().join("playground"), &["compose", "config"]);
    assert!(stdout(&o).starts_with("{\n"), "{}", stdout(&o));
}

#[test]
fn pull_and_down_of_a_missing_app_say_so_before_any_job() {
    let dir = project();
    let sb = Sandbox::new();
    for cmd in [
        &["compose", "pull", "--mock"][..],
        &["compose", "down", "--mock"],
        &["compose", "down", "--delete", "--mock"],
        &["compose", "ps", "--mock"],
        &["compose", "logs", "--mock"],
    ] {
        let o = run_in(&sb, &dir.path().join("playground"), cmd);
        assert_eq!(o.status.code(), Some(1), "{cmd:?}: {}", stderr(&o));
        let err = stderr(&o);
        assert!(
            err.ends_with(
                "midscript: error: playground does not exist on the NAS (deploy it with `midscript compose up`)\n"
            ),
            "{cmd:?}: {err}"
        );
        assert!(!err.contains("job"), "{cmd:?}: {err}");
    }
}

#[test]
fn diff_exit_code_says_whether_up_would_change_anything() {
    let (_mock, flags) = plain_mock();
    let dir = project();
    let sb = Sandbox::new();
    let here = dir.path().join("playground");
    let o = run_in(
        &sb,
        &here,
        &with(&flags, &["compose", "diff", "--exit-code"]),
    );
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("+ web (image nginx:1.27)"),
        "{}",
        stdout(&o)
    );
    let o = run_in(&sb, &here, &with(&flags, &["compose", "diff"]));
    assert_eq!(
        o.status.code(),
        Some(0),
        "without --exit-code a change is no failure"
    );
    let o = run_in(&sb, &here, &with(&flags, &["-q", "compose", "up"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run_in(
        &sb,
        &here,
        &with(&flags, &["compose", "diff", "--exit-code"]),
    );
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "no changes\n");
    // The service under an inactive profile is neither deployed nor listed.
    let o = run_in(&sb, &here, &with(&flags, &["compose", "ps"]));
    assert!(!stdout(&o).contains("debug"), "{}", stdout(&o));
}

#[test]
fn the_mock_starts_no_service_under_a_profile() {
    let o = run(&[
        "--mock",
        "--empty",
        "-q",
        "-e",
        r#"job("app.create", #{app_name: "p", custom_app: true, custom_compose_config: #{services: #{
             web: #{image: "nginx:1.27"}, extra: #{image: "busybox", profiles: ["debug"]}}}});
           let c = call("app.get_instance", "p").active_workloads.container_details;
           print(c.len()); print(c[0].service_name);"#,
    ]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "1\nweb\n");
}

/// Read lines from a child's stdout until each of `want` has appeared.
fn lines_until(reader: &mut impl BufRead, want: &[&str]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    while !want.iter().all(|w| seen.iter().any(|l| l == w)) {
        let mut line = String::new();
        assert!(
            reader.read_line(&mut line).unwrap() > 0,
            "ended before {want:?}: {seen:?}"
        );
        seen.push(line.trim_end().to_owned());
    }
    seen
}

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn compose_logs_follow_keeps_following_on_the_mock_with_lines_prefixed_once() {
    let (_mock, flags) = plain_mock();
    let dir = tempfile::tempdir().unwrap();
    let here = dir.path().join("two");
    std::fs::create_dir(&here).unwrap();
    std::fs::write(
        here.join("compose.yaml"),
        "services:\n  web:\n    image: nginx:1.27\n    ports: [\"8080:80\"]\n  db:\n    image: postgres:17\n",
    )
    .unwrap();
    let sb = Sandbox::new();
    let o = run_in(&sb, &here, &with(&flags, &["-q", "compose", "up"]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let o = run_in(&sb, &here, &with(&flags, &["compose", "logs", "web"]));
    assert_eq!(
        stdout(&o),
        "Starting web (nginx:1.27)\nlistening on port 80/tcp\nready\n"
    );
    let child = sb
        .command(&with(&flags, &["compose", "logs", "-f"]))
        .current_dir(&here)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let seen = lines_until(&mut out, &["db | ready", "web | ready"]);
    assert!(
        seen.contains(&"web | listening on port 80/tcp".to_owned()),
        "{seen:?}"
    );
    assert!(seen.iter().all(|l| !l.contains("web: ")), "{seen:?}");
    // Every line is out, and it still follows.
    std::thread::sleep(std::time::Duration::from_millis(300));
    assert!(child.0.try_wait().unwrap().is_none(), "logs -f ended");
}

#[test]
fn mock_env_prints_exports_and_leaves_the_mock_running() {
    let sb = Sandbox::new();
    let o = sb.run(&["mock", "--env", "--deterministic", "--no-rate-limit"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let out = stdout(&o);
    let value = |name: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(&format!("export {name}='")))
            .and_then(|v| v.strip_suffix('\''))
            .unwrap_or_else(|| panic!("no {name} in {out}"))
            .to_owned()
    };
    let pid = value("MIDSCRIPT_MOCK_PID");
    let _stop = KillPid(pid.clone());
    assert!(value("MIDSCRIPT_URL").starts_with("wss://127.0.0.1:"));
    assert!(out.ends_with(&format!(
        "# midscript mock runs in the background (pid {pid}); stop it with: kill $MIDSCRIPT_MOCK_PID\n"
    )));
    // The environment is enough for every later command, and 30 logins are no rate limit.
    for _ in 0..30 {
        let o = sb
            .command(&["ping"])
            .env("MIDSCRIPT_URL", value("MIDSCRIPT_URL"))
            .env("MIDSCRIPT_FINGERPRINT", value("MIDSCRIPT_FINGERPRINT"))
            .env("MIDSCRIPT_API_KEY", value("MIDSCRIPT_API_KEY"))
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));
    }
    // MIDSCRIPT_FINGERPRINT pins only the server of the environment, not one given by a flag.
    let o = sb
        .command(&["--url", "wss://127.0.0.1:1/api/current", "ping"])
        .env("MIDSCRIPT_FINGERPRINT", value("MIDSCRIPT_FINGERPRINT"))
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(3));
    // A mock that cannot start (its port is taken): the error, no exports.
    let url = value("MIDSCRIPT_URL");
    let port = url
        .trim_start_matches("wss://127.0.0.1:")
        .split('/')
        .next()
        .unwrap();
    let o = sb.run(&["mock", "--env", "--port", port]);
    assert_ne!(o.status.code(), Some(0));
    assert!(
        stderr(&o).contains("the mock ended before it was ready"),
        "{}",
        stderr(&o)
    );
    assert_eq!(stdout(&o), "");
}

/// Kill the background mock of `mock --env` at the end of a test.
struct KillPid(String);

impl Drop for KillPid {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill").arg(&self.0).status();
    }
}

#[test]
fn a_plain_mock_on_loopback_takes_its_api_key_and_a_remote_one_prints_none() {
    let mock = StandaloneMock::start(&["--plain"]);
    let key = mock.value("API_KEY");
    let key = key.split_once(' ').unwrap().1;
    let o = run(&["--url", &mock.value("URL"), "-K", key, "ping"]);
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));
    let o = run(&["--url", &mock.value("URL"), "-K", key, "ping"]);
    assert_eq!(stdout(&o), "pong\n", "not revoked: {}", stderr(&o));

    let remote = StandaloneMock::start(&["--plain", "--plain-as-remote"]);
    assert!(
        remote.lines.iter().all(|l| !l.starts_with("API_KEY")),
        "{:?}",
        remote.lines
    );
    let remote_ping = || {
        run(&[
            "--url",
            &remote.value("URL"),
            "-U",
            "truenas_admin",
            "-K",
            midscript::mock::TEST_API_KEY,
            "ping",
        ])
    };
    let o = remote_ping();
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("the server revoked this API key because it was sent over plain ws://"),
        "{}",
        stderr(&o)
    );
    // Later: AUTH_ERR, with the likely reason.
    let o = remote_ping();
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o)
            .contains("or was revoked because it was sent over plain ws:// before (AUTH_ERR)"),
        "{}",
        stderr(&o)
    );
}

#[cfg(unix)]
#[test]
fn every_example_script_with_a_shebang_is_executable() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rhai") {
            let text = std::fs::read_to_string(&path).unwrap();
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            if text.starts_with("#!") {
                assert!(mode & 0o111 != 0, "{} is not executable", path.display());
            }
        }
    }
}

/// Run `args` in a pseudo-terminal and return all it printed.
fn on_a_terminal(sb: &Sandbox, args: &[&str], colour: bool) -> String {
    let mut cmd = sb.command(args);
    cmd.env("TERM", "xterm");
    if colour {
        cmd.env_remove("NO_COLOR");
    }
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    p.exp_eof().unwrap()
}

#[test]
fn results_and_diffs_are_coloured_on_a_terminal_unless_no_color() {
    let sb = Sandbox::new();
    let shown = on_a_terminal(&sb, &["--mock", "call", "system.info"], true);
    assert!(
        shown.contains("\x1b[34m\"hostname\"\x1b[0m: \x1b[32m\"truenas\"\x1b[0m"),
        "{shown:?}"
    );
    let shown = on_a_terminal(&sb, &["--mock", "call", "system.info"], false);
    assert!(shown.contains("\"hostname\": \"truenas\""), "{shown:?}");
    assert!(!shown.contains('\x1b'), "{shown:?}");
    // Piped: never.
    let o = sb
        .command(&["--mock", "call", "core.ping"])
        .env_remove("NO_COLOR")
        .output()
        .unwrap();
    assert_eq!(stdout(&o), "\"pong\"\n");

    let dir = project();
    let folder = dir.path().join("playground");
    let mut cmd = sb.command(&["--mock", "compose", "diff"]);
    cmd.current_dir(&folder)
        .env("TERM", "xterm")
        .env_remove("NO_COLOR");
    let mut p = rexpect::session::spawn_command(cmd, Some(20_000)).unwrap();
    let shown = p.exp_eof().unwrap();
    assert!(
        shown.contains("\x1b[32m+ web (image nginx:1.27)\x1b[0m"),
        "{shown:?}"
    );
}

#[test]
fn method_names_for_completion_come_from_the_newest_cache_without_connecting() {
    let sb = Sandbox::new();
    // No cache: the bundled catalog.
    let o = sb.run(&["methods", "--names", "app.creat*"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    assert_eq!(stdout(&o), "app.create\n");
    assert_eq!(stderr(&o), "", "no note: completion must stay quiet");
    // A cached catalog (as `methods` against a server writes it) wins; the newest of them.
    let cache = sb.methods_cache();
    let older = cache.join("nas1.lan:443/25.04.2.json.gz");
    midscript::catalog::cache::write_cache(&older, &serde_json::json!({"old.method": {}})).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    let newer = cache.join("nas2.lan:443/26.0.0.json.gz");
    midscript::catalog::cache::write_cache(
        &newer,
        &serde_json::json!({"app.create": {}, "app.only_on_26": {}}),
    )
    .unwrap();
    let o = sb.run(&["methods", "--names", "app.*"]);
    assert_eq!(stdout(&o), "app.create\napp.only_on_26\n", "{}", stderr(&o));
    // Never connects: a server that is not there changes nothing.
    let o = sb.run(&[
        "--url",
        "wss://127.0.0.1:1/api/current",
        "methods",
        "--names",
        "app.o*",
    ]);
    assert_eq!(stdout(&o), "app.only_on_26\n", "{}", stderr(&o));
    // The bash script asks it for the names after call/job/doc.
    let o = sb.run(&["completions", "bash"]);
    assert!(stdout(&o).contains("midscript methods --names"));
}

#[test]
fn the_man_page_is_generated_from_the_command_line() {
    let o = run(&["man"]);
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let page = stdout(&o);
    assert!(page.contains(".TH midscript 1"), "{page}");
    assert!(page.contains("midscript\\-compose(1)"), "{page}");
}

#[test]
fn watch_apps_counts_one_app_in_the_singular() {
    let (_mock, flags) = plain_mock();
    let create = r#"{"app_name":"web","custom_app":true,"custom_compose_config":{"services":{"web":{"image":"nginx:1.27"}}}}"#;
    let sb = Sandbox::new();
    let o = sb.run(&with(&flags, &["-q", "call", "-j", "app.create", create]));
    assert_eq!(o.status.code(), Some(0), "{}", stderr(&o));
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/watch-apps.rhai");
    let mut args: Vec<&str> = flags.iter().map(String::as_str).collect();
    args.extend(["run", script.to_str().unwrap()]);
    let child = sb
        .command(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut child = Killed(child);
    let mut out = BufReader::new(child.0.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line, "watching 1 app for state changes (Ctrl-C to stop)\n");
}
