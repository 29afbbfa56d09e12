//! `midscript mock`: the built-in mock middleware as a standalone server.
//!
//! Other programs drive it, so its start-up output is a contract: the first line is
//! `URL <url>`, then `FINGERPRINT <sha256>` for wss, the generated accounts when none were
//! given (`USER <name> <password>`, `API_KEY <owner> <key>`), then `READY`.
//!
//! `--env` is for people: the mock starts in the background and `midscript mock --env` prints
//! shell `export` lines for it and exits, so `eval "$(midscript mock --env)"` points every
//! later command of the shell at it.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use clap::Args;

use super::{CliError, Exit};
use crate::mock::{MockApiKey, MockConfig, MockFaults, MockServer, MockUser, ServerVersion};

/// Options of `midscript mock`.
#[derive(Debug, Args)]
#[command(after_help = "Examples:
  midscript mock --demo                         in the foreground; Ctrl-C stops it
  eval \"$(midscript mock --env --demo)\"         in the background, for this shell
  midscript compose up && midscript compose ps  then any command reaches it
  kill $MIDSCRIPT_MOCK_PID")]
pub struct MockArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on; loopback only unless you mean it.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Serve plain ws:// instead of wss:// with a generated certificate. On a loopback address
    /// the mock treats it as secure, as TrueNAS does for a peer on the same machine; elsewhere
    /// an API key sent over it is revoked (so none is printed).
    #[arg(long)]
    plain: bool,
    /// With --plain: act as a NAS reached from another host, which revokes an API key sent
    /// to it over plain ws:// (for testing how a client copes).
    #[arg(long, requires = "plain")]
    plain_as_remote: bool,
    /// Start the mock in the background and print `export MIDSCRIPT_URL=…` lines for a shell
    /// (URL, fingerprint, API key, and MIDSCRIPT_MOCK_PID to stop it):
    /// `eval "$(midscript mock --env)"`, later `kill $MIDSCRIPT_MOCK_PID`.
    #[arg(long)]
    env: bool,
    /// No login rate limit (a real server allows 20 anonymous calls per method per minute from
    /// one address, and so does the mock by default).
    #[arg(long)]
    no_rate_limit: bool,
    /// An account NAME:PASSWORD (repeatable); full admin.
    #[arg(long = "user", value_name = "NAME:PASSWORD")]
    users: Vec<String>,
    /// An API key `<id>-<key>` owned by the first user (repeatable).
    #[arg(long = "api-key", value_name = "KEY")]
    api_keys: Vec<String>,
    /// The TrueNAS version to simulate: 24.10 (legacy /websocket only), 25.04, 25.10, 26.0 or
    /// 27.0.
    #[arg(long = "server-version", default_value = "25.10")]
    server_version: ServerVersion,
    /// Fixed ids, clock and job speed (for tests).
    #[arg(long)]
    deterministic: bool,
    /// PBKDF2 iterations for SCRAM logins (26+): real servers use 500000; tests may go as low as
    /// 50000, the least the official client accepts.
    #[arg(long = "scram-iterations", value_name = "N", value_parser = clap::value_parser!(u32).range(50_000..=5_000_000))]
    scram_iterations: Option<u32>,
    /// Apps whose deployment crashes (repeatable).
    #[arg(long = "crash-app", value_name = "APP")]
    crash_apps: Vec<String>,
    /// Start from the demo state: three apps (one crashed), the pool `tank`, two alerts and a
    /// recurring cloud backup job, with changing figures on the event sources.
    #[arg(long)]
    demo: bool,
    /// Milliseconds between job progress steps (default: 400, 5 with --deterministic).
    #[arg(long, value_name = "MS")]
    job_step_ms: Option<u64>,
    /// Milliseconds every call takes before it is answered, as on a busy NAS (default: 0).
    #[arg(long, value_name = "MS", default_value_t = 0)]
    latency_ms: u64,
    /// Start with synthetic alerts adding up to about this many MB of JSON, so that
    /// `alert.list` is a big reply (default: 0, no alerts).
    #[arg(long, value_name = "MB", default_value_t = 0, value_parser = clap::value_parser!(u16).range(0..=1024))]
    alert_backlog_mb: u16,
    #[command(flatten)]
    faults: FaultArgs,
    /// Hidden stand-ins for the global `-o/--output` and `--raw`, which mean nothing here:
    /// declared so `mock --help` does not list them, and refused when given.
    #[arg(long, short = 'o', value_enum, hide = true)]
    output: Option<crate::output::Format>,
    #[arg(long, hide = true)]
    raw: bool,
}

impl MockArgs {
    /// Was `-o/--output` (other than the default, which clap copies down from the global
    /// option) or `--raw` given after `mock`?
    pub(super) fn output_given(&self) -> bool {
        self.output
            .is_some_and(|f| f != crate::output::Format::Auto)
            || self.raw
    }
}

