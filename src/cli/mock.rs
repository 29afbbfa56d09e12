//! `midscript mock`: the built-in mock middleware as a standalone server.
//!
//! Other programs drive it, so its start-up output is a contract: the first line is
//! `URL <url>`, then `FINGERPRINT <sha256>` for wss, the generated accounts when none were
//! given (`USER <name> <password>`, `API_KEY <owner> <key>`), then `READY`.

use std::io::Write;
use std::net::{IpAddr, SocketAddr};

use clap::Args;

use super::{CliError, Exit};
use crate::mock::{MockApiKey, MockConfig, MockFaults, MockServer, MockUser, ServerVersion};

/// Options of `midscript mock`.
#[derive(Debug, Args)]
pub struct MockArgs {
    /// Port to listen on (0 picks a free one).
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Address to listen on; loopback only unless you mean it.
    #[arg(long, default_value = "127.0.0.1")]
    bind: IpAddr,
    /// Serve plain ws:// instead of wss:// with a generated certificate.
    #[arg(long)]
    plain: bool,
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

/// Run the mock until Ctrl-C.
pub async fn run(args: MockArgs) -> Result<Exit, CliError> {
    let config = config_from(&args).map_err(CliError::Usage)?;
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
        if args.api_keys.is_empty() {
            for k in &server.config().api_keys {
                let _ = writeln!(out, "API_KEY {} {}", k.owner, k.key);
            }
        }
    }
    let _ = writeln!(out, "READY");
    let _ = out.flush();
    drop(out);
    let _ = tokio::signal::ctrl_c().await;
    server.shutdown().await;
    Ok(Exit::Ok)
}
