//! The script runner against the built-in mock: every example in `scripts/` (snapshots of its
//! output and of its connection's traffic), the stdlib modules, and the error cases.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use midscript::client::{Client, JobProgress};
use midscript::compose::journal::Journal;
use midscript::mock::{MockConfig, MockServer};
use midscript::script::{self, Console, Outcome, RunOptions, Script};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::support::in_process;

/// Something to do when a script shows a line (stdout or job progress) containing a text.
#[derive(Clone, Default)]
enum Trigger {
    #[default]
    None,
    /// Cancel the run, as Ctrl-C does.
    Cancel(&'static str, CancellationToken),
    /// Wake a helper task.
    Notify(&'static str, Arc<Notify>),
}

/// Collects what a script shows: `out:` for stdout, `err:` for stderr, `progress:` for jobs.
#[derive(Default)]
struct TestConsole {
    lines: Mutex<Vec<String>>,
    trigger: Trigger,
    jobs_seen: Mutex<std::collections::HashSet<i64>>,
}

impl TestConsole {
    fn fire(&self, line: &str) {
        match &self.trigger {
            Trigger::Cancel(t, token) if line.contains(t) => token.cancel(),
            Trigger::Notify(t, n) if line.contains(t) => n.notify_one(),
            _ => {}
        }
    }
    fn push(&self, line: String) {
        self.fire(&line);
        if let Ok(mut l) = self.lines.lock() {
            l.push(line);
        }
    }
    fn text(&self) -> String {
        self.lines.lock().map(|l| l.join("\n")).unwrap_or_default()
    }
}

impl Console for TestConsole {
    fn out(&self, line: &str) {
        self.push(format!("out: {line}"));
    }
    fn err(&self, line: &str) {
        for l in line.lines() {
            self.push(format!("err: {l}"));
        }
    }
    fn job_progress(&self, method: &str, p: &JobProgress) {
        // Which intermediate states a waiter sees depends on timing: record the first report
        // of each job only (and the line itself, for the triggers).
        let first = self
            .jobs_seen
            .lock()
            .map(|mut s| s.insert(p.job_id))
            .unwrap_or(false);
        let line = progress_line(method, p);
        if first {
            self.push(format!("progress: {method} (job {}) started", p.job_id));
        }
        self.fire(&line);
    }
    fn job_started(&self, method: &str, job_id: i64) {
        if self
            .jobs_seen
            .lock()
            .map(|mut s| s.insert(job_id))
            .unwrap_or(false)
        {
            self.push(format!("progress: {method} (job {job_id}) started"));
        }
    }
    fn job_finished(&self, job_id: i64) {
        self.push(format!("progress: job {job_id} done"));
    }
}

/// `app.start (job 3): RUNNING 40% Starting`.
fn progress_line(method: &str, p: &JobProgress) -> String {
    let mut line = format!("{method} (job {}): {}", p.job_id, p.state);
    if let Some(pct) = p.percent {
        line.push_str(&format!(" {pct:.0}%"));
    }
    if let Some(d) = &p.description {
        line.push(' ');
        line.push_str(d);
    }
    line
}

/// What a run produced.
struct Run {
    outcome: Outcome,
    output: String,
    transcript: String,
}

impl Run {
    /// The snapshot text: outcome, output, then the script connection's traffic.
    fn snapshot(&self) -> String {
        format!(
            "outcome: {:?} (exit {})\n--- output\n{}\n--- traffic\n{}",
            self.outcome,
            self.outcome.exit_code(),
            self.output,
            self.transcript.trim_end()
        )
    }
}

/// A mock and one logged-in connection (c1) that scripts run on.
struct Harness {
    server: MockServer,
    client: Client,
    /// The deploy journal of the runs (never the developer's).
    state: tempfile::TempDir,
}

impl Harness {
    async fn start() -> Harness {
        Harness::with_config(MockConfig::for_tests()).await
    }

    async fn with_config(config: MockConfig) -> Harness {
        let server = MockServer::start(config).await.expect("mock starts");
        let client = login(&server).await;
        server.clear_transcript();
        Harness {
            server,
            client,
            state: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// The deploy journal the scripts record in.
    fn journal(&self) -> Journal {
        Journal::at(self.state.path())
    }

    /// Another logged-in connection (for setup and for changes made while a script runs).
    async fn second_client(&self) -> Client {
        login(&self.server).await
    }

    /// Run a setup script on its own connection; its traffic stays out of the snapshots.
    async fn prepare(&self, code: &str) {
        let client = self.second_client().await;
        let console = Arc::new(TestConsole::default());
        let mut options = RunOptions::new(console.clone());
        options.journal = Some(self.journal());
        let outcome = script::run(client.clone(), Script::inline(code), options).await;
        assert_eq!(
            outcome,
            Outcome::Success,
            "setup failed:\n{}",
            console.text()
        );
        client.close().await;
        self.server.clear_transcript();
    }

    async fn run_traced(&self, script: Script, args: &[&str], trigger: Trigger) -> Run {
        let cancel = match &trigger {
            Trigger::Cancel(_, token) => token.clone(),
            _ => CancellationToken::new(),
        };
        let console = Arc::new(TestConsole {
            trigger,
            ..TestConsole::default()
        });
        let mut options = RunOptions::new(console.clone());
        options.args = args.iter().map(|a| a.to_string()).collect();
        options.cancel = cancel;
        options.lib_dir = None;
        options.journal = Some(self.journal());
        let outcome = tokio::time::timeout(
            Duration::from_secs(20),
            script::run(self.client.clone(), script, options),
        )
        .await
        .expect("the script ends in time");
        let transcript = self.server.transcript().for_conn(1).to_string();
        Run {
            outcome,
            output: console.text(),
            transcript,
        }
    }

    async fn run_with(&self, script: Script, args: &[&str], _: Option<()>) -> Run {
        self.run_traced(script, args, Trigger::None).await
    }

    async fn run(&self, code: &str) -> Run {
        self.run_with(Script::inline(code), &[], None).await
    }
}

/// Logged in as the mock's first user.
async fn login(server: &MockServer) -> Client {
    in_process::connect(server, Some(in_process::password(server)))
        .await
        .expect("login")
}

/// Two custom apps, `nginx` running and `whoami` stopped.
const DEMO_APPS: &str = r#"
for name in ["nginx", "whoami"] {
    job("app.create", #{
        app_name: name, custom_app: true,
        custom_compose_config: #{ services: #{ web: #{ image: "nginx:1.27" } } }
    });
}
job("app.stop", "whoami");
"#;

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime")
}

/// Run one example the way its header describes, with what it needs around it.
async fn run_example(file: &str) -> String {
    let path = Path::new("scripts").join(file);
    let script = || Script::from_file(&path).expect("readable script");
    match file {
        "system-report.rhai" => {
            let h = Harness::start().await;
            h.prepare(DEMO_APPS).await;
            h.run_with(script(), &[], None).await.snapshot()
        }
        "set-password.rhai" => {
            let h = Harness::start().await;
            let ok = h
                .run_with(script(), &["truenas_admin", "n3w-Passw0rd"], None)
                .await;
            h.server.clear_transcript();
            let unknown = h.run_with(script(), &["nobody", "x"], None).await;
            h.server.clear_transcript();
            let usage = h.run_with(script(), &[], None).await;
            format!(
                "=== truenas_admin n3w-Passw0rd\n{}\n\n=== nobody x\n{}\n\n=== (no arguments)\n{}",
                ok.snapshot(),
                unknown.snapshot(),
                usage.snapshot()
            )
        }
        "watch-apps.rhai" => {
            let h = Harness::start().await;
            h.prepare(DEMO_APPS).await;
            let driver = h.second_client().await;
            let trigger = Arc::new(tokio::sync::Notify::new());
            let t = trigger.clone();
            let drive = tokio::spawn(async move {
                t.notified().await;
                driver
                    .job("app.stop", vec!["nginx".into()], |_| {})
                    .await
                    .expect("stop");
                driver
                    .job("app.start", vec!["whoami".into()], |_| {})
                    .await
                    .expect("start");
            });
            let run = h
                .run_traced(script(), &["4"], Trigger::Notify("watching", trigger))
                .await;
            tokio::time::timeout(Duration::from_secs(5), drive)
                .await
                .expect("the driver ends")
                .expect("driver");
            run.snapshot()
        }
        "cleanup-stopped-apps.rhai" => {
            let h = Harness::start().await;
            h.prepare(DEMO_APPS).await;
            let dry = h.run_with(script(), &[], None).await;
            h.server.clear_transcript();
            let yes = h.run_with(script(), &["--yes"], None).await;
            h.server.clear_transcript();
            let again = h.run_with(script(), &["--yes"], None).await;
            format!(
                "=== (dry run)\n{}\n\n=== --yes\n{}\n\n=== --yes again\n{}",
                dry.snapshot(),
                yes.snapshot(),
                again.snapshot()
            )
        }
        "deploy.rhai" => {
            let h = Harness::start().await;
            let first = h.run_with(script(), &[], None).await;
            h.server.clear_transcript();
            let second = h.run_with(script(), &[], None).await;
            assert!(
                first.output.contains("whoami: created, RUNNING"),
                "{}",
                first.output
            );
            assert!(
                second.output.contains("whoami: unchanged"),
                "{}",
                second.output
            );
            for method in ["app.create", "app.update", "app.start"] {
                assert!(
                    !second
                        .transcript
                        .contains(&format!("\"method\":\"{method}\"")),
                    "the second deploy sent {method}:\n{}",
                    second.transcript
                );
            }
            format!(
                "=== (first run)\n{}\n\n=== (second run: nothing to send)\n{}",
                first.snapshot(),
                second.snapshot()
            )
        }
        // It talks to a SysMedic agent, not to TrueNAS: `tests/ws.rs` runs it against one. Here,
        // without its URL, it says how to use it and sends nothing to the NAS.
        "sysmedic-watch.rhai" => {
            let h = Harness::start().await;
            let run = h.run_with(script(), &[], None).await;
            assert_eq!(run.outcome.exit_code(), 64);
            run.snapshot()
        }
        other => panic!("scripts/{other} has no test: add it to run_example in tests/script.rs"),
    }
}

#[test]
fn example_scripts() {
    let rt = rt();
    in_process::plain_settings().bind(|| {
        insta::glob!("../scripts", "*.rhai", |path| {
            let file = path
                .file_name()
                .and_then(|f| f.to_str())
                .expect("file name");
            let snapshot = rt.block_on(run_example(file));
            insta::assert_snapshot!(snapshot);
        });
    });
}

// ---- error cases -------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parse_error() {
    let h = Harness::start().await;
    let run = h
        .run("let apps = call(\"app.query\");\nfor app in apps {\n    print(app.name\n}\n")
        .await;
    assert_eq!(run.outcome.exit_code(), 2);
    insta::assert_snapshot!(run.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uncaught_server_error() {
    let h = Harness::start().await;
    let run = h
        .run("let app = call(\"app.get_instance\", \"nope\");\nprint(app.state);\n")
        .await;
    assert_eq!(run.outcome.exit_code(), 1);
    insta::assert_snapshot!(run.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn caught_validation_error() {
    let h = Harness::start().await;
    let run = h
        .run(
            r#"
try {
    call("user.update", 1, #{ password: 12345 });
} catch (err) {
    print(`kind=${err.kind} code=${err.code} errname=${err.errname} method=${err.method} job_id=${err.job_id}`);
    print(`message=${err.message}`);
    for v in err.validation {
        print(`${v.attribute}: ${v.message} (${v.errno})`);
    }
    print(`extra=${err.extra}`);
}
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Success);
    insta::assert_snapshot!(run.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_method() {
    let h = Harness::start().await;
    let run = h
        .run("try { call(\"no.such_method\", 1) } catch (e) { print(`${e.code} ${e.summary}`) }\ncall(\"pool.qurey\");\n")
        .await;
    assert_eq!(run.outcome, Outcome::Failed(script::FailureKind::Server));
    insta::assert_snapshot!(run.snapshot());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_job() {
    let h = Harness::start().await;
    let run = h
        .run(
            r#"
try {
    job("app.start", "ghost");
} catch (err) {
    print(`caught: kind=${err.kind} job_id=${err.job_id} errname=${err.errname} reason=${err.reason}`);
}
job("app.create", #{ app_name: "Bad_Name", custom_app: true, custom_compose_config: #{} });
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Failed(script::FailureKind::Server));
    // Job events race with the error report, so only the output is a snapshot here.
    insta::assert_snapshot!(run.output);
    assert!(
        run.transcript.contains(r#""method":"app.create""#),
        "{}",
        run.transcript
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callback_that_throws() {
    let h = Harness::start().await;
    h.prepare(DEMO_APPS).await;
    let run = h
        .run(
            r#"let seen = 0;
subscribe("app.query", |ev| {
    seen += 1;
    if ev.fields.state == "STOPPING" {
        throw `unexpected stop of ${ev.id}`;
    }
});
job("app.stop", "nginx");
print("not reached");
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Failed(script::FailureKind::Runtime));
    let output: Vec<&str> = run
        .output
        .lines()
        .filter(|l| !l.starts_with("progress:"))
        .collect();
    insta::assert_snapshot!(output.join("\n"));
    assert!(
        run.transcript.contains(r#""method":"core.unsubscribe""#),
        "{}",
        run.transcript
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_times_out() {
    let h = Harness::start().await;
    let run = h
        .run(
            r#"try {
    wait_for("app.query", |ev| ev.id == "nginx", 50);
} catch (err) {
    print(`caught: ${err.kind} ${err.errname}: ${err.summary}`);
}
let ev = wait_for("alert.list", 50);
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Failed(script::FailureKind::Runtime));
    insta::assert_snapshot!(run.snapshot());
}

/// Run `code` against the demo apps with jobs that take 150 ms a step, and press Ctrl-C once
/// the `whoami` app is starting.
async fn cancelled_while_whoami_starts(code: &str) -> (Harness, Run) {
    let config = MockConfig {
        job_step: Duration::from_millis(150),
        ..MockConfig::for_tests()
    };
    let h = Harness::with_config(config).await;
    h.prepare(DEMO_APPS).await;
    let token = CancellationToken::new();
    let run = h
        .run_traced(
            Script::inline(code.to_owned()),
            &[],
            Trigger::Cancel("Starting 'whoami' app", token),
        )
        .await;
    (h, run)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_run_aborts_the_job_it_waits_for() {
    let (_h, run) = cancelled_while_whoami_starts(
        "print(\"starting\");\njob(\"app.start\", \"whoami\");\nprint(\"not reached\");\n",
    )
    .await;
    assert_eq!(run.outcome, Outcome::Cancelled);
    assert_eq!(run.outcome.exit_code(), 130);
    let job_id = run
        .output
        .lines()
        .find_map(|l| l.strip_prefix("err: cancelling: aborting job "))
        .and_then(|rest| rest.split(' ').next())
        .expect("the job is aborted");
    assert!(!run.output.contains("not reached"), "{}", run.output);
    assert!(run.output.ends_with("err: cancelled"), "{}", run.output);
    let abort = format!(r#""method":"core.job_abort","params":[{job_id}]"#);
    assert!(run.transcript.contains(&abort), "{}", run.transcript);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_sleep_stops_at_once() {
    let h = Harness::start().await;
    let token = CancellationToken::new();
    let started = std::time::Instant::now();
    let script = Script::inline("print(\"sleeping\");\nsleep(60000);\n");
    let run = h
        .run_traced(script, &[], Trigger::Cancel("sleeping", token))
        .await;
    assert_eq!(run.outcome, Outcome::Cancelled);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_busy_loop_stops() {
    let h = Harness::start().await;
    let token = CancellationToken::new();
    let script = Script::inline("print(\"looping\");\nlet n = 0;\nloop { n += 1; }\n");
    let run = h
        .run_traced(script, &[], Trigger::Cancel("looping", token))
        .await;
    assert_eq!(run.outcome, Outcome::Cancelled);
}

// ---- features ----------------------------------------------------------------------------

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_login_per_run() {
    let server = MockServer::start(MockConfig::for_tests())
        .await
        .expect("mock");
    let client = login(&server).await;
    let console = Arc::new(TestConsole::default());
    let code = "for i in 0..5 { call(\"core.ping\"); }\njob(\"app.create\", #{ app_name: \"a\", custom_app: true, custom_compose_config: #{ services: #{ w: #{ image: \"x:1\" } } } });";
    let outcome = script::run(
        client.clone(),
        Script::inline(code),
        RunOptions::new(console.clone()),
    )
    .await;
    assert_eq!(outcome, Outcome::Success, "{}", console.text());
    let transcript = server.transcript().to_string();
    assert_eq!(transcript.matches("auth.login").count(), 1, "{transcript}");
    assert_eq!(transcript.matches(" open ").count(), 1, "{transcript}");
    assert_eq!(transcript.matches(r#""method":"core.ping""#).count(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bindings_and_helpers() {
    let h = Harness::start().await;
    h.prepare(DEMO_APPS).await;
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("data.json"),
        r#"{"n": 1.0, "big": 9007199254740993, "none": null, "s": "é"}"#,
    )
    .expect("write");
    std::fs::write(
        dir.path().join("data.yaml"),
        "base: &b {a: 1}\nitem:\n  <<: *b\n  b: [x, y, on, 0755, true, 1.5]\n",
    )
    .expect("write");
    std::fs::write(
        dir.path().join("helper.rhai"),
        "/// Double it.\nfn twice(x) { x * 2 }\n",
    )
    .expect("write");
    let script_path = dir.path().join("main.rhai");
    std::fs::write(
        &script_path,
        r#"#!/usr/bin/env midscript
import "helper" as helper;
import "apps" as apps;
import "jobs" as jobs;
import "users" as users;
print(`args=${args} twice=${helper::twice(21)}`);
let data = json::parse(read_file("data.json"));
print(`json: ${json::stringify(data)} none_is_unit=${data.none == ()}`);
print(`yaml: ${json::stringify(yaml::parse(read_file("data.yaml")).item)}`);
print(`env: ${env("CARGO_PKG_NAME")} ${env("MIDSCRIPT_SURELY_UNSET") == ()}`);
print(`time: ${type_of(now())} ${iso_time(0)} ${iso_time(#{"$date": 1000})}`);
print(`apps: ${apps::names_in_state("RUNNING")} ${apps::exists("nginx")} ${apps::exists("nope")}`);
print(`get: ${apps::get("whoami").state}`);
apps::start("whoami");
print(`waited: ${apps::wait_state("whoami", "RUNNING", 5000).state}`);
let logs = apps::logs("nginx", 2);
print(`logs: ${logs.keys()} ${logs.web.len()}`);
print(`user: ${users::get("truenas_admin").uid} jobs: ${jobs::running().len()} ${jobs::get(99999)}`);
let id = job_start("app.stop", "nginx");
print(`job_start: ${type_of(id)} wait_job: ${wait_job(id)} get: ${jobs::get(id).state}`);
print(`rpc_raw: ${rpc_raw("core.ping", [])} call(fp): ${call(|x| x + 1, 1)}`);
let seen = [];
let sub = subscribe("app.query", |ev| seen.push(`${ev.msg} ${ev.id} ${ev.fields.state}`));
print(`handle: ${sub} ${sub.name}`);
apps::start("nginx");
sub.cancel();
print(`seen first: ${seen[0]}`);
let stream = events("app.query");
print("pulling");
for ev in stream {
    print(`pulled: ${ev.keys()}`);
    break;
}
"#,
    )
    .expect("write");
    // `events` needs something to happen: stop whoami from another connection meanwhile.
    let driver = h.second_client().await;
    let trigger = Arc::new(Notify::new());
    let t = trigger.clone();
    let drive = tokio::spawn(async move {
        t.notified().await;
        driver
            .job("app.stop", vec!["whoami".into()], |_| {})
            .await
            .expect("stop");
    });
    let script = Script::from_file(&script_path).expect("script");
    let run = h
        .run_traced(script, &["a", "--b"], Trigger::Notify("pulling", trigger))
        .await;
    tokio::time::timeout(Duration::from_secs(5), drive)
        .await
        .expect("driver ends")
        .expect("driver");
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    let output: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.starts_with("out:"))
        .collect();
    insta::assert_snapshot!(output.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn strict_variables_and_properties() {
    let h = Harness::start().await;
    let run = h
        .run("let info = call(\"system.info\");\nprint(inof.hostname);\n")
        .await;
    assert_eq!(run.outcome, Outcome::Failed(script::FailureKind::Parse));
    assert!(
        run.output.contains("Undefined variable: inof"),
        "{}",
        run.output
    );
    assert!(
        run.transcript.is_empty(),
        "nothing is sent before the script parses"
    );
    let run = h
        .run("let info = call(\"system.info\");\nprint(info.hostnme);\n")
        .await;
    assert_eq!(run.outcome, Outcome::Failed(script::FailureKind::Runtime));
    assert!(run.output.contains("hostnme"), "{}", run.output);
    assert!(run.output.contains("-e:2:12"), "{}", run.output);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn values_that_are_not_json_are_refused() {
    let h = Harness::start().await;
    let run = h.run("call(\"core.ping\", #{ f: || 1 });").await;
    assert_eq!(run.outcome, Outcome::Failed(script::FailureKind::Runtime));
    assert!(
        run.output
            .contains("core.ping: argument 1: a function pointer cannot be sent as JSON (at f)"),
        "{}",
        run.output
    );
    assert!(run.transcript.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_inside_stdlib_modules_show_both_places() {
    let h = Harness::start().await;
    let run = h
        .run("import \"users\" as users;\nusers::set_password(\"ghost\", \"x\");\n")
        .await;
    insta::assert_snapshot!(run.output);
}

// ---- the binary --------------------------------------------------------------------------

#[test]
fn the_binary_runs_the_system_report_against_its_mock() {
    let out = crate::support::standalone::run(&[
        "--mock",
        "--empty",
        "run",
        "scripts/system-report.rhai",
    ]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::standalone::stderr(&out)
    );
    let text = crate::support::standalone::stdout(&out);
    assert!(text.starts_with("System report for truenas\n"), "{text}");
    assert!(text.contains("Apps (0)"), "{text}");
}

#[test]
fn the_binary_takes_scripts_as_shorthands_and_keeps_their_arguments() {
    let out =
        crate::support::standalone::run(&["--mock", "scripts/cleanup-stopped-apps.rhai", "--yes"]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::standalone::stderr(&out)
    );
    assert_eq!(
        crate::support::standalone::stdout(&out),
        "no stopped apps\n"
    );
    let out = crate::support::standalone::run(&["--mock", "-e", "print(args); exit(7)", "-v", "x"]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(
        crate::support::standalone::stdout(&out),
        "[\"-v\", \"x\"]\n"
    );
    let out = crate::support::standalone::run(&["--mock", "-e", "let x = ;"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        crate::support::standalone::stderr(&out).contains(" --> -e:1:9"),
        "{}",
        crate::support::standalone::stderr(&out)
    );
    let out =
        crate::support::standalone::run(&["--mock", "-e", "call(\"app.get_instance\", \"nope\")"]);
    assert_eq!(out.status.code(), Some(1));
    let out = crate::support::standalone::run(&["--mock", "-e", "call(\"pool.qurey\")"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        crate::support::standalone::stderr(&out).contains("  = help: did you mean pool.query"),
        "{}",
        crate::support::standalone::stderr(&out)
    );
}

#[test]
fn user_modules_come_from_the_lib_folder() {
    let sandbox = crate::support::standalone::Sandbox::new();
    sandbox.write(
        "config/midscript/lib/greet.rhai",
        "/// Greet.\nfn hello(n) { `hello ${n}` }\n",
    );
    let script = sandbox.write(
        "work/s.rhai",
        "import \"greet\" as g;\nprint(g::hello(call(\"system.info\").hostname));\n",
    );
    let out = sandbox.run(&["--mock", "run", script.to_str().expect("utf-8 path")]);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        crate::support::standalone::stderr(&out)
    );
    assert_eq!(crate::support::standalone::stdout(&out), "hello truenas\n");
}

// ---- compose from scripts ------------------------------------------------------------------

/// `import "compose"`: config (secrets masked), diff, up twice (the second sends nothing),
/// a crash as a catchable error map with the logs, and option mistakes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_module() {
    let mut config = MockConfig::for_tests();
    config.crash_apps = vec!["crashy".into()];
    let h = Harness::with_config(config).await;
    let run = h
        .run(
            r#"
import "compose" as compose;
let c = compose::config("tests/fixtures/compose/inventory", #{ dataset_root: "/mnt/tank/apps" });
let text = json::stringify(c.document);
print(`config: ${c.name}, ${c.mounts.len()} mount(s), secret shown: ${text.contains("s3cr3t")}, masked: ${text.contains("***")}`);
let d = compose::diff("scripts/stacks/whoami");
print(`diff before: app=${d.app} changed=${d.changed} exists=${d.exists}`);
let r = compose::up("scripts/stacks/whoami", #{ timeout_ms: 10000 });
print(`up: ${r.action} ${r.state} ${compose::portals(r)}`);
print("--- second up");
r = compose::up("scripts/stacks/whoami");
print(`again: ${r.action} ${r.state} jobs=${r.jobs.len()}`);
print(`diff after: changed=${compose::diff("scripts/stacks/whoami").changed}`);
print("--- crash");
try {
    compose::up("scripts/stacks/whoami", #{ name: "crashy", timeout_ms: 10000 });
} catch (e) {
    print(`${e.kind}: ${e.summary}`);
    for c in e.extra.crashed { print(`${c.service} ${c.state} lines=${c.lines.len()}`); }
}
try { compose::up("scripts/stacks/whoami", #{ wiat: false }); } catch (e) { print(`${e.kind}: ${e.summary}`); }
try { compose::config("tests/fixtures/compose/missing-var"); } catch (e) { print(`${e.kind}`); }
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    let out: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.starts_with("out:"))
        .collect();
    insta::assert_snapshot!(out.join("\n"));
    // Between the second up and the crash, only reads: no create, update or start.
    let second = run
        .transcript
        .split(r#""method":"app.config""#)
        .nth(1)
        .and_then(|rest| rest.split(r#""app_name":"crashy""#).next())
        .expect("the second up read app.config");
    for method in ["app.create", "app.update", "app.start"] {
        assert!(
            !second.contains(&format!("\"method\":\"{method}\"")),
            "{second}"
        );
    }
}

// ---- faults (issue 12) -------------------------------------------------------------------

/// A `subscribe` callback slower than the event rate: the events are always ready, yet the
/// reply `call` waits for and the timer of `sleep` still win (before the fix both waited
/// forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_callback_does_not_starve_the_call_it_waits_on() {
    let h = Harness::start().await;
    // Ticks every 10 ms (two deterministic "seconds"); the callback busies itself longer.
    let code = r#"
        let s = subscribe("reporting.realtime:{\"interval\": 2}", |ev| {
            let t = now(); while now() - t < 25 {}
        });
        sleep(30);
        sleep(30);
        print(call("core.ping"));
        s.cancel();
    "#;
    let run = h.run(code).await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    assert!(run.output.contains("out: pong"), "{}", run.output);
}

/// More jobs started than the client remembers (1,024) and the server keeps (1,000) before
/// the script waits for any: every result is still there. Before the fix the first ones ended
/// with "job N is unknown to the server" although they had all succeeded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn results_of_more_jobs_than_the_server_keeps_are_not_lost() {
    let h = Harness::start().await;
    // Each `core.job_wait` job waits for the one before it (the first for an app.create), so
    // every job's target is still on the server and every job succeeds (`wait_job` throws
    // otherwise).
    let code = r#"
        let prev = job_start("app.create", #{ app_name: "a", custom_app: true,
            custom_compose_config: #{ services: #{ w: #{ image: "x:1" } } } });
        let ids = [];
        for i in 0..1100 { prev = job_start("core.job_wait", prev); ids.push(prev); }
        let ok = 0;
        for id in ids { wait_job(id); ok += 1; }
        print(`${ok} of ${ids.len()}`);
        try { wait_job(1000000); } catch (e) { print(e.message); }
    "#;
    let run = h.run(code).await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    assert!(run.output.contains("out: 1100 of 1100"), "{}", run.output);
    assert!(
        run.output.contains("out: wait_job: the server has no job 1000000: there never was one, or it was forgotten (the server keeps only its 1,000 most recent jobs)"),
        "{}",
        run.output
    );
}

/// `read_file` of a FIFO whose writer sends nothing blocks in the read itself; Ctrl-C still
/// ends the run (before the fix it waited for the writer forever).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_file_that_hangs_is_interruptible() {
    let h = Harness::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let fifo = dir.path().join("fifo");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo runs");
    assert!(made.success());
    let token = CancellationToken::new();
    // Opening the FIFO for writing returns once the script has opened it for reading: then
    // the script is blocked in its read, and Ctrl-C comes.
    let writer = {
        let (fifo, token) = (fifo.clone(), token.clone());
        std::thread::spawn(move || {
            let w = std::fs::OpenOptions::new().write(true).open(&fifo);
            token.cancel();
            w
        })
    };
    let script = Script::inline(format!("read_file({:?});\n", fifo.display().to_string()));
    let run = h
        .run_traced(script, &[], Trigger::Cancel("(never shown)", token))
        .await;
    assert_eq!(run.outcome, Outcome::Cancelled, "{}", run.output);
    drop(writer.join());
}

/// On TrueNAS 27 an app whose metadata the server cannot read is in `ERROR`, a state it does
/// not leave by itself: `apps::wait_state` throws an `app_error` with the reason instead of
/// waiting out its timeout, and the state can be queried like any other.
#[tokio::test]
async fn apps_wait_state_stops_at_an_app_in_error() {
    let mut config = MockConfig::for_tests();
    config.version = midscript::mock::ServerVersion::V27_0;
    let h = Harness::with_config(config).await;
    h.prepare(
        r#"job("app.create", #{app_name: "web1", custom_app: true,
            custom_compose_config: #{services: #{web: #{image: "nginx:1.27"}}}});"#,
    )
    .await;
    assert!(
        h.server
            .set_app_metadata_error("web1", Some("METADATA_MISSING"))
    );
    let run = h
        .run(
            r#"import "apps" as apps;
try {
    apps::wait_state("web1", "RUNNING", 60000);
    print("no error");
} catch (err) {
    print(`${err.kind} ${err.error_reason} ${err.message}`);
}
print(`in error: ${apps::names_in_state("ERROR")} null version: ${apps::get("web1").version == ()}`);
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    assert!(
        run.output
            .contains("app_error METADATA_MISSING web1 is in the ERROR state (METADATA_MISSING)"),
        "{}",
        run.output
    );
    assert!(
        run.output
            .contains("in error: [\"web1\"] null version: true"),
        "{}",
        run.output
    );
}

/// A deployment made from a script is journaled like `midscript compose up`, and
/// `compose::rollback` redeploys the previous document; mistakes are error maps.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compose_rollback_undoes_a_script_deployment() {
    let h = Harness::start().await;
    let run = h
        .run(
            r#"
import "compose" as compose;
let opts = #{ dataset_root: "/mnt/tank/apps", timeout_ms: 10000 };
let a = compose::up("tests/fixtures/compose/inventory", opts);
let newer = opts;
newer.vars = #{ WEB_TAG: "1.5.0" };
let b = compose::up("tests/fixtures/compose/inventory", newer);
let r = compose::rollback("inventory", #{ timeout_ms: 10000 });
print(`${a.action} (uploaded ${a.uploaded.len()}, missing ${a.missing_dirs.len()}), ${b.action}, ${r.action} to entry ${r.seq}`);
for s in r.diff.services { for c in s.changes { print(`${s.service}: ${c.path} ${c.old} -> ${c["new"]}`); } }
try { compose::rollback("nothing-here"); } catch (e) { print(`${e.kind}: ${e.summary.sub_string(0, 45)}`); }
try { compose::rollback("inventory", #{ dataset_root: "/x" }); } catch (e) { print(`${e.kind}: ${e.summary}`); }
try { compose::rollback("Bad_Name"); } catch (e) { print(`${e.kind}`); }
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    let out: Vec<&str> = run
        .output
        .lines()
        .filter(|l| l.starts_with("out:"))
        .collect();
    assert_eq!(
        out,
        [
            "out: created (uploaded 1, missing 1), updated, updated to entry 1",
            "out: web: image ghcr.io/example/inventory-web:1.5.0 -> ghcr.io/example/inventory-web:1.4.2",
            "out: deploy: nothing to roll back to: the deploy journal (",
            "out: argument: compose_rollback: options: only wait and timeout_ms apply to a rollback",
            "out: compose",
        ]
    );
    let actions: Vec<String> = h
        .journal()
        .entries(&h.server.url(), "inventory")
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    assert_eq!(actions, ["created", "updated", "rolled_back"]);
    let v1 = midscript::compose::resolve(&midscript::compose::Options {
        project_dir: Some("tests/fixtures/compose/inventory".into()),
        dataset_root: Some("/mnt/tank/apps".into()),
        environment: Some(Default::default()),
        ..Default::default()
    })
    .unwrap();
    let running = h
        .client
        .call("app.config", vec![serde_json::json!("inventory")])
        .await
        .unwrap();
    assert_eq!(running, v1.document);
}

// ---- call_all and wait_jobs ----------------------------------------------------------------

/// The most requests of connection 1 that were sent and not yet answered, over its transcript.
fn most_in_flight(server: &MockServer) -> usize {
    use midscript::mock::TranscriptEvent;
    let (mut now, mut most) = (0usize, 0usize);
    for line in server.transcript().for_conn(1).lines {
        match line.event {
            TranscriptEvent::ClientFrame(f) if f.contains("\"method\"") => now += 1,
            TranscriptEvent::ServerFrame(f)
                if f.contains("\"result\"") || f.contains("\"error\"") =>
            {
                now = now.saturating_sub(1)
            }
            _ => {}
        }
        most = most.max(now);
    }
    most
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_all_returns_results_in_order_with_errors_in_place() {
    let h = Harness::start().await;
    let run = h
        .run(
            r#"
let r = call_all([
    ["core.ping"],
    ["no.such_method", 1],
    ["system.info"],
    ["user.update", 1, #{ password: 5 }],
    ["filesystem.listdir", "/nonexistent-dir"],   // not in the mock: ENOSYS
]);
print(`len=${r.len()} 0=${r[0]} error0=${is_error(r[0])}`);
print(`1: error=${is_error(r[1])} kind=${r[1].kind} code=${r[1].code}`);
print(`2: error=${is_error(r[2])} hostname=${r[2].hostname}`);
print(`3: error=${is_error(r[3])} kind=${r[3].kind} attr=${r[3].validation[0].attribute}`);
print(`4: error=${is_error(r[4])} kind=${r[4].kind} errname=${r[4].errname}`);
print(`empty=${call_all([])}`);
try { call("no.such_method") } catch (e) { print(`thrown is_error=${is_error(e)}`) }
print(`plain map is_error=${is_error(#{ kind: "server", error: "x" })}`);
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    let out = &run.output;
    for want in [
        "out: len=5 0=pong error0=false",
        "out: 1: error=true kind=server code=-32601",
        "out: 2: error=false hostname=truenas",
        "out: 3: error=true kind=validation attr=user_update.password",
        "out: 4: error=true kind=server errname=ENOSYS",
        "out: empty=[]",
        "out: thrown is_error=true",
        "out: plain map is_error=false",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_all_refuses_a_bad_batch_naming_the_place_before_sending() {
    let h = Harness::start().await;
    for (code, want) in [
        (
            "call_all(\"core.ping\")",
            "call_all: expected a list of calls such as",
        ),
        (
            "call_all([[\"core.ping\"], \"system.info\"])",
            "call_all: call 2: expected a list [method, args..], not a string",
        ),
        (
            "call_all([[\"core.ping\"], []])",
            "call_all: call 2: the method name is missing (an empty list)",
        ),
        (
            "call_all([[5, 1]])",
            "call_all: call 1: the method name must be a string, not a i64",
        ),
        (
            "call_all([[\"core.ping\"], [\"core.ping\", 1, || 1]])",
            "call_all: call 2 (core.ping): argument 2: a function pointer cannot be sent as JSON",
        ),
        (
            "wait_jobs(5)",
            "wait_jobs: expected a list of job ids, not a i64",
        ),
        (
            "wait_jobs([1, \"two\"])",
            "wait_jobs: job 2: expected a job id (an int), not a string",
        ),
    ] {
        let run = h.run(&format!("{code};\n")).await;
        assert_eq!(
            run.outcome,
            Outcome::Failed(script::FailureKind::Runtime),
            "{code}"
        );
        assert!(
            run.output.contains(want),
            "{code}: missing {want:?} in:\n{}",
            run.output
        );
        assert!(
            run.output.contains("-e:1:1"),
            "{code}: no place in:\n{}",
            run.output
        );
        assert!(run.transcript.is_empty(), "{code}: sent {}", run.transcript);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn call_all_keeps_many_calls_in_flight_but_never_more_than_twenty() {
    let config = MockConfig {
        latency: Duration::from_millis(20),
        ..MockConfig::for_tests()
    };
    let h = Harness::with_config(config).await;
    let run = h
        .run("let batch = [];\nfor i in 0..45 { batch.push([\"core.ping\"]); }\nlet r = call_all(batch);\nprint(`${r.len()} ${r.filter(|x| x == \"pong\").len()}`);\n")
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    assert!(run.output.contains("out: 45 45"), "{}", run.output);
    let most = most_in_flight(&h.server);
    assert!(
        (2..=20).contains(&most),
        "{most} calls were in flight at once"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_jobs_waits_for_jobs_together_with_errors_in_place() {
    let h = Harness::start().await;
    h.prepare(DEMO_APPS).await;
    let run = h
        .run(
            r#"
let a = job_start("app.stop", "nginx");
let b = job_start("app.start", "ghost");
let c = job_start("app.start", "whoami");
let r = wait_jobs([a, b, c, 999999]);
print(`len=${r.len()}`);
print(`0: error=${is_error(r[0])}`);
print(`1: error=${is_error(r[1])} kind=${r[1].kind} job_id=${r[1].job_id == b}`);
print(`2: error=${is_error(r[2])}`);
print(`3: error=${is_error(r[3])} kind=${r[3].kind} ${r[3].summary}`);
print(`states: ${call("app.get_instance", "nginx").state}`);
print(`none=${wait_jobs([])}`);
"#,
        )
        .await;
    assert_eq!(run.outcome, Outcome::Success, "{}", run.output);
    let out = &run.output;
    for want in [
        "out: len=4",
        "out: 0: error=false",
        "out: 1: error=true kind=validation job_id=true",
        "out: 2: error=false",
        "out: 3: error=true kind=argument wait_jobs: the server has no job 999999",
        "out: states: STOPPED",
        "out: none=[]",
    ] {
        assert!(out.contains(want), "missing {want:?} in:\n{out}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelled_wait_jobs_aborts_the_jobs_still_running() {
    let (_h, run) = cancelled_while_whoami_starts(
        "let ids = [job_start(\"app.start\", \"whoami\"), job_start(\"app.stop\", \"nginx\")];\nprint(\"waiting\");\nwait_jobs(ids);\nprint(\"not reached\");\n",
    )
    .await;
    assert_eq!(run.outcome, Outcome::Cancelled, "{}", run.output);
    assert!(!run.output.contains("not reached"), "{}", run.output);
    assert_eq!(
        run.output.matches("cancelling: aborting job").count(),
        2,
        "{}",
        run.output
    );
    assert_eq!(
        run.transcript.matches("core.job_abort").count(),
        2,
        "{}",
        run.transcript
    );
}