/// Faults to inject, to test clients that reconnect. Each fires once; client messages are
/// counted over all connections, from 1, and the message that triggers a fault is not handled.
#[derive(Debug, Args)]
#[command(next_help_heading = "Faults")]
struct FaultArgs {
    /// Drop the connection that started the first job (no close frame) at its first progress
    /// step; the job runs on.
    #[arg(long)]
    fault_drop_mid_job: bool,
    /// Restart the server at the first job's first progress step.
    #[arg(long)]
    fault_restart_mid_job: bool,
    /// Close the connection of the N-th client message with 1011.
    #[arg(long, value_name = "N")]
    fault_close_1011_at: Option<u64>,
    /// Stop answering the connection of the N-th client message (no replies, events, pongs).
    #[arg(long, value_name = "N")]
    fault_freeze_at: Option<u64>,
    /// Restart at the N-th client message: every connection dropped, the port closed for the
    /// downtime, then the same port again with all state (accounts, apps, jobs) kept.
    #[arg(long, value_name = "N")]
    fault_restart_at: Option<u64>,
    /// Seconds a restart keeps the port closed.
    #[arg(long, value_name = "SECONDS", default_value_t = 0.5)]
    fault_restart_downtime: f64,
}

fn config_from(args: &MockArgs) -> Result<MockConfig, String> {
    let mut config = if args.deterministic {
        MockConfig::for_tests()
    } else {
        MockConfig::default()
    };
    config.tls = !args.plain;
    // TrueNAS counts a loopback peer as a secure transport (an API key is not revoked there).
    config.plain_is_secure = args.plain && args.bind.is_loopback() && !args.plain_as_remote;
    if args.no_rate_limit {
        config.rate_limit.max_calls = u32::MAX;
    }
    if let Some(ms) = args.job_step_ms {
        config.job_step = std::time::Duration::from_millis(ms);
    }
    config.latency = std::time::Duration::from_millis(args.latency_ms);
    config.alert_backlog_bytes = usize::from(args.alert_backlog_mb) * 1_000_000;
    let f = &args.faults;
    if !(f.fault_restart_downtime.is_finite() && (0.0..=3600.0).contains(&f.fault_restart_downtime))
    {
        return Err(format!(
            "--fault-restart-downtime must be 0 to 3600 seconds, not {}",
            f.fault_restart_downtime
        ));
    }
    config.faults = MockFaults {
        drop_mid_job: f.fault_drop_mid_job,
        restart_mid_job: f.fault_restart_mid_job,
        close_1011_at: f.fault_close_1011_at,
        freeze_at: f.fault_freeze_at,
        restart_at: f.fault_restart_at,
        restart_downtime: std::time::Duration::from_secs_f64(f.fault_restart_downtime),
    };
    config.version = args.server_version;
    config.crash_apps.extend(args.crash_apps.iter().cloned());
    if let Some(n) = args.scram_iterations {
        config.scram_iterations = n;
    }
    config.demo = args.demo;
    if !args.users.is_empty() {
        config.users = args
            .users
            .iter()
            .enumerate()
            .map(|(i, spec)| {
                let (name, password) = spec
                    .split_once(':')
                    .ok_or_else(|| format!("--user {spec:?}: expected NAME:PASSWORD"))?;
                if name.is_empty() {
                    return Err(format!("--user {spec:?}: the name is empty"));
                }
                Ok(MockUser {
                    id: 1000 + i as i64,
                    username: name.into(),
                    password: password.into(),
                    otp_code: None,
                    full_admin: true,
                    api_access: true,
                })
            })
            .collect::<Result<_, _>>()?;
    }
    if !args.api_keys.is_empty() {
        let owner = config
            .users
            .first()
            .map(|u| u.username.clone())
            .ok_or("--api-key needs a user to own it")?;
        config.api_keys = args
            .api_keys
            .iter()
            .map(|key| {
                let id = key.split_once('-').and_then(|(id, m)| if m.is_empty() { None } else { id.parse::<i64>().ok() });
                let id = id.ok_or_else(|| format!("--api-key: expected <id>-<key> such as 1-abc…, got {} characters without that shape", key.len()))?;
                Ok(MockApiKey { id, owner: owner.clone(), key: key.clone(), revoked: false, expired: false })
            })
            .collect::<Result<_, String>>()?;
    } else if !args.users.is_empty() {
        // Keys generated for the default account would belong to a user that no longer exists.
        let owner = config.users[0].username.clone();
        for k in &mut config.api_keys {
            k.owner = owner.clone();
        }
    }
    Ok(config)
}

