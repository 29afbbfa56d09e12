//! The command line: argument definitions, dispatch, and exit codes.

mod call;
mod completions;
mod compose;
mod connection;
mod env;
mod machine;
mod man;
pub(crate) mod methods;
mod mock;
mod monitor;
pub mod profile;
pub mod prompt;
mod repl;
mod run;
mod seconds;
mod settings;
mod trace;
pub mod trust;

use std::io::IsTerminal as _;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use call::parse_args as parse_call_args;
pub use connection::{ConnArgs, Session};
pub use run::script_shorthand;
pub use settings::Settings;

use crate::client::Error;
use crate::output::{self, Format, ProgressStyle};

/// Exit statuses, as documented in `--help` and the README.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Exit {
    /// Success.
    Ok = 0,
    /// The server reported an error (method error, failed or aborted job, timeout).
    MethodError = 1,
    /// Bad usage: unknown option, bad argument, bad URL.
    Usage = 2,
    /// Could not connect: network, TLS, handshake, connection closed.
    Connection = 3,
    /// Authentication failed, or was refused before trying; the server's login rate limit.
    Auth = 4,
    /// The output could not be written (a full disk); a closed pipe is not an error.
    Output = 5,
    /// `compose up`: the deployment went through but the app CRASHED (its logs are shown).
    Crashed = 6,
    /// Interrupted (Ctrl-C).
    Interrupted = 130,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> ExitCode {
        ExitCode::from(e as u8)
    }
}

/// Every way a command fails, one variant per kind, each with its exit status. Commands
/// return it; [`run`] prints it, once, in [`report`]. Adding a failure is adding a variant.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The command line (or its stdin) is wrong: an option, argument or value.
    #[error("{0}")]
    Usage(String),
    /// No command was given and stdin/stdout are not a terminal (the REPL needs one).
    #[error("a command is needed when not on a terminal (`midscript --help` lists them)")]
    MissingCommand,
    /// A local file the command was pointed at (config and profiles, API key file,
    /// known_hosts, trace file, script) cannot be read or written.
    #[error("{0}")]
    File(String),
    /// The compose project is invalid (file, interpolation, merge, checks).
    #[error("{0}")]
    Project(String),
    /// A prompt got no answer (no password entered).
    #[error("{0}")]
    NoInput(String),
    /// Something midscript needs on this machine could not start (the built-in mock's
    /// listener, the REPL's thread).
    #[error("{0}")]
    Startup(String),
    /// The client failed (connection, TLS, login, a method's error, a job's failure).
    #[error(transparent)]
    Client(#[from] Error),
    /// A client error with advice after it (a "did you mean" for a misspelt method).
    #[error("{error}\n{hint}")]
    Hinted {
        /// The error.
        error: Error,
        /// The advice, one or more lines.
        hint: String,
    },
    /// The NAS refuses what was asked (an app that is not there, nothing to roll back, a
    /// deployment that failed, the deploy journal).
    #[error("{0}")]
    Refused(String),
    /// Writing the output failed (other than a closed pipe): nothing or only part of it was
    /// written.
    #[error("{0}")]
    Output(String),
}

impl CliError {
    /// The exit status for this failure.
    pub fn exit(&self) -> Exit {
        match self {
            CliError::Usage(_)
            | CliError::MissingCommand
            | CliError::File(_)
            | CliError::Project(_)
            | CliError::NoInput(_) => Exit::Usage,
            CliError::Startup(_) => Exit::Connection,
            CliError::Client(e) | CliError::Hinted { error: e, .. } => exit_for(e),
            CliError::Refused(_) => Exit::MethodError,
            CliError::Output(_) => Exit::Output,
        }
    }

    /// The message for stderr.
    pub fn describe(&self, verbose: bool) -> String {
        match self {
            CliError::Client(e) => output::describe_error(e, verbose),
            CliError::Hinted { error, hint } => {
                format!("{}\n{hint}", output::describe_error(error, verbose))
            }
            other => other.to_string(),
        }
    }
}

