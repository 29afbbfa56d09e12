//! Concurrency from scripts: 200 calls to a server that takes 10 ms per call (the in-process
//! mock told to, as a busy NAS does), made one after the other with `call` and all at once with
//! `call_all`, in the same run. Prints both rates and their ratio (the goal is at least 3×).
//!
//! Run with `cargo bench --bench call_all` (add `-- --calls N --latency-ms MS` to change them).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use midscript::client::{Client, ConnectOptions, Credentials, JobProgress, Secret, Trust};
use midscript::mock::{MockConfig, MockServer};
use midscript::script::{self, Console, Outcome, RunOptions, Script};

/// Keeps what the script printed, to check each case did all its calls.
#[derive(Default)]
struct Collect(Mutex<Vec<String>>);

impl Console for Collect {
    fn out(&self, line: &str) {
        self.0.lock().expect("lock").push(line.to_owned());
    }
    fn err(&self, line: &str) {
        self.0.lock().expect("lock").push(line.to_owned());
    }
    fn job_progress(&self, _: &str, _: &JobProgress) {}
    fn job_started(&self, _: &str, _: i64) {}
    fn job_finished(&self, _: i64) {}
}

/// Run `code` on `client`; the time it took. Panics unless it printed `expect`.
async fn timed(client: &Client, code: &str, expect: &str) -> Duration {
    let console = Arc::new(Collect::default());
    let start = Instant::now();
    let outcome = script::run(
        client.clone(),
        Script::inline(code),
        RunOptions::new(console.clone()),
    )
    .await;
    let took = start.elapsed();
    let printed = console.0.lock().expect("lock").join("\n");
    assert_eq!(outcome, Outcome::Success, "{printed}");
    assert_eq!(printed, expect, "the script did not make every call");
    took
}

fn main() {
    let (mut calls, mut latency_ms) = (200u64, 10u64);
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--calls" => calls = args.next().and_then(|n| n.parse().ok()).expect("--calls N"),
            "--latency-ms" => {
                latency_ms = args
                    .next()
                    .and_then(|n| n.parse().ok())
                    .expect("--latency-ms MS")
            }
            _ => {}
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let mut config = MockConfig::for_tests();
        config.record_transcript = false;
        config.latency = Duration::from_millis(latency_ms);
        let server = MockServer::start(config).await.expect("mock");
        let user = server.config().users[0].clone();
        let mut options = ConnectOptions::new(server.url());
        options.trust = Trust::Insecure;
        options.credentials = Some(Credentials::Password {
            username: user.username.clone(),
            password: Secret::new(user.password.clone()),
            otp: None,
            otp_prompt: None,
        });
        let client = Client::connect(options).await.expect("client connect");

        let expect = format!("{calls}");
        let sequential = format!(
            "let n = 0;\nfor i in 0..{calls} {{ if call(\"core.ping\") == \"pong\" {{ n += 1; }} }}\nprint(n);\n"
        );
        let batch = format!(
            "let batch = [];\nfor i in 0..{calls} {{ batch.push([\"core.ping\"]); }}\nprint(call_all(batch).filter(|r| r == \"pong\").len());\n"
        );
        // Warm up both paths (engine set-up, connection).
        timed(&client, "call(\"core.ping\");\nprint(1);", "1").await;
        timed(&client, "print(call_all([[\"core.ping\"]]).len());", "1").await;

        let seq = timed(&client, &sequential, &expect).await;
        let all = timed(&client, &batch, &expect).await;
        let rate = |d: Duration| calls as f64 / d.as_secs_f64();
        println!(
            "core.ping, {calls} calls per case, the mock answering each after {latency_ms} ms"
        );
        println!("{:<28} {:>10} {:>10}", "case", "ms", "calls/s");
        println!(
            "{:<28} {:>10.0} {:>10.0}",
            "call, one after the other",
            seq.as_secs_f64() * 1000.0,
            rate(seq)
        );
        println!(
            "{:<28} {:>10.0} {:>10.0}",
            "call_all (20 in flight)",
            all.as_secs_f64() * 1000.0,
            rate(all)
        );
        println!(
            "{:<28} {:>21.2}",
            "ratio call_all / call",
            rate(all) / rate(seq)
        );
        client.close().await;
        server.shutdown().await;
    });
}