/// Run the mock until Ctrl-C (with `--env`: start it in the background and print its
/// settings for a shell).
pub async fn run(args: MockArgs) -> Result<Exit, CliError> {
    let config = config_from(&args).map_err(CliError::Usage)?;
    if args.env {
        return in_background();
    }
    let show_accounts = args.users.is_empty() || args.api_keys.is_empty();
    let server = MockServer::start_on(SocketAddr::new(args.bind, args.port), config)
        .await
        .map_err(|e| {
            CliError::Startup(format!(
                "cannot start the mock on {}:{}: {e}",
                args.bind, args.port
            ))
        })?;
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "URL {}", server.url());
    if let Some(fp) = server.fingerprint() {
        let _ = writeln!(out, "FINGERPRINT {fp}");
    }
    if show_accounts {
        if args.users.is_empty() {
            for u in &server.config().users {
                let _ = writeln!(out, "USER {} {}", u.username, u.password);
            }
        }
        if args.api_keys.is_empty() && !config_revokes_keys(&args) {
            for k in &server.config().api_keys {
                let _ = writeln!(out, "API_KEY {} {}", k.owner, k.key);
            }
        }
    }
    let _ = writeln!(out, "READY");
    let _ = out.flush();
    drop(out);
    if config_revokes_keys(&args) {
        crate::output::warn(
            "midscript mock: plain ws:// as from another host: an API key sent over it is \
             revoked, as on a real NAS, so none is printed; log in with a password (USER) or \
             serve wss://",
        );
    }
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(Exit::Ok)
}

/// Does this mock revoke API keys sent to it (plain ws on an address other than loopback)?
fn config_revokes_keys(args: &MockArgs) -> bool {
    args.plain && (!args.bind.is_loopback() || args.plain_as_remote)
}

/// `--env`: start this same command without `--env` as a child that outlives us, read its
/// start-up lines, print them as `export` lines and return. The child's stdout is a pipe of
/// ours, so the shell's `$(…)` ends when we do; stderr stays the terminal's.
fn in_background() -> Result<Exit, CliError> {
    use std::io::{BufRead as _, Read as _};
    use std::process::{Command, Stdio};
    let exe = std::env::current_exe()
        .map_err(|e| CliError::Startup(format!("mock --env: cannot find midscript itself: {e}")))?;
    let args: Vec<std::ffi::OsString> = std::env::args_os()
        .skip(1)
        .filter(|a| a != "--env")
        .collect();
    // Both outputs are pipes of ours, so nothing of the caller's (a `$(…)`, a test's captured
    // stderr) is held open by the mock once we are gone.
    let mut child = Command::new(exe)
        .args(&args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| CliError::Startup(format!("mock --env: cannot start the mock: {e}")))?;
    let (Some(stdout), Some(mut stderr)) = (child.stdout.take(), child.stderr.take()) else {
        return Err(CliError::Startup(
            "mock --env: no output from the mock".into(),
        ));
    };
    let mut lines = Vec::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let Ok(line) = line else { break };
        if line == "READY" {
            crate::output::emit(&export_lines(&lines, child.id()));
            return Ok(Exit::Ok);
        }
        lines.push(line);
    }
    let mut said = String::new();
    let _ = stderr.read_to_string(&mut said);
    let status = child.wait().ok().and_then(|s| s.code());
    Err(CliError::Startup(format!(
        "mock --env: the mock ended before it was ready (exit status {}){}",
        status.map_or("unknown".into(), |c| c.to_string()),
        match said.trim() {
            "" => String::new(),
            text => format!(":\n{text}"),
        }
    )))
}

/// Shell lines setting the environment for the mock whose start-up `lines` these are.
fn export_lines(lines: &[String], pid: u32) -> String {
    let value = |key: &str| {
        lines
            .iter()
            .find_map(|l| l.strip_prefix(key)?.strip_prefix(' '))
    };
    let mut out = String::new();
    let mut export = |name: &str, v: &str| {
        out.push_str(&format!("export {name}={}\n", shell_quote(v)));
    };
    if let Some(url) = value("URL") {
        export("MIDSCRIPT_URL", url);
    }
    if let Some(fp) = value("FINGERPRINT") {
        export("MIDSCRIPT_FINGERPRINT", fp);
    }
    if let Some(key) = value("API_KEY")
        .and_then(|v| v.split_once(' '))
        .map(|(_, k)| k)
    {
        export("MIDSCRIPT_API_KEY", key);
    }
    export("MIDSCRIPT_MOCK_PID", &pid.to_string());
    out.push_str(&format!(
        "# midscript mock runs in the background (pid {pid}); stop it with: kill $MIDSCRIPT_MOCK_PID\n"
    ));
    out
}

/// `v` in single quotes for a POSIX shell.
fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_lines_quote_values_and_name_the_pid() {
        let lines = [
            "URL wss://127.0.0.1:4000/api/current",
            "FINGERPRINT AB:CD",
            "USER truenas_admin pw",
            "API_KEY truenas_admin 1-it's",
        ]
        .map(String::from);
        assert_eq!(
            export_lines(&lines, 42),
            "export MIDSCRIPT_URL='wss://127.0.0.1:4000/api/current'\n\
             export MIDSCRIPT_FINGERPRINT='AB:CD'\n\
             export MIDSCRIPT_API_KEY='1-it'\\''s'\n\
             export MIDSCRIPT_MOCK_PID='42'\n\
             # midscript mock runs in the background (pid 42); stop it with: kill $MIDSCRIPT_MOCK_PID\n"
        );
        // No fingerprint (plain ws) and no key: those lines are left out.
        let plain = ["URL ws://127.0.0.1:4000/api/current".to_owned()];
        assert!(!export_lines(&plain, 1).contains("FINGERPRINT"));
        assert!(!export_lines(&plain, 1).contains("API_KEY"));
    }
}
