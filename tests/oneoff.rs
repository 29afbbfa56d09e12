//! One-off commands of the `midscript` binary end to end, against `midscript mock` in a child
//! process: `methods` and `doc` (bundled and server catalogs, the cache), profiles, trust on
//! first use without a terminal, `--trace`, completions, tables, and every error path. Each
//! command's exit status, stdout and stderr are snapshots (`tests/snapshots/oneoff__*.snap`);
//! only ports, fingerprints and temporary folders are filtered out.

use std::process::Output;

use crate::support::standalone::{Sandbox, StandaloneMock, stderr, stdout};
use midscript::mock::TEST_API_KEY;

/// What a run printed and how it ended, as one snapshot.
fn report(o: &Output) -> String {
    format!(
        "exit: {}\n--- stdout\n{}--- stderr\n{}",
        o.status
            .code()
            .map_or_else(|| "signal".to_owned(), |c| c.to_string()),
        stdout(o),
        stderr(o)
    )
}

/// Filters for what differs from run to run: ports, the mock's generated certificate, the
/// sandbox's folder.
fn settings(sandbox: &Sandbox, mocks: &[&StandaloneMock]) -> insta::Settings {
    let mut s = insta::Settings::clone_current();
    s.add_filter(r"127\.0\.0\.1:\d+", "127.0.0.1:[port]");
    s.add_filter(r"127\.0\.0\.1_\d+", "127.0.0.1_[port]");
    for m in mocks {
        if let Some(fp) = m.lines.iter().find_map(|l| l.strip_prefix("FINGERPRINT ")) {
            s.add_filter(&regex::escape(fp), "[mock fingerprint]");
        }
    }
    s.add_filter(
        &regex::escape(&sandbox.home().display().to_string()),
        "[home]",
    );
    s
}

macro_rules! snap {
    ($name:expr, $sandbox:expr, $mocks:expr, $output:expr) => {
        settings($sandbox, $mocks).bind(|| insta::assert_snapshot!($name, report($output)))
    };
}

/// A wss mock and its admin password (`--deterministic`: the test password and key).
fn wss_mock() -> StandaloneMock {
    StandaloneMock::start(&[])
}

fn plain_mock() -> StandaloneMock {
    StandaloneMock::start(&["--plain", "--plain-as-remote"])
}

fn password(mock: &StandaloneMock) -> String {
    mock.value("USER")
        .split_once(' ')
        .map(|(_, p)| p.to_owned())
        .unwrap()
}

