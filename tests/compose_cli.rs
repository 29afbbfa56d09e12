//! `midscript compose …` end to end: the binary against a standalone deterministic mock, with
//! its own state directory (the deploy journal) per test.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::standalone::{StandaloneMock, stderr, stdout};

const BIN: &str = env!("CARGO_BIN_EXE_midscript");

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose")
        .join(name)
}

/// The standalone mock on plain ws:// with one known account, admin:pw.
fn mock(extra: &[&str]) -> StandaloneMock {
    let mut args = vec!["--plain", "--user", "admin:pw"];
    args.extend_from_slice(extra);
    StandaloneMock::start(&args)
}

/// The binary, started in `dir` with a clean environment (the mock's password in
/// `MIDSCRIPT_PASSWORD`), state directory `state`, no colour and no stdin.
fn command(dir: &Path, state: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.current_dir(dir)
        .env_clear()
        .env("MIDSCRIPT_PASSWORD", "pw")
        .env("XDG_STATE_HOME", state)
        .env("HOME", state)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null());
    c
}

/// `--url` and `-U` for `mock`.
fn login(mock: &StandaloneMock) -> [String; 4] {
    [
        "--url".into(),
        mock.value("URL"),
        "-U".into(),
        "admin".into(),
    ]
}

/// Run `midscript compose ARGS` in `dir` with a clean environment and state directory `state`.
fn compose(mock: Option<&StandaloneMock>, state: &Path, dir: &Path, args: &[&str]) -> Output {
    let mut c = command(dir, state);
    c.arg("compose").args(args);
    if let Some(m) = mock {
        c.args(login(m));
    }
    c.output().expect("the binary runs")
}

fn code(o: &Output) -> i32 {
    o.status.code().unwrap_or(-1)
}