/// Print `err` on stderr: the one place a command's failure is printed.
fn report(err: &CliError, verbose: bool) {
    if let CliError::MissingCommand = err {
        use clap::CommandFactory as _;
        output::warn(&Cli::command().render_usage().to_string());
    }
    output::warn(&format!("midscript: error: {}", err.describe(verbose)));
}

/// The exit status for a client error.
pub fn exit_for(err: &Error) -> Exit {
    match err {
        Error::InvalidUrl { .. } => Exit::Usage,
        Error::Auth(_) => Exit::Auth,
        Error::Server(s) if s.is_not_authenticated() || s.is_rate_limited() => Exit::Auth,
        Error::Cancelled => Exit::Interrupted,
        e if e.is_connection() => Exit::Connection,
        _ => Exit::MethodError,
    }
}

const AFTER_HELP: &str = "\
Examples:
  midscript --mock call system.info              try it on the built-in mock (no NAS)
  eval \"$(midscript mock --env)\"                 a mock in the background for this shell
  midscript --profile nas call app.query '[[\"state\",\"=\",\"RUNNING\"]]'
  midscript --profile nas run deploy.rhai        a Rhai script on one connection
  midscript --profile nas compose up             deploy the compose project in this folder
  midscript                                      the REPL (on a terminal)

Exit status:
  0    success
  1    the server reported an error (method error, failed or aborted job, timeout)
  2    usage error (bad option, argument or URL)
  3    connection error (network, TLS, handshake, connection closed)
  4    authentication failed (a failed login never exits 0), or too many logins (rate limit)
  5    the output could not be written (e.g. a full disk; a closed pipe is not an error)
  6    compose up: deployed, but the app CRASHED
  130  interrupted

Files:
  $XDG_CONFIG_HOME/midscript/config.toml  profiles (--profile, MIDSCRIPT_PROFILE)
  $XDG_STATE_HOME/midscript/known_hosts   certificates accepted on first use
  $XDG_STATE_HOME/midscript/history       REPL history
  $XDG_CACHE_HOME/midscript/methods/      server catalogs, per server and version
  $XDG_STATE_HOME/midscript/journal/      compose deploy journal, per server and app (0600)";

/// Script, explore and deploy to TrueNAS through its middleware API.
#[derive(Debug, Parser)]
#[command(name = "midscript", version, about, after_help = AFTER_HELP, propagate_version = true)]
pub struct Cli {
    #[command(flatten)]
    pub conn: ConnArgs,

    /// How to print results.
    #[arg(long, short = 'o', value_enum, default_value_t = Format::Auto, global = true)]
    pub output: Format,

    /// Print a string result bare, without JSON quotes.
    #[arg(long, global = true)]
    pub raw: bool,

    /// More detail on errors (the server traceback) and on what happens.
    #[arg(long, short = 'v', global = true)]
    pub verbose: bool,

    /// Show no job progress (`call -j`, `job`, scripts, `compose up`): the same as
    /// `--progress none`.
    #[arg(long, short = 'q', global = true)]
    pub quiet: bool,