fn join<'a>(a: &[&'a str], b: &[&'a str]) -> Vec<&'a str> {
    [a, b].concat()
}

#[cfg(unix)]
fn chmod(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

// ---------------------------------------------------------------------------------------------
// methods and doc

#[test]
fn methods_and_doc_from_the_bundled_catalog() {
    let sb = Sandbox::new();
    let o = sb.run(&["methods", "--offline", "user.upd"]);
    snap!("methods_offline", &sb, &[], &o);
    let o = sb.run(&["methods", "--offline", "app.*"]);
    assert!(o.status.success());
    assert!(
        stdout(&o)
            .lines()
            .any(|l| l.starts_with("app.create ") && l.contains("[job]")),
        "job methods are marked"
    );
    let o = sb.run(&["methods", "--offline", "no.such.thing"]);
    snap!("methods_no_match", &sb, &[], &o);
    // No server given at all: the bundled catalog, with a note.
    let o = sb.run(&["methods", "core.pin"]);
    snap!("methods_without_a_server", &sb, &[], &o);
    let o = sb.run(&["--mock", "doc", "core.ping"]);
    snap!("doc_core_ping", &sb, &[], &o);
    let o = sb.run(&["doc", "--offline", "user.updat"]);
    snap!("doc_unknown_method", &sb, &[], &o);
    let o = sb.run(&["-o", "json", "doc", "--offline", "core.ping"]);
    let entry: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(entry["roles"], serde_json::json!([]));
    assert!(entry["description"].as_str().unwrap().contains("pong"));
    assert!(
        sb.home().read_dir().unwrap().next().is_none(),
        "offline writes nothing"
    );
}

#[test]
fn methods_come_from_the_server_and_are_cached_per_version() {
    let mock = wss_mock();
    let sb = Sandbox::new();
    let (url, fp) = (mock.value("URL"), mock.value("FINGERPRINT"));
    let conn = [
        "--url",
        &url,
        "--fingerprint",
        &fp,
        "-U",
        "truenas_admin",
        "-K",
        TEST_API_KEY,
    ];
    let with = |more: &[&'static str]| join(&conn, more);

    let o = sb.run(&with(&["methods", "app.cr"]));
    snap!("methods_from_a_server", &sb, &[&mock], &o);
    let port = url.split(':').nth(2).unwrap().split('/').next().unwrap();
    let cached = sb
        .methods_cache()
        .join(format!("127.0.0.1_{port}"))
        .join("25.10.6.json.gz");
    assert!(cached.is_file(), "cached as {}", cached.display());

    // The second run reads the cache: replace it with a one-method catalog and see it answer.
    let tiny = serde_json::json!({"only.this": {"description": "From the cache.", "job": true, "accepts": [], "returns": []}});
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    std::io::Write::write_all(&mut gz, tiny.to_string().as_bytes()).unwrap();
    std::fs::write(&cached, gz.finish().unwrap()).unwrap();
    let o = sb.run(&with(&["methods"]));
    assert_eq!(
        stdout(&o),
        "only.this  [job]  From the cache.\n",
        "{}",
        stderr(&o)
    );
    let o = sb.run(&with(&["doc", "only.thi"]));
    snap!("doc_unknown_on_a_server", &sb, &[&mock], &o);

    // Reading a server's catalog needs a login.
    let o = sb.run(&["--url", &url, "--fingerprint", &fp, "methods"]);
    snap!("methods_need_a_login", &sb, &[&mock], &o);
}

// ---------------------------------------------------------------------------------------------
// error paths of call

#[test]
fn call_error_paths() {
    let sb = Sandbox::new();
    let o = sb.run_with_stdin(
        &["--mock", "call", "user.update", "-"],
        r#"{"password": "x"}"#,
    );
    snap!("error_stdin_not_an_array", &sb, &[], &o);
    let o = sb.run_with_stdin(&["--mock", "call", "user.update", "-"], "[1, {");
    snap!("error_stdin_not_json", &sb, &[], &o);
    let o = sb.run(&["--mock", "call", "no.such_method"]);
    snap!("error_unknown_method", &sb, &[], &o);
    let o = sb.run(&["--mock", "call", "user.update", "1", r#"{"bogus": 1}"#]);
    snap!("error_validation", &sb, &[], &o);
    // An argument that is not JSON is a string, as with midclt: the server judges it.
    let o = sb.run(&["--mock", "call", "user.update", "1", "{bogus"]);
    snap!("error_invalid_json_is_a_string", &sb, &[], &o);
}

#[test]
fn login_error_paths() {
    let sb = Sandbox::new();
    let wss = wss_mock();
    let (url, fp) = (wss.value("URL"), wss.value("FINGERPRINT"));
    let o = sb.run(&[
        "--url",
        &url,
        "--fingerprint",
        &fp,
        "-U",
        "truenas_admin",
        "-K",
        "1-wrong",
        "ping",
    ]);
    snap!("error_wrong_key", &sb, &[&wss], &o);
    let o = sb.run(&[
        "--url",
        &url,
        "--fingerprint",
        &fp,
        "-U",
        "truenas_admin",
        "ping",
    ]);
    snap!("error_password_without_a_terminal", &sb, &[&wss], &o);

    // A key sent in plain text over ws (the mock plays a remote NAS) is revoked.
    let plain = plain_mock();
    let purl = plain.value("URL");
    let o = sb.run(&[
        "--url",
        &purl,
        "-U",
        "truenas_admin",
        "-K",
        TEST_API_KEY,
        "ping",
    ]);
    snap!("error_revoked_key", &sb, &[&plain], &o);
    let o = sb.run(&[
        "--url",
        &purl,
        "-U",
        "truenas_admin",
        "-K",
        TEST_API_KEY,
        "ping",
    ]);
    assert_eq!(o.status.code(), Some(4));
    assert!(
        stderr(&o).contains("AUTH_ERR"),
        "revoked for good: {}",
        stderr(&o)
    );

    // ws:// to another host: refused before connecting (the name does not even resolve).
    let o = sb.run(&[
        "--url",
        "ws://nas.example.invalid/api/current",
        "-K",
        "1-abcdef",
        "ping",
    ]);
    snap!("error_key_over_plain_ws_to_another_host", &sb, &[], &o);
}

// ---------------------------------------------------------------------------------------------
// trust on first use

#[test]
fn unknown_and_changed_certificates_are_refused_without_a_terminal() {
    let sb = Sandbox::new();
    let mock = wss_mock();
    let url = mock.value("URL");
    let pw = password(&mock);
    let o = sb.run(&["--url", &url, "-U", "truenas_admin", "-P", &pw, "ping"]);
    snap!("error_unknown_certificate", &sb, &[&mock], &o);
    assert!(!stderr(&o).contains(&pw));
    assert!(
        !sb.known_hosts().exists(),
        "nothing is remembered without a yes"
    );

    // Remembered (as a yes at a terminal would): connects, pinned, without --fingerprint.
    let host = url
        .trim_start_matches("wss://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    sb.write(
        sb.known_hosts(),
        &format!("# test\n{host} {}\n", mock.value("FINGERPRINT")),
    );
    let o = sb.run(&["--url", &url, "-U", "truenas_admin", "-P", &pw, "ping"]);
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));

    // The certificate changed since: refused loudly, both fingerprints shown.
    let old = vec!["AB"; 32].join(":");
    sb.write(sb.known_hosts(), &format!("# test\n{host} {old}\n"));
    let o = sb.run(&["--url", &url, "-U", "truenas_admin", "-P", &pw, "ping"]);
    snap!("error_changed_certificate", &sb, &[&mock], &o);

    // A broken known-hosts file is named with its line.
    sb.write(sb.known_hosts(), "x\n");
    let o = sb.run(&["--url", &url, "ping"]);
    snap!("error_known_hosts_malformed", &sb, &[&mock], &o);

    // --fingerprint and --insecure settle trust by themselves.
    let o = sb.run(&[
        "--url",
        &url,
        "--insecure",
        "-U",
        "truenas_admin",
        "-P",
        &pw,
        "ping",
    ]);
    assert_eq!(stdout(&o), "pong\n", "{}", stderr(&o));
}

// ---------------------------------------------------------------------------------------------
// profiles

#[test]
fn profiles_fill_in_what_flags_and_environment_leave_out() {
    let sb = Sandbox::new();
    let mock = wss_mock();
    let (url, fp) = (mock.value("URL"), mock.value("FINGERPRINT"));
    let key = sb.write("config/midscript/lab.key", &format!("{TEST_API_KEY}\n"));
    #[cfg(unix)]
    chmod(&key, 0o644);
    sb.write(
        sb.config_file(),
        &format!(
            "[profiles.lab]\nurl = \"{url}\"\nusername = \"truenas_admin\"\napi_key_file = \"lab.key\"\nfingerprint = \"{fp}\"\ntimeout = 20\n\n[profiles.other]\nhost = \"nas.example.invalid\"\n"
        ),
    );
    let o = sb.run(&["--profile", "lab", "ping"]);
    snap!("profile_ping_with_an_exposed_key_file", &sb, &[&mock], &o);

    #[cfg(unix)]
    chmod(&key, 0o600);
    let o = sb
        .command(&["ping"])
        .env("MIDSCRIPT_PROFILE", "lab")
        .output()
        .unwrap();
    assert_eq!(report(&o), "exit: 0\n--- stdout\npong\n--- stderr\n");

    // A flag beats the profile: a wrong pin on the command line is used, and refused.
    let wrong = vec!["AB"; 32].join(":");
    let o = sb.run(&["--profile", "lab", "--fingerprint", &wrong, "ping"]);
    assert_eq!(o.status.code(), Some(3), "{}", stderr(&o));
    // The environment beats the profile, and the profile's key does not follow it elsewhere.
    let o = sb
        .command(&["--profile", "lab", "ping"])
        .env("MIDSCRIPT_URL", "ws://127.0.0.1:1/api/current")
        .output()
        .unwrap();
    snap!("profile_overridden_by_the_environment", &sb, &[&mock], &o);

    let o = sb.run(&["--profile", "nope", "ping"]);
    snap!("profile_unknown", &sb, &[], &o);
    sb.write(
        sb.config_file(),
        "[profiles.lab]\nurl = \"wss://x/api/current\"\ntimout = 3\n",
    );
    let o = sb.run(&["--profile", "lab", "ping"]);
    snap!("profile_config_malformed", &sb, &[], &o);
    std::fs::remove_file(sb.config_file()).unwrap();
    let o = sb.run(&["--profile", "lab", "ping"]);
    snap!("profile_without_a_config_file", &sb, &[], &o);
}

// ---------------------------------------------------------------------------------------------
// --trace, completions, output

#[test]
fn traces_hold_every_frame_and_no_secret() {
    let sb = Sandbox::new();
    let mock = wss_mock();
    let (url, fp) = (mock.value("URL"), mock.value("FINGERPRINT"));
    let pw = password(&mock);
    let trace = sb.home().join("password.trace");
    let t = trace.to_str().unwrap();
    let o = sb.run(&[
        "--url",
        &url,
        "--fingerprint",
        &fp,
        "-U",
        "truenas_admin",
        "-P",
        &pw,
        "--trace",
        t,
        "call",
        "core.ping",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&trace).unwrap();
    settings(&sb, &[&mock]).bind(|| insta::assert_snapshot!("trace_password_login", text));
    assert!(!text.contains(&pw));

    // An API key (plain over wss on 25.10), and a password change whose new password came on stdin.
    let trace = sb.home().join("key.trace");
    let t = trace.to_str().unwrap();
    let o = sb.run_with_stdin(
        &[
            "--url",
            &url,
            "--fingerprint",
            &fp,
            "-K",
            TEST_API_KEY,
            "--trace",
            t,
            "call",
            "user.update",
            "-",
        ],
        r#"[1, {"password": "n3w-Secret-Passw0rd"}]"#,
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&trace).unwrap();
    let material = TEST_API_KEY.split_once('-').unwrap().1;
    assert!(text.contains(r#""method":"user.update""#), "{text}");
    for secret in [material, "n3w-Secret-Passw0rd"] {
        assert!(
            !text.contains(secret),
            "{secret} leaked into the trace:\n{text}"
        );
    }
    assert!(
        text.lines()
            .all(|l| l.starts_with("-> ") || l.starts_with("<- ")),
        "{text}"
    );
}

#[test]
fn completions_for_each_shell() {
    let sb = Sandbox::new();
    for shell in ["bash", "zsh", "fish"] {
        let o = sb.run(&["completions", shell]);
        assert!(o.status.success(), "{shell}: {}", stderr(&o));
        let script = stdout(&o);
        assert!(
            script.contains("midscript") && script.contains("methods"),
            "{shell}"
        );
    }
    let o = sb.run(&["completions", "tcsh"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn tables_print_booleans_as_words() {
    let sb = Sandbox::new();
    let o = sb.run(&[
        "--mock",
        "-o",
        "table",
        "call",
        "user.query",
        "[]",
        r#"{"select": ["username", "uid", "locked", "builtin", "sudo_commands"]}"#,
    ]);
    snap!("table_of_users", &sb, &[], &o);
}

// ---------------------------------------------------------------------------------------------
// the mock's latency

#[test]
fn a_mock_told_to_be_slow_answers_every_call_after_its_latency() {
    let sb = Sandbox::new();
    let mock = StandaloneMock::start(&["--plain", "--latency-ms", "300"]);
    let url = mock.value("URL");
    let pw = password(&mock);
    let started = std::time::Instant::now();
    let o = sb.run(&[
        "--url",
        &url,
        "-U",
        "truenas_admin",
        "-P",
        &pw,
        "call",
        "core.ping",
    ]);
    // At least the login and the call each waited (a lower bound: never flaky).
    assert!(started.elapsed() >= std::time::Duration::from_millis(600));
    assert_eq!(stdout(&o), "\"pong\"\n", "{}", stderr(&o));
    let o = sb.run(&["mock", "--latency-ms", "soon"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--latency-ms"), "{}", stderr(&o));
}

#[test]
fn a_big_result_is_printed_compact_as_it_came_or_pretty() {
    let sb = Sandbox::new();
    let mock = StandaloneMock::start(&["--plain", "--alert-backlog-mb", "1"]);
    let url = mock.value("URL");
    let pw = password(&mock);
    let base = [
        "--url",
        url.as_str(),
        "-U",
        "truenas_admin",
        "-P",
        pw.as_str(),
    ];
    let compact = sb.run(&join(&base, &["call", "alert.list"]));
    let pretty = sb.run(&join(&base, &["-o", "json", "call", "alert.list"]));
    assert!(compact.status.success(), "{}", stderr(&compact));
    assert!(pretty.status.success(), "{}", stderr(&pretty));
    let (compact, pretty) = (stdout(&compact), stdout(&pretty));
    assert!(compact.len() >= 1_000_000, "{} bytes", compact.len());
    assert_eq!(compact.lines().count(), 1, "compact JSON is one line");
    assert!(pretty.lines().count() > 1000);
    let a: serde_json::Value = serde_json::from_str(&compact).expect("JSON");
    let b: serde_json::Value = serde_json::from_str(&pretty).expect("JSON");
    assert_eq!(a, b);
    assert_eq!(a[0]["klass"], "SlowDiskIo");
    // Both are printed from the text as it came, formatted exactly as from a parsed value.
    assert_eq!(compact, format!("{a}\n"));
    assert_eq!(pretty, serde_json::to_string_pretty(&a).unwrap() + "\n");
    let raw = sb.run(&join(&base, &["call", "--raw", "core.ping"]));
    assert_eq!(stdout(&raw), "pong\n", "{}", stderr(&raw));
}
