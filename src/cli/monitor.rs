//! `midscript top` and `midscript check`: thin front ends over [`crate::monitor`].

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Args, ValueEnum};

use super::{CliError, ConnArgs, Exit};
use crate::monitor::check::{self, Options, Scope, Verdict};
use crate::monitor::{Model, feed, top};
use crate::output::{self, Format};

/// Options of `midscript top`.
#[derive(Debug, Args)]
pub struct TopArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Print one JSON snapshot (metrics, pools, apps, alerts, jobs) and exit; the default when
    /// stdout is not a terminal.
    #[arg(long)]
    pub once: bool,
}

/// What `midscript check` looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum What {
    /// Alerts: WARNING is a warning, ERROR and above critical.
    Alerts,
    /// Pools: not healthy is critical; usage against -w/-c.
    Pools,
    /// Apps: any app not RUNNING is critical.
    Apps,
    /// Jobs: a failed job is a warning.
    Jobs,
    /// Everything above.
    All,
}

/// Options of `midscript check`.
#[derive(Debug, Args)]
pub struct CheckArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// What to check.
    #[arg(value_enum, default_value_t = What::All)]
    pub what: What,
    /// Pool usage in percent at which a pool is a WARNING.
    #[arg(
        long = "warning",
        short = 'w',
        value_name = "PERCENT",
        default_value_t = 80.0
    )]
    pub warn: f64,
    /// Pool usage in percent at which a pool is CRITICAL.
    #[arg(
        long = "critical",
        short = 'c',
        value_name = "PERCENT",
        default_value_t = 90.0
    )]
    pub crit: f64,
    /// Alert classes or app names to leave out (repeatable, or comma-separated).
    #[arg(long, value_name = "NAME", value_delimiter = ',')]
    pub ignore: Vec<String>,
}

/// `midscript top`.
pub async fn top(args: TopArgs, outer: &ConnArgs, format: Format) -> Result<ExitCode, CliError> {
    let once = args.once || !std::io::stdout().is_terminal();
    let mut conn = args.conn.or(outer);
    // The dashboard reconnects by itself (and loads every pane again); the client's own
    // reconnect would report on stderr, which is the dashboard's screen.
    conn.settings.no_reconnect |= !once;
    let session = conn.connect().await?;
    session
        .scoped(async |session| {
            if once {
                let v = top::snapshot(&session.client).await?;
                let format = if format == Format::Auto {
                    Format::Json
                } else {
                    format
                };
                output::emit_line(output::render(&v, format, false).trim_end());
                return Ok(Exit::Ok.into());
            }
            let server = session.client.url().to_owned();
            let options = session.reconnect_options();
            let reconnect = move || {
                let options = options.clone();
                async move {
                    crate::client::Client::connect(options)
                        .await
                        .map_err(|e| output::describe_error(&e, false))
                }
            };
            top::run_terminal(session.client.clone(), reconnect, &server)
                .await
                .map_err(|e| CliError::Startup(format!("the terminal: {e}")))?;
            Ok(Exit::Ok.into())
        })
        .await
}

/// `midscript check`: one plugin line (or JSON with `-o json`) and exit 0, 1, 2 or 3.
pub async fn check(
    args: CheckArgs,
    outer: &ConnArgs,
    format: Format,
) -> Result<ExitCode, CliError> {
    let mut conn = args.conn.or(outer);
    // A plugin answers at once: a lost connection is UNKNOWN, not a minute of reconnecting.
    conn.settings.no_reconnect = true;
    let scope = match args.what {
        What::Alerts => Scope::Alerts,
        What::Pools => Scope::Pools,
        What::Apps => Scope::Apps,
        What::Jobs => Scope::Jobs,
        What::All => Scope::All,
    };
    let verdict = if !(args.warn.is_finite() && args.crit.is_finite()) || args.warn > args.crit {
        Verdict::unknown(&format!(
            "bad thresholds: -w {} must be a number at most -c {}",
            args.warn, args.crit
        ))
    } else {
        let options = Options {
            warn: args.warn,
            crit: args.crit,
            ignore: args.ignore,
        };
        match conn.connect().await {
            Err(e) => Verdict::unknown(&e.describe(false)),
            Ok(session) => {
                let mut model = Model::default();
                let loaded = feed::load(&session.client, &mut model).await;
                session.finish().await;
                match loaded {
                    Ok(()) => check::judge(&model, scope, &options),
                    Err(e) => Verdict::unknown(&output::describe_error(&e, false)),
                }
            }
        }
    };
    match format {
        Format::Json | Format::Compact | Format::Yaml => {
            output::emit_line(output::render(&verdict.to_json(), format, false).trim_end())
        }
        Format::Auto | Format::Table => output::emit_line(&verdict.line()),
    }
    Ok(ExitCode::from(verdict.state.code()))
}
