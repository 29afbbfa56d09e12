//! The script runner against the built-in mock: every example in `scripts/` (snapshots of its
//! output and of the wire traffic), the stdlib modules, and the error cases.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use midscript::client::{Client, ConnectOptions, Credentials, JobProgress, Secret};
use midscript::mock::{MockConfig, MockServer, TEST_PASSWORD};
use midscript::script::{self, Console, Outcome, RunOptions, Script, progress_line};
use tokio_util::sync::CancellationToken;

/// Collects what a script shows: `out:` for stdout, `err:` for stderr, `progress:` for jobs.
#[derive(Default)]
struct TestConsole {
    lines: Mutex<Vec<String>>,
    /// Cancel this token when the script prints this line (to test Ctrl-C deterministically).
    cancel_on: Option<(String, CancellationToken)>,
}

impl TestConsole {
    fn push(&self, line: String) {
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
        if let Some((trigger, token)) = &self.cancel_on
            && line == trigger
        {
            token.cancel();
        }
    }
    fn err(&self, line: &str) {
        for l in line.lines() {
            self.push(format!("err: {l}"));
        }
    }
    fn job_progress(&self, method: &str, p: &JobProgress) {
        self.push(format!("progress: {}", progress_line(method, p)));
    }
    fn job_finished(&self, job_id: i64) {
        self.push(format!("progress: job {job_id} done"));
    }
}

/// What a run produced.
struct Run {
    outcome: Outcome,
    output: String,
    transcript: String,
}

impl Run {
    /// The snapshot text: outcome, output, then the traffic.
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

struct Harness {
    server: MockServer,
    client: Client,
}

impl Harness {
    async fn start() -> Harness {
        Harness::with_config(MockConfig::for_tests()).await
    }

    async fn with_config(config: MockConfig) -> Harness {
        let server = MockServer::start(config).await.expect("mock starts");
        let mut options = ConnectOptions::new(server.url());
        options.credentials = Some(Credentials::Password {
            username: "truenas_admin".into(),
            password: Secret::new(TEST_PASSWORD),
            otp: None,
            otp_prompt: None,
        });
        let client = Client::connect(options).await.expect("login");
        Harness { server, client }
    }

    /// Run a prepared setup script first (its traffic is left out of the snapshot).
    async fn prepare(&self, code: &str) {
        let run = self.run_with(Script::inline(code), &[], None).await;
        assert_eq!(
            run.outcome,
            Outcome::Success,
            "setup failed:\n{}",
            run.output
        );
        self.server.clear_transcript();
    }

    async fn run_with(&self, script: Script, args: &[&str], cancel_on: Option<&str>) -> Run {
        let cancel = CancellationToken::new();
        let console = Arc::new(TestConsole {
            lines: Mutex::default(),
            cancel_on: cancel_on.map(|t| (t.to_owned(), cancel.clone())),
        });
        let mut options = RunOptions::new(console.clone());
        options.args = args.iter().map(|a| a.to_string()).collect();
        options.cancel = cancel;
        options.lib_dir = None;
        let outcome = tokio::time::timeout(
            Duration::from_secs(20),
            script::run(self.client.clone(), script, options),
        )
        .await
        .expect("the script ends in time");
        Run {
            outcome,
            output: console.text(),
            transcript: self.server.transcript().to_string(),
        }
    }

    async fn run(&self, code: &str) -> Run {
        self.run_with(Script::inline(code), &[], None).await
    }
}

const DEMO_APPS: &str = r#"
for name in ["nginx", "whoami"] {
    job("app.create", #{
        app_name: name, custom_app: true,
        custom_compose_config: #{ services: #{ web: #{ image: "nginx:1.27" } } }
    });
}
job("app.stop", "whoami");
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn smoke() {
    let h = Harness::start().await;
    let run = h
        .run(r#"let info = call("system.info"); print(info.hostname); print(call("core.ping"));"#)
        .await;
    println!("{}", run.snapshot());
    assert_eq!(run.outcome, Outcome::Success);
    let _ = Path::new(".");
    let _ = DEMO_APPS;
}