    /// The command; without one, `midscript` on a terminal starts the REPL.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Call a method, as `midclt call` does: each ARG is JSON when it parses, else a string.
    #[command(after_help = "Examples:
  midscript --mock call system.info
  midscript call user.query '[[\"username\",\"=\",\"admin\"]]' '{\"get\": true}'
  midscript call -j app.start plex              wait for the job it starts
  echo '[1000, {\"password\": \"…\"}]' | midscript call user.update -")]
    Call {
        #[command(flatten)]
        conn: ConnArgs,
        /// The method, e.g. system.info.
        method: String,
        /// Positional arguments; a single `-` reads them as one JSON array from stdin.
        args: Vec<String>,
        /// Wait for the job the method starts, showing its progress.
        #[arg(long, short = 'j')]
        job: bool,
        /// How to show job progress.
        #[arg(long, value_enum, default_value_t = ProgressStyle::Auto)]
        progress: ProgressStyle,
    },
    /// Run a job method and wait for it (same as `call --job`), or wait for a running job
    /// (`--attach ID`).
    #[command(after_help = "Examples:
  midscript job app.stop plex
  midscript job --attach 42                     wait for job 42, started earlier")]
    Job {
        #[command(flatten)]
        conn: ConnArgs,
        /// Wait for the job with this id, started earlier (its id is printed when it starts),
        /// instead of starting one; Ctrl-C stops waiting and leaves the job running.
        #[arg(long, value_name = "ID", conflicts_with_all = ["method", "args"])]
        attach: Option<i64>,
        /// The method, e.g. app.start.
        #[arg(required_unless_present = "attach")]
        method: Option<String>,
        /// Positional arguments; a single `-` reads them as one JSON array from stdin.
        args: Vec<String>,
        /// How to show job progress.
        #[arg(long, value_enum, default_value_t = ProgressStyle::Auto)]
        progress: ProgressStyle,
    },
    /// Check that the server answers (`core.ping`); prints `pong`.
    Ping {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print events as JSON lines, one per event (logs in first, unlike midclt).
    #[command(mut_arg("timeout", |a| a.long("call-timeout").short(None)))]
    #[command(after_help = "Examples:
  midscript subscribe app.query -n 5            five events, one JSON line each
  midscript subscribe 'reporting.realtime:{\"interval\": 2}' -t 10")]
    Subscribe {
        #[command(flatten)]
        conn: ConnArgs,
        /// The event, e.g. app.query or `reporting.realtime:{"interval":2}`.
        event: String,
        /// Stop after this many events.
        #[arg(long, short = 'n')]
        count: Option<u64>,
        /// Stop (exit 1) when no event came for this many seconds (midclt's `subscribe -t`).
        #[arg(long = "timeout", short = 't', value_name = "SECONDS", value_parser = seconds::parse)]
        wait: Option<f64>,
    },
    /// List methods (name, `[job]` mark, summary) from the server's catalog, cached per version.
    #[command(after_help = "Examples:
  midscript --profile nas methods 'app.*'
  midscript methods --offline '*.query'
  midscript methods --names                     names only, from the cache (for completion)")]
    Methods {
        #[command(flatten)]
        conn: ConnArgs,
        /// Only names containing this, or matching it as a glob with `*` (`app.*`, `*.query`).
        pattern: Option<String>,
        /// Use the bundled TrueNAS 25.04 catalog instead of asking a server.
        #[arg(long)]
        offline: bool,
        /// Only the names, one per line, from the newest cached catalog (the bundled one
        /// without a cache); never connects. Shell completion uses it.
        #[arg(long, conflicts_with = "offline")]
        names: bool,
    },
    /// Show a method's documentation: arguments with types and defaults, result, job, roles.
    #[command(after_help = "Examples:
  midscript doc --offline user.update
  midscript --profile nas doc app.create")]
    Doc {
        #[command(flatten)]
        conn: ConnArgs,
        /// The method, e.g. user.update.
        method: String,
        /// Use the bundled TrueNAS 25.04 catalog instead of asking a server.
        #[arg(long)]
        offline: bool,
    },
    /// Print a shell completion script, e.g. `midscript completions bash > /etc/bash_completion.d/midscript`.
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print the manual page (roff), generated from this command line's definition:
    /// `midscript man > midscript.1`, or `midscript man | man -l -`.
    Man,
    /// Explore the API interactively: Rhai with the script bindings, completion of method
    /// names, docs, events above the prompt (the default on a terminal).
    Repl {
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Run the built-in mock middleware: a simulated TrueNAS on this machine.
    Mock(mock::MockArgs),
    /// Deploy a docker-compose project as a TrueNAS custom app, idempotently.
    Compose {
        #[command(subcommand)]
        command: compose::ComposeCommand,
    },
    /// The machine interface for tools (Ansible, CI): one JSON request on stdin, one JSON
    /// result on stdout (`changed`, `failed`, `msg`, `diff`, and the action's data); see
    /// docs/machine-interface.md. Exits 0, 1 when the action failed, 2 for a bad request.
    Machine,
    /// Run a Rhai script on one connection: `midscript run FILE [ARGS]…`, also `midscript
    /// FILE.rhai …`, `#!/usr/bin/env midscript`, and `midscript -e CODE`.
    Run(run::RunArgs),
    /// A live dashboard: metrics, pools, apps, alerts and jobs, fed by events (`q` quits).
    /// Not on a terminal (or with --once) it prints one JSON snapshot.
    Top(monitor::TopArgs),
    /// A monitoring-plugin check (Nagios, Icinga, Checkmk, Zabbix, Sensu): one line
    /// `TRUENAS <STATE> - summary | perfdata`, exit 0 OK, 1 WARNING, 2 CRITICAL, 3 UNKNOWN.
    Check(monitor::CheckArgs),
}

/// The tokio runtime a command line needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Runtime {
    /// One thread: one-off commands (`call`, `job`, `ping`, `subscribe`, `methods`, `doc`,
    /// `check`, `completions`) do one thing at a time and are over in milliseconds; a pool of workers
    /// would cost them start-up time and memory they never use.
    CurrentThread,
    /// Worker threads: scripts, the REPL and `top` block their own thread on the runtime, the
    /// mock serves many connections, `compose` and `machine` run scripts and uploads.
    MultiThread,
}

impl Cli {
    /// Which runtime this command line runs on.
    pub fn runtime(&self) -> Runtime {
        match &self.command {
            Some(
                Command::Call { .. }
                | Command::Job { .. }
                | Command::Ping { .. }
                | Command::Subscribe { .. }
                | Command::Methods { .. }
                | Command::Doc { .. }
                | Command::Check(_)
                | Command::Completions { .. }
                | Command::Man,
            ) => Runtime::CurrentThread,
            Some(
                Command::Repl { .. }
                | Command::Top(_)
                | Command::Mock(_)
                | Command::Compose { .. }
                | Command::Machine
                | Command::Run(_),
            )
            | None => Runtime::MultiThread,
        }
    }
}

/// Run a parsed command line.
pub async fn run(mut cli: Cli) -> ExitCode {
    let verbose = cli.verbose;
    cli.conn.verbose = verbose;
    if cli.quiet {
        output::set_quiet();
    }
    let outcome = dispatch(cli).await;
    // Lost output is a failure whatever the command thought (`call … > /dev/full`, a
    // script's `print`), unless the command failed anyway.
    let outcome = match (outcome, output::write_failure()) {
        (Ok(_), Some(failure)) => Err(CliError::Output(failure)),
        (outcome, _) => outcome,
    };
    match outcome {
        Ok(code) => code,
        Err(err) => {
            report(&err, verbose);
            err.exit().into()
        }
    }
}

/// Run the command: its exit status, or its failure for [`run`] to print.
async fn dispatch(cli: Cli) -> Result<ExitCode, CliError> {
    let verbose = cli.verbose;
    let outer = &cli.conn;
    let command = match cli.command {
        Some(c) => c,
        None if std::io::stdin().is_terminal() && std::io::stdout().is_terminal() => {
            Command::Repl {
                conn: ConnArgs::default(),
            }
        }
        None => Err(CliError::MissingCommand)?,
    };
    let exit = match command {
        Command::Mock(args) => {
            if !outer.is_empty() {
                Err(CliError::Usage(
                    "connection options do not apply to `midscript mock`".into(),
                ))?;
            }
            if cli.output != Format::Auto || cli.raw || args.output_given() {
                Err(CliError::Usage(
                    "-o/--output and --raw do not apply to `midscript mock` (its start-up lines are a fixed format)".into(),
                ))?;
            }
            mock::run(args).await?
        }
        Command::Run(args) => return run::run(args, outer, verbose).await,
        Command::Machine => {
            if !outer.is_empty() {
                Err(CliError::Usage(
                    "`midscript machine` takes its connection settings from the request, not from options".into(),
                ))?;
            }
            machine::run().await
        }
        Command::Top(args) => return monitor::top(args, outer, cli.output).await,
        Command::Check(args) => return monitor::check(args, outer, cli.output).await,
        Command::Call {
            conn,
            method,
            args,
            job,
            progress,
        } => {
            call::call(
                &conn.or(outer),
                &method,
                &args,
                job,
                progress,
                cli.output,
                cli.raw,
            )
            .await?
        }
        Command::Job {
            conn,
            attach: Some(id),
            progress,
            ..
        } => call::attach(&conn.or(outer), id, progress, cli.output, cli.raw).await?,
        Command::Job {
            conn,
            method,
            args,
            progress,
            ..
        } => {
            call::call(
                &conn.or(outer),
                method.as_deref().unwrap_or_default(),
                &args,
                true,
                progress,
                cli.output,
                cli.raw,
            )
            .await?
        }
        Command::Ping { conn } => call::ping(&conn.or(outer)).await?,
        Command::Subscribe {
            conn,
            event,
            count,
            wait,
        } => call::subscribe(&conn.or(outer), &event, count, wait).await?,
        Command::Methods {
            pattern,
            names: true,
            ..
        } => methods::names(pattern.as_deref()),
        Command::Methods {
            conn,
            pattern,
            offline,
            ..
        } => methods::methods(&conn.or(outer), pattern.as_deref(), offline, cli.output).await?,
        Command::Doc {
            conn,
            method,
            offline,
        } => methods::doc(&conn.or(outer), &method, offline, cli.output).await?,
        Command::Repl { conn } => return repl::repl(&conn.or(outer)).await,
        Command::Completions { shell } => {
            output::emit(&completions::script(shell));
            Exit::Ok
        }
        Command::Man => {
            output::emit(&man::page()?);
            Exit::Ok
        }
        Command::Compose { command } => compose::run(command, outer, cli.output).await?,
    };
    Ok(exit.into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn the_command_line_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn connection_options_work_before_and_after_the_command() {
        let before = Cli::try_parse_from(["midscript", "--mock", "-t", "5", "ping"]).unwrap();
        let after = Cli::try_parse_from(["midscript", "ping", "--mock", "-t", "5"]).unwrap();
        for cli in [before, after] {
            let Some(Command::Ping { conn }) = cli.command else {
                panic!()
            };
            let merged = conn.or(&cli.conn).settings;
            assert!(merged.mock);
            assert_eq!(merged.timeout, Some(5.0));
        }
        let mixed = Cli::try_parse_from([
            "midscript",
            "--url",
            "ws://a/api/current",
            "call",
            "--url",
            "ws://b/api/current",
            "x",
        ])
        .unwrap();
        let Some(Command::Call { conn, .. }) = mixed.command else {
            panic!()
        };
        assert_eq!(
            conn.or(&mixed.conn).settings.url.as_deref(),
            Some("ws://b/api/current")
        );
        // The server is one choice: a --host after the command beats a --url before it.
        let mixed = Cli::try_parse_from([
            "midscript",
            "--url",
            "ws://a/api/current",
            "ping",
            "--host",
            "b",
        ])
        .unwrap();
        let Some(Command::Ping { conn }) = mixed.command else {
            panic!()
        };
        let merged = conn.or(&mixed.conn).settings;
        assert_eq!((merged.url, merged.host.as_deref()), (None, Some("b")));
    }

    /// `line` split into words as a POSIX shell would for the simple cases of the examples
    /// (single and double quotes, backslash-escaped double quotes inside double quotes).
    fn shell_words(line: &str) -> Vec<String> {
        let (mut words, mut word, mut quote, mut any) = (Vec::new(), String::new(), None, false);
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, ' ') => {
                    if any {
                        words.push(std::mem::take(&mut word));
                    }
                    any = false;
                }
                (None, '\'' | '"') => (quote, any) = (Some(c), true),
                (Some(q), c) if c == q => quote = None,
                (Some('"'), '\\') if chars.peek() == Some(&'"') => word.push(chars.next().unwrap()),
                (_, c) => (word.push(c), any = true).1,
            }
        }
        if any {
            words.push(word);
        }
        words
    }

    #[test]
    fn every_help_example_parses_and_the_main_commands_have_some() {
        fn visit(cmd: &clap::Command, path: &str, found: &mut Vec<(String, String)>) {
            if let Some(help) = cmd.get_after_help() {
                for line in help.to_string().lines() {
                    if let Some(example) = line.strip_prefix("  midscript") {
                        found.push((path.to_owned(), format!("midscript{example}")));
                    }
                }
            }
            for sub in cmd.get_subcommands() {
                visit(sub, &format!("{path} {}", sub.get_name()), found);
            }
        }
        let mut found = Vec::new();
        visit(&Cli::command(), "midscript", &mut found);
        for command in [
            "midscript",
            "midscript call",
            "midscript run",
            "midscript mock",
            "midscript compose up",
            "midscript compose diff",
            "midscript methods",
            "midscript doc",
        ] {
            assert!(
                found.iter().any(|(p, _)| p == command),
                "no example in {command} --help"
            );
        }
        let mut checked = 0;
        for (_, example) in &found {
            // The command itself: before a comment column (two spaces or more), `|`, `&&`, `||`.
            let command = example.split("  ").next().unwrap();
            let command = [" | ", " && ", " || "]
                .iter()
                .fold(command, |c, sep| c.split(sep).next().unwrap());
            if command.contains('…') || command.contains('$') {
                continue;
            }
            let words = shell_words(command.trim());
            // As `main` does: `midscript -e CODE` and `midscript FILE.rhai` become `run`.
            let words = script_shorthand(words.into_iter().map(Into::into).collect());
            Cli::try_parse_from(&words).unwrap_or_else(|e| panic!("{example}: {e}"));
            checked += 1;
        }
        assert!(checked >= 15, "{checked} examples checked");
    }

    #[test]
    fn one_off_commands_run_on_one_thread() {
        let runtime = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("midscript").chain(args.iter().copied()))
                .unwrap()
                .runtime()
        };
        for one_off in [
            &["call", "system.info"][..],
            &["--mock", "call", "core.ping"],
            &["job", "app.start", "x"],
            &["ping"],
            &["subscribe", "app.query"],
            &["methods", "--offline"],
            &["doc", "--offline", "app.create"],
            &["check"],
        ] {
            assert_eq!(runtime(one_off), Runtime::CurrentThread, "{one_off:?}");
        }
        for threaded in [
            &["run", "x.rhai"][..],
            &["repl"],
            &["mock"],
            &["machine"],
            &["compose", "up"],
            &["top"],
            &[],
        ] {
            assert_eq!(runtime(threaded), Runtime::MultiThread, "{threaded:?}");
        }
    }

    #[test]
    fn the_mock_help_shows_no_output_options() {
        let mut cmd = Cli::command();
        cmd.build();
        let mock = cmd.find_subcommand_mut("mock").unwrap();
        let help = mock.render_long_help().to_string();
        assert!(!help.contains("--raw"), "{help}");
        assert!(!help.contains("--output"), "{help}");
        assert!(help.contains("--no-rate-limit"), "{help}");
        // Still shown elsewhere, and still parsed after `mock` (the command refuses them).
        let call = cmd.find_subcommand_mut("call").unwrap();
        assert!(call.render_long_help().to_string().contains("--raw"));
        for args in [
            &["midscript", "mock", "--raw"][..],
            &["midscript", "mock", "-o", "json"],
        ] {
            let cli = Cli::try_parse_from(args).unwrap();
            let Some(Command::Mock(m)) = cli.command else {
                panic!()
            };
            assert!(m.output_given(), "{args:?}");
        }
        let cli = Cli::try_parse_from(["midscript", "mock"]).unwrap();
        let Some(Command::Mock(m)) = cli.command else {
            panic!()
        };
        assert!(!m.output_given());
    }

    #[test]
    fn the_mock_takes_its_own_api_keys() {
        let cli = Cli::try_parse_from([
            "midscript",
            "mock",
            "--api-key",
            "1-a",
            "--api-key",
            "2-b",
            "--server-version",
            "26.0",
        ])
        .unwrap();
        assert!(matches!(cli.command, Some(Command::Mock(_))));
    }
}
