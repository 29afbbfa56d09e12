//! The REPL end to end, through a pseudo-terminal (rexpect) against the built-in mock: type a
//! call, complete a method name, see the result, see an event arrive while typing, cancel a
//! running line with Ctrl-C, keep variables, save history, quit.

use crate::support::standalone::{Sandbox, StandaloneMock};
use midscript::mock::TEST_API_KEY;
use rexpect::session::{PtySession, spawn_command};

/// Every expectation waits at most this long.
const TIMEOUT_MS: u64 = 10_000;

/// An empty prompt, as drawn after a line ends (while typing, the prompt is redrawn with the
/// line after it, so this does not match then).
const PROMPT: &str = "midscript> \r";

fn start(sandbox: &Sandbox, args: &[&str]) -> PtySession {
    let mut cmd = sandbox.command(args);
    cmd.env("TERM", "xterm").env_remove("COLUMNS");
    spawn_command(cmd, Some(TIMEOUT_MS)).expect("the REPL starts in a pseudo-terminal")
}

/// Type `keys` (`\r` is Enter, `\t` is Tab).
fn keys(p: &mut PtySession, text: &str) {
    p.send(text).unwrap();
    p.flush().unwrap();
}

#[test]
fn the_repl_completes_calls_prints_events_cancels_and_remembers() {
    let sandbox = Sandbox::new();
    let mut p = start(&sandbox, &["repl", "--mock"]);
    p.exp_string("midscript REPL: the built-in mock").unwrap();
    p.exp_string(PROMPT).unwrap();

    // Tab completes the method name inside call("..; the hint shows its summary.
    keys(&mut p, "let info = call(\"system.inf");
    keys(&mut p, "\t");
    p.exp_string("Returns basic system information").unwrap();
    keys(&mut p, "\")\r");
    p.exp_string(PROMPT).unwrap();
    keys(&mut p, "info.hostname\r");
    p.exp_string("\"truenas\"").unwrap();
    p.exp_string(PROMPT).unwrap();

    // An incomplete line continues; functions and variables stay.
    keys(&mut p, "fn twice(x) {\r");
    keys(&mut p, "  x * 2\r");
    keys(&mut p, "}\r");
    p.exp_string(PROMPT).unwrap();
    keys(&mut p, "let n = twice(21);\r");
    p.exp_string(PROMPT).unwrap();

    // subscribe("NAME") prints events above the prompt, while a line is being typed.
    keys(&mut p, "subscribe(\"core.get_jobs\");\r");
    p.exp_string(PROMPT).unwrap();
    keys(
        &mut p,
        "job_start(\"app.create\", #{app_name: \"web\", custom_app: true, custom_compose_config: #{services: #{web: #{image: \"nginx:1.27\"}}}})\r",
    );
    p.exp_string(PROMPT).unwrap();
    keys(&mut p, "n + 0");
    p.exp_string("event core.get_jobs").unwrap();
    p.exp_string("'web' installed successfully").unwrap();
    p.exp_string("midscript> n + 0").unwrap();
    keys(&mut p, "\r");
    p.exp_string("42").unwrap();
    keys(&mut p, ".events\r");
    p.exp_string("core.get_jobs  printed above the prompt")
        .unwrap();

    // Ctrl-C cancels a running line; the session goes on.
    p.exp_string(PROMPT).unwrap();
    // The line says when it runs, so Ctrl-C comes while it sleeps (not while it is typed).
    keys(&mut p, "print(\"sleeping\"); sleep(60000)\r");
    p.exp_string("sleeping\r").unwrap();
    p.send_control('c').unwrap();
    p.exp_string("cancelled").unwrap();
    p.exp_string(PROMPT).unwrap();
    keys(&mut p, "n\r");
    p.exp_string("42").unwrap();

    // Docs, and errors with a caret.
    keys(&mut p, ".doc core.ping\r");
    p.exp_string("Job: no").unwrap();
    keys(&mut p, "n.nope\r");
    p.exp_string("--> repl:1:3").unwrap();

    keys(&mut p, ".quit\r");
    p.exp_eof().unwrap();
    let history = std::fs::read_to_string(sandbox.home().join("state/midscript/history")).unwrap();
    assert!(history.contains("let n = twice(21);"), "{history}");
}

#[test]
fn the_repl_is_the_default_saves_the_session_reconnects_and_quits_on_ctrl_d() {
    let sandbox = Sandbox::new();
    let nas = StandaloneMock::start(&[]);
    let (url, fp) = (nas.value("URL"), nas.value("FINGERPRINT"));
    let key = sandbox.write("config/midscript/lab.key", &format!("{TEST_API_KEY}\n"));
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
    }
    sandbox.write(
        sandbox.config_file(),
        &format!(
            "[profiles.lab]\nurl = \"{url}\"\nusername = \"truenas_admin\"\napi_key_file = \"lab.key\"\nfingerprint = \"{fp}\"\n"
        ),
    );
    let saved = sandbox.home().join("session.rhai");

    // No command on a terminal: the REPL.
    let mut p = start(&sandbox, &["--mock"]);
    p.exp_string(PROMPT).unwrap();
    keys(&mut p, "let pong = call(\"core.ping\");\r");
    p.exp_string(PROMPT).unwrap();
    keys(&mut p, "nope()\r");
    p.exp_string("error: Function not found: nope ()").unwrap();
    p.exp_string("--> repl:1:1").unwrap();
    keys(&mut p, &format!(".save {}\r", saved.display()));
    p.exp_string("saved 1 lines").unwrap();

    // .connect switches servers and keeps the scope.
    keys(&mut p, ".connect lab\r");
    p.exp_string(&format!("connected: profile lab: {url}"))
        .unwrap();
    p.exp_string("TrueNAS 25.").unwrap();
    keys(&mut p, "pong + \"!\"\r");
    p.exp_string("\"pong!\"").unwrap();
    keys(&mut p, ".connect nowhere\r");
    p.exp_string("error: no profile \"nowhere\" in ").unwrap();
    p.exp_string("; it defines: lab").unwrap();

    p.send_control('d').unwrap();
    p.exp_eof().unwrap();
    let script = std::fs::read_to_string(&saved).unwrap();
    assert!(
        script.ends_with("let pong = call(\"core.ping\");\n"),
        "{script}"
    );
}

#[test]
fn without_a_command_or_a_terminal_midscript_asks_for_one() {
    let o = crate::support::standalone::run(&[]);
    assert_eq!(o.status.code(), Some(2));
    assert!(
        crate::support::standalone::stderr(&o).contains("a command is needed"),
        "{}",
        crate::support::standalone::stderr(&o)
    );
}

#[test]
fn piped_lines_are_evaluated_in_order_and_exit_sets_the_status() {
    let sandbox = Sandbox::new();
    let o = sandbox.run_with_stdin(
        &["repl", "--mock"],
        "let x = 2;\nfn f(a) {\n  a * 3\n}\nf(x)\ncall(\"core.ping\")\n.time on\nexit(5)\nprint(\"not reached\")\n",
    );
    assert_eq!(
        o.status.code(),
        Some(5),
        "{}",
        crate::support::standalone::stderr(&o)
    );
    assert_eq!(crate::support::standalone::stdout(&o), "6\n\"pong\"\n");
}
