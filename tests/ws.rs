//! The `ws` script module and `scripts/sysmedic-watch.rhai` against a SysMedic-protocol server
//! written for the tests (`support::sysmedic`), in both its documented and its released
//! behaviour. The scripts run in the binary with nothing configured: no TrueNAS is involved.

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::support::standalone::{Sandbox, midscript};
use crate::support::sysmedic::{Flavour, SysMedic};

const SECRET: &str = "s3cr3t-Agent-Key";
const LINE_WAIT: Duration = Duration::from_secs(15);

/// A running script whose stdout lines are read as they come.
struct Watched {
    child: Child,
    lines: mpsc::Receiver<String>,
    seen: Vec<String>,
}

impl Watched {
    fn start(args: &[&str]) -> Watched {
        let mut child = midscript(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary starts");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    return;
                }
            }
        });
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Wait (off the async runtime) for a line containing `text`; returns it.
    async fn line(&mut self, text: &str) -> String {
        loop {
            let got = tokio::task::block_in_place(|| self.lines.recv_timeout(LINE_WAIT));
            match got {
                Ok(l) => {
                    self.seen.push(l.clone());
                    if l.contains(text) {
                        return l;
                    }
                }
                Err(_) => {
                    let _ = self.child.kill();
                    let mut err = String::new();
                    if let Some(mut e) = self.child.stderr.take() {
                        use std::io::Read;
                        let _ = e.read_to_string(&mut err);
                    }
                    panic!(
                        "no line with {text:?}; so far:\n{}\nstderr:\n{err}",
                        self.seen.join("\n")
                    )
                }
            }
        }
    }

    /// Wait for the end; returns the exit status and every line printed.
    async fn finish(mut self) -> (i32, String, String) {
        let status = tokio::task::block_in_place(|| self.child.wait()).expect("wait");
        while let Ok(l) = self.lines.recv_timeout(Duration::from_secs(2)) {
            self.seen.push(l);
        }
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            use std::io::Read;
            let _ = e.read_to_string(&mut err);
        }
        (status.code().unwrap_or(-1), self.seen.join("\n"), err)
    }
}

impl Drop for Watched {
    fn drop(&mut self) {
        let _ = self.child.kill();
    }
}