#[test]
fn up_twice_is_created_then_unchanged_and_journaled_privately() {
    let mock = mock(&[]);
    let state = tempfile::tempdir().unwrap();
    let dir = fixture("whoami");
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &["up", "--progress", "none"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o).lines().last(),
        Some("whoami: created, RUNNING"),
        "{}",
        stdout(&o)
    );
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &["up", "--progress", "none"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "whoami: unchanged, RUNNING\n");
    let journal = state.path().join("midscript/journal");
    let server = std::fs::read_dir(&journal)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let entries: Vec<_> = std::fs::read_dir(server.join("whoami")).unwrap().collect();
    assert_eq!(entries.len(), 1, "only the create is journaled");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let f = entries[0].as_ref().unwrap().path();
        assert_eq!(
            std::fs::metadata(f).unwrap().permissions().mode() & 0o777,
            0o600
        );
    }
    // ps, logs, down.
    let o = compose(Some(&mock), state.path(), &dir, &["ps"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let ps = stdout(&o);
    assert!(
        ps.starts_with("whoami: RUNNING\nservice  container"),
        "{ps}"
    );
    assert!(
        ps.contains("web      ") && ps.contains("0.0.0.0:8081->80/tcp"),
        "{ps}"
    );
    let o = compose(Some(&mock), state.path(), &dir, &["logs", "--tail", "2"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "listening on port 80/tcp\nready\n");
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &["down", "--delete", "--progress", "none"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "whoami: deleted\n");
    let o = compose(Some(&mock), state.path(), &dir, &["ps"]);
    assert_eq!(code(&o), 1);
    assert!(
        stderr(&o).contains("does not exist on the NAS"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn diff_update_and_rollback() {
    let mock = mock(&[]);
    let state = tempfile::tempdir().unwrap();
    let dir = fixture("inventory");
    let base = ["--dataset-root", "/mnt/tank/apps", "--progress", "none"];
    let up = |extra: &[&str]| {
        let mut a = vec!["up"];
        a.extend_from_slice(&base);
        a.extend_from_slice(extra);
        compose(Some(&mock), state.path(), &dir, &a)
    };
    let o = up(&["--create-dirs"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stderr(&o).contains(
            "created /mnt/tank/apps/inventory/data/postgres (dataset tank/apps/inventory/data/postgres) on the NAS"
        ),
        "{}",
        stderr(&o)
    );
    assert!(
        stderr(&o).contains("adminer has profiles"),
        "{}",
        stderr(&o)
    );
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &[
            "diff",
            "--dataset-root",
            "/mnt/tank/apps",
            "--var",
            "WEB_TAG=1.5.0",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "~ web\n    image: \"ghcr.io/example/inventory-web:1.4.2\" -> \"ghcr.io/example/inventory-web:1.5.0\"\n"
    );
    let o = up(&["--var", "WEB_TAG=1.5.0"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(
        stdout(&o).ends_with("inventory: updated, RUNNING\n"),
        "{}",
        stdout(&o)
    );
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &["rollback", "--progress", "none"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.starts_with("rolled inventory back to the document deployed at "),
        "{text}"
    );
    assert!(text.contains("    image: \"ghcr.io/example/inventory-web:1.5.0\" -> \"ghcr.io/example/inventory-web:1.4.2\""), "{text}");
    assert!(text.ends_with("inventory: updated, RUNNING\n"), "{text}");
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &["diff", "--dataset-root", "/mnt/tank/apps"],
    );
    assert_eq!(stdout(&o), "no changes\n");
}

#[test]
fn a_crashed_deployment_shows_its_logs_and_exits_6() {
    let mock = mock(&["--crash-app", "crashy"]);
    let state = tempfile::tempdir().unwrap();
    let o = compose(
        Some(&mock),
        state.path(),
        &fixture("whoami"),
        &["up", "--name", "crashy", "--progress", "none"],
    );
    assert_eq!(code(&o), 6, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(
        text.contains("\ncrashy: created, CRASHED\n--- web (crashed, container "),
        "{text}"
    );
    assert!(
        text.ends_with("web | fatal error (simulated crash), exiting with code 1\n"),
        "{text}"
    );
    assert!(
        stderr(&o).contains("/var/log/app_lifecycle.log"),
        "{}",
        stderr(&o)
    );
}

#[test]
fn bad_projects_are_refused_before_anything_is_sent() {
    let state = tempfile::tempdir().unwrap();
    for (name, expect) in [
        ("broken-yaml", "compose.yaml:6:6: invalid YAML"),
        (
            "missing-var",
            "compose.yaml:5:18: required variable API_TOKEN is missing a value: set API_TOKEN before deploying",
        ),
        ("build-context", "TrueNAS cannot build images"),
        ("inventory", "pass --dataset-root"),
    ] {
        // --mock would be used if the project resolved; it never gets that far.
        let o = compose(None, state.path(), &fixture(name), &["up", "--mock"]);
        assert_eq!(code(&o), 2, "{name}: {}", stderr(&o));
        assert!(stderr(&o).contains(expect), "{name}: {}", stderr(&o));
        assert!(stdout(&o).is_empty(), "{name}: {}", stdout(&o));
    }
    let o = compose(
        None,
        state.path(),
        &fixture("whoami"),
        &["up", "--mock", "--name", "Bad_Name"],
    );
    assert_eq!(code(&o), 2);
    assert!(
        stderr(&o).contains("invalid app name \"Bad_Name\""),
        "{}",
        stderr(&o)
    );
}

#[test]
fn config_prints_the_resolved_document_with_secrets_masked_unless_asked() {
    let state = tempfile::tempdir().unwrap();
    let o = compose(
        None,
        state.path(),
        &fixture("inventory"),
        &["config", "--dataset-root", "/mnt/tank/apps"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert!(!stdout(&o).contains("s3cr3t-Passw0rd"), "{}", stdout(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let api = &doc["services"]["api"]["environment"];
    assert_eq!(
        doc["services"]["db"]["environment"]["POSTGRES_PASSWORD"],
        "********"
    );
    assert_eq!(
        api["DATABASE_URL"], "********",
        "it embeds the .env password"
    );
    assert_eq!(
        api["PRICE_FORMAT"], "$$#,##0.00",
        "a harmless value from env_file shows as it is"
    );
    assert_eq!(api["REDIS_URL"], "redis://cache:6379/0");
    assert_eq!(api["UMASK"], "0022");

    let o = compose(
        None,
        state.path(),
        &fixture("inventory"),
        &[
            "config",
            "--dataset-root",
            "/mnt/tank/apps",
            "--show-secrets",
        ],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let doc: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let api = &doc["services"]["api"]["environment"];
    assert_eq!(api["PRICE_FORMAT"], "$$#,##0.00");
    assert_eq!(
        doc["services"]["db"]["environment"]["POSTGRES_PASSWORD"],
        "s3cr3t-Passw0rd"
    );
}

#[test]
fn logs_follow_into_a_closed_pipe_ends_quietly() {
    // `midscript compose logs -f | head`: once the reader has gone, the next line cannot be
    // written; the command must stop following and exit 0, not panic as println! would.
    let mock = mock(&[]);
    let state = tempfile::tempdir().unwrap();
    let dir = fixture("whoami");
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &["up", "--progress", "none"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let mut child = command(&dir, state.path())
        .args(["compose", "logs", "-f", "--tail", "2"])
        .args(login(&mock))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the binary runs");
    // The reader goes away before the first line is written.
    drop(child.stdout.take());
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            panic!("compose logs -f kept running after its stdout was closed");
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let mut stderr = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(status.code(), Some(0), "{stderr}");
}

/// Run `midscript ARGS` (connection arguments included) with a clean environment and state directory `state`.
fn midscript(state: &Path, args: &[&str]) -> Output {
    command(Path::new(env!("CARGO_MANIFEST_DIR")), state)
        .args(args)
        .output()
        .expect("the binary runs")
}

#[test]
fn a_deployment_made_by_a_script_is_rolled_back_by_the_cli() {
    let mock = mock(&[]);
    let state = tempfile::tempdir().unwrap();
    let script = state.path().join("deploy-twice.rhai");
    std::fs::write(
        &script,
        format!(
            r#"import "compose" as compose;
let dir = "{}";
let opts = #{{ dataset_root: "/mnt/tank/apps", timeout_ms: 10000 }};
print(compose::up(dir, opts).action);
opts.vars = #{{ WEB_TAG: "1.5.0" }};
print(compose::up(dir, opts).action);
"#,
            fixture("inventory").display()
        ),
    )
    .unwrap();
    let url = mock.value("URL");
    let conn = ["--url", &url, "-U", "admin"];
    let mut args = vec!["run", "--progress", "none"];
    args.extend_from_slice(&conn);
    args.push(script.to_str().unwrap());
    let o = midscript(state.path(), &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "created\nupdated\n");

    let mut args = vec!["compose", "rollback", "inventory", "--progress", "none"];
    args.extend_from_slice(&conn);
    let o = midscript(state.path(), &args);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("(journal entry 1)"), "{text}");
    assert!(text.contains("    image: \"ghcr.io/example/inventory-web:1.5.0\" -> \"ghcr.io/example/inventory-web:1.4.2\""), "{text}");
    assert!(text.ends_with("inventory: updated, RUNNING\n"), "{text}");
    let o = compose(
        Some(&mock),
        state.path(),
        &fixture("inventory"),
        &["diff", "--dataset-root", "/mnt/tank/apps"],
    );
    assert_eq!(stdout(&o), "no changes\n", "{}", stderr(&o));
}

#[test]
fn up_uploads_files_and_warns_about_missing_bind_folders() {
    let mock = mock(&[]);
    let state = tempfile::tempdir().unwrap();
    // A copy, so the secret can change; the folder name is the app name.
    let dir = state.path().join("uploads");
    for sub in ["secrets", "config"] {
        std::fs::create_dir_all(dir.join(sub)).unwrap();
    }
    for f in [
        "compose.yaml",
        ".env",
        "secrets/db_password.txt",
        "config/app.toml",
    ] {
        std::fs::copy(fixture("uploads").join(f), dir.join(f)).unwrap();
    }
    let up = |extra: &[&str]| {
        let mut a = vec![
            "up",
            "--dataset-root",
            "/mnt/tank/apps",
            "--progress",
            "none",
        ];
        a.extend_from_slice(extra);
        compose(Some(&mock), state.path(), &dir, &a)
    };
    let o = up(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let e = stderr(&o);
    assert!(
        e.contains("warning: bind folder /mnt/tank/apps/uploads/data does not exist on the NAS"),
        "{e}"
    );
    assert!(
        e.contains("uploaded /mnt/tank/apps/uploads/secrets/db_password.txt"),
        "{e}"
    );
    assert!(!e.contains("correct-horse") && !stdout(&o).contains("correct-horse"));
    // Unchanged: nothing uploaded, the folder made on request.
    let o = up(&["--create-dirs"]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(stdout(&o), "uploads: unchanged, RUNNING\n");
    assert_eq!(
        stderr(&o),
        "midscript: created /mnt/tank/apps/uploads/data on the NAS\n"
    );
    // A changed secret: a masked one-line diff, then one upload and an update.
    std::fs::write(dir.join("secrets/db_password.txt"), "n3w-secret-value").unwrap();
    let o = compose(
        Some(&mock),
        state.path(),
        &dir,
        &["diff", "--dataset-root", "/mnt/tank/apps"],
    );
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    assert_eq!(
        stdout(&o),
        "~ x-midscript.files./mnt/tank/apps/uploads/secrets/db_password.txt: \"********\" -> \"********\"\n"
    );
    let o = up(&[]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    // The update's job id is shown as it starts (to `midscript job --attach` it if need be).
    assert_eq!(
        stderr(&o),
        "midscript: job 2 started\nmidscript: uploaded /mnt/tank/apps/uploads/secrets/db_password.txt\n"
    );
    assert!(
        stdout(&o).ends_with("uploads: updated, RUNNING\n"),
        "{}",
        stdout(&o)
    );
    assert!(!stdout(&o).contains("n3w-secret"), "{}", stdout(&o));
}