fn agent_interval() -> Duration {
    Duration::from_millis(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_correlate_while_broadcasts_flow_to_handlers_and_next() {
    let agent = SysMedic::start(
        Flavour::Documented,
        SECRET,
        agent_interval(),
        Duration::ZERO,
    )
    .await;
    let sandbox = Sandbox::new();
    let script = sandbox.write(
        "ws.rhai",
        r#"
let url = args[0];
let a = ws::connect(url);
let b = ws::connect(url, #{ headers: #{ "X-Client": "b" }, id_field: "request_id" });
let updates = [];
a.on("system_update", |m| updates.push(m.data.uptime));
let info = a.request(#{ type: "get_system_info" }, 3000);
print(`a: ${info.type} ${info.data.hostname} id=${info.request_id}`);
let pong = b.request(#{ type: "ping" }, 3000);
print(`b: ${pong.type} id=${pong.request_id}`);
let err = a.request(#{ type: "get_nothing" }, 3000);
print(`error reply: ${err.type}: ${err.data.error}`);
// b has no handler: the welcome and the update sent before its reply wait for next().
let m1 = b.next(3000);
let m2 = b.next(3000);
print(`b next: ${m1.type}, ${m2.type}`);
print(`a handled updates: ${updates.len() > 0}`);
a.wait(300);
print(`url shown: ${a.url}`);
try {
    let bad = url;
    bad.replace("s3cr3t-Agent-Key", "wrong-Secret-42");
    ws::connect(bad);
} catch (e) {
    print(`refused: ${e.kind}: ${e.message}`);
}
try {
    a.request(#{ type: "ping" }, 0);
    print("no timeout?");
} catch (e) {
    print(`timeout: ${e.kind}`);
}
try {
    ws::connect(url, #{ header: #{} });
} catch (e) {
    print(`option: ${e.kind}: ${e.message}`);
}
a.close();
b.close();
"#,
    );
    let url = agent.url(SECRET);
    let mut w = Watched::start(&["run", script.to_str().unwrap(), &url]);
    w.line("a: system_info_response testhost id=midscript-1")
        .await;
    w.line("b: pong id=midscript-1").await;
    w.line("error reply: error: Unknown request type: get_nothing")
        .await;
    w.line("b next: welcome, system_update").await;
    w.line("a handled updates: true").await;
    let shown = w.line("url shown:").await;
    assert!(shown.ends_with("/ws?secret=********"), "{shown}");
    let refused = w.line("refused:").await;
    assert!(
        refused.starts_with("refused: connection: ") && refused.contains("HTTP 401"),
        "{refused}"
    );
    assert!(!refused.contains("wrong-Secret-42"), "{refused}");
    w.line("timeout: timeout").await;
    w.line("option: argument: ws::connect: unknown option 'header'")
        .await;
    let (code, out, err) = w.finish().await;
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
    assert_eq!(agent.clients(), 2);
    // The three answered requests reached the agent; the one that timed out at once may still
    // be on its way when the script has ended.
    assert!(agent.requests() >= 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_rotation_drops_the_client_and_the_old_secret_is_refused() {
    let agent = SysMedic::start(
        Flavour::Documented,
        SECRET,
        agent_interval(),
        Duration::ZERO,
    )
    .await;
    let sandbox = Sandbox::new();
    let script = sandbox.write(
        "rotate.rhai",
        r#"
let s = ws::connect(args[0]);
print("ready");
let n = 0;
for m in s.messages() { n += 1; }
print(`ended after ${n} messages: ${s.closed_reason}`);
try { s.next(100); } catch (e) { print(`next: ${e.kind}`); }
try { s.send(#{ type: "ping" }); } catch (e) { print(`send: ${e.kind}`); }
try { ws::connect(args[0]); } catch (e) { print(`again: ${e.message}`); }
"#,
    );
    let url = agent.url(SECRET);
    let mut w = Watched::start(&["run", script.to_str().unwrap(), &url]);
    w.line("ready").await;
    agent.rotate("new-Secret-99");
    w.line("ended after").await;
    let ended = w.seen.last().unwrap().clone();
    assert!(
        ended.ends_with("closed by the peer (1008: secret rotated)"),
        "{ended}"
    );
    w.line("next: connection").await;
    w.line("send: connection").await;
    let again = w.line("again:").await;
    assert!(again.contains("HTTP 401"), "{again}");
    let (code, out, _) = w.finish().await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_released_agent_answers_nothing_and_closes_big_frames_with_1009() {
    let agent = SysMedic::start(
        Flavour::Released,
        SECRET,
        agent_interval(),
        Duration::from_millis(300),
    )
    .await;
    let sandbox = Sandbox::new();
    let script = sandbox.write(
        "released.rhai",
        r#"
let s = ws::connect(args[0]);
print(`first: ${s.next(3000).type}`);
print(`second: ${s.next(3000).type}`);
try { s.request(#{ type: "ping" }, 300); } catch (e) { print(`request: ${e.kind}: ${e.message}`); }
let u = s.next(3000);
print(`update timestamp is ${type_of(u.timestamp)}, alerts ${type_of(u.alerts)}`);
let padding = "x";
padding.pad(600, 'x');
s.send(#{ type: "get_config", padding: padding });
try { loop { s.next(3000); } } catch (e) { print(`big: ${e.message}`); }
"#,
    );
    let url = agent.url(SECRET);
    let mut w = Watched::start(&["run", script.to_str().unwrap(), &url]);
    w.line("first: welcome").await;
    w.line("second: config").await;
    let r = w.line("request:").await;
    assert!(
        r.starts_with("request: timeout: ")
            && r.contains("no reply to request midscript-1 within 300 ms"),
        "{r}"
    );
    assert!(!r.contains(SECRET), "{r}");
    w.line("update timestamp is i64, alerts array").await;
    let big = w.line("big:").await;
    assert!(big.contains("1009"), "{big}");
    let (code, out, _) = w.finish().await;
    assert_eq!(code, 0, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysmedic_watch_follows_the_documented_agent_and_exits_on_an_alert() {
    let agent = SysMedic::start(
        Flavour::Documented,
        SECRET,
        agent_interval(),
        Duration::ZERO,
    )
    .await;
    let url = agent.url(SECRET);
    let mut w = Watched::start(&[
        "run",
        "scripts/sysmedic-watch.rhai",
        &url,
        "--timeout",
        "2000",
    ]);
    let connected = w.line("connected to").await;
    assert!(connected.ends_with("/ws?secret=********"), "{connected}");
    w.line("system: testhost (Linux, 4 CPUs)").await;
    w.line("update ").await;
    let update = w.line("update ").await;
    assert!(
        update.contains("cpu ") && update.contains("memory 41.5% disk 62"),
        "{update}"
    );
    agent.alert("runaway process 4242");
    w.line("ALERT critical: runaway process 4242").await;
    let (code, out, err) = w.finish().await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(!out.contains(SECRET) && !err.contains(SECRET));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysmedic_watch_copes_with_the_released_agent_and_its_restarts() {
    let agent = SysMedic::start(
        Flavour::Released,
        SECRET,
        agent_interval(),
        Duration::from_millis(400),
    )
    .await;
    let url = agent.url(SECRET);
    let mut w = Watched::start(&[
        "run",
        "scripts/sysmedic-watch.rhai",
        &url,
        "--timeout",
        "300",
    ]);
    w.line("connected to").await;
    w.line("get_system_info: no reply within 300 ms (this agent does not answer requests)")
        .await;
    w.line("configuration received (not shown: it holds secrets)")
        .await;
    w.line("update ").await;
    // A restart (the same secret): dropped without a close frame, gone for a while, back.
    agent.rotate(SECRET);
    w.line("connection lost (").await;
    w.line("connected to").await;
    w.line("update ").await;
    agent.alert("disk almost full");
    w.line("ALERT critical: disk almost full").await;
    let (code, out, err) = w.finish().await;
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(
        !out.contains(SECRET) && !err.contains(SECRET),
        "{out}\n{err}"
    );
    assert!(agent.clients() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sysmedic_watch_exits_3_when_the_secret_is_refused() {
    let agent = SysMedic::start(
        Flavour::Documented,
        SECRET,
        agent_interval(),
        Duration::ZERO,
    )
    .await;
    let url = agent.url(SECRET);
    let mut w = Watched::start(&["run", "scripts/sysmedic-watch.rhai", &url]);
    w.line("update ").await;
    agent.rotate("rotated-Secret-77");
    w.line("connection lost (closed by the peer (1008: secret rotated))")
        .await;
    let refused = w.line("the agent refused the secret").await;
    assert!(
        refused.contains("HTTP 401") && !refused.contains(SECRET),
        "{refused}"
    );
    let (code, out, _) = w.finish().await;
    assert_eq!(code, 3, "{out}");
}
