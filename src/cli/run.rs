//! `midscript run FILE [ARGS]…`, `midscript FILE.rhai [ARGS]…` (and so `#!/usr/bin/env
//! midscript`), and `midscript -e CODE [ARGS]…`: run a Rhai script on one connection.

use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::{Arc, RwLock};

use clap::{Args, CommandFactory};
use tokio_util::sync::CancellationToken;

use super::{Cli, CliError, ConnArgs, Exit};
use crate::catalog::MethodCatalog;
use crate::output::{self, ProgressStyle};
use crate::script::{self, FailureKind, Outcome, RunOptions, Script, StdConsole};

/// The `run` command's own arguments.
#[derive(Debug, Clone, Args)]
#[command(after_help = "Examples:
  midscript --mock run scripts/system-report.rhai
  midscript --profile nas run deploy.rhai ARG…   what follows the file is the script's
  midscript -e 'print(call(\"system.info\").version)'
  curl -s https://…/x.rhai | midscript run -     the script from stdin")]
pub struct RunArgs {
    #[command(flatten)]
    pub conn: ConnArgs,
    /// Run CODE instead of a file; then every positional argument goes to the script.
    #[arg(long = "eval", short = 'e', value_name = "CODE")]
    pub eval: Option<String>,
    /// How to show the progress of jobs the script waits for.
    #[arg(long, value_enum, default_value_t = ProgressStyle::Auto)]
    pub progress: ProgressStyle,
    /// The script, a `.rhai` file (`-` reads it from stdin). Options for midscript go before
    /// it: what follows is the script's.
    #[arg(value_name = "FILE", required_unless_present = "eval")]
    pub file: Option<PathBuf>,
    /// Arguments for the script (`args` in it, an array of strings).
    #[arg(
        value_name = "ARGS",
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub args: Vec<String>,
}

/// Run the command. Returns the exit status: the script's `exit(n)`, 0 when it ends, 1 for an
/// uncaught error, 2 for a parse error (or a file that cannot be read), 3 when the connection
/// is lost, 130 after Ctrl-C.
pub async fn run(args: RunArgs, outer: &ConnArgs, verbose: bool) -> Result<ExitCode, CliError> {
    let mut script_args = args.args;
    let script = match (args.eval, args.file) {
        (Some(code), file) => {
            if let Some(f) = file {
                script_args.insert(0, f.to_string_lossy().into_owned());
            }
            Script::inline(code)
        }
        (None, Some(path)) if path.as_os_str() == "-" => {
            let mut code = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut code)
                .map_err(|e| CliError::File(format!("cannot read the script from stdin: {e}")))?;
            Script::stdin(code)
        }
        (None, Some(path)) => Script::from_file(&path)
            .map_err(|e| CliError::File(format!("cannot read {}: {e}", path.display())))?,
        (None, None) => Err(CliError::Usage("give a script file or -e CODE".into()))?,
    };

    // A syntax error is reported before connecting: each login counts against the server's
    // rate limit.
    if let Err(report) = script::check(&script) {
        output::warn(&report);
        return Ok(exit_status(&Outcome::Failed(FailureKind::Parse)));
    }

    // One connection and one login for the whole run. With no server named anywhere (flags,
    // environment, profile), it opens on the script's first call, so a script that only
    // talks to other services (`ws::connect`) runs with nothing configured.
    let resolved = args.conn.or(outer).resolve()?;
    let server_key = resolved.journal_server();
    let (session, connector) = if resolved.names_a_server() {
        let s = resolved.connect_resolved().await?;
        let c = script::Connector::Ready(s.client.clone());
        (Some(s), c)
    } else {
        let lazy: script::Connect = Arc::new(move || {
            let conn = resolved.clone();
            Box::pin(async move {
                conn.connect_resolved()
                    .await
                    .map(|s| s.client)
                    .map_err(|e| e.describe(false))
            })
        });
        (None, script::Connector::Lazy(lazy))
    };

    // Ctrl-C: the first one cancels what the script waits for (a job it waits on is aborted);
    // a second one quits at once.
    let cancel = CancellationToken::new();
    let on_ctrl_c = {
        let cancel = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            output::warn(
                "midscript: interrupted; stopping the script (Ctrl-C again to quit at once)",
            );
            cancel.cancel();
            if tokio::signal::ctrl_c().await.is_ok() {
                std::process::exit(Exit::Interrupted as i32);
            }
        })
    };

    let mut options = RunOptions::new(Arc::new(StdConsole::new(args.progress)));
    options.args = script_args;
    options.cancel = cancel;
    options.verbose = verbose;
    options.catalog = Some(Arc::new(RwLock::new(MethodCatalog::Bundled)));
    options.server_key = server_key;
    let outcome = script::run_with(connector, script, options).await;
    on_ctrl_c.abort();
    if let Some(session) = session {
        session.finish().await;
    }
    Ok(exit_status(&outcome))
}

fn exit_status(outcome: &Outcome) -> ExitCode {
    let exit = match outcome {
        Outcome::Success => Exit::Ok,
        Outcome::Exit(code) => return ExitCode::from((*code).clamp(0, 255) as u8),
        Outcome::Failed(FailureKind::Parse) => Exit::Usage,
        Outcome::Failed(FailureKind::Runtime | FailureKind::Server) => Exit::MethodError,
        Outcome::Failed(FailureKind::Connection) => Exit::Connection,
        Outcome::Cancelled => Exit::Interrupted,
    };
    exit.into()
}

/// Rewrite a command line for scripts:
/// - without a command, `midscript [OPTIONS] FILE.rhai …` (which is also how
///   `#!/usr/bin/env midscript` starts a script) and `midscript [OPTIONS] -e CODE …` become
///   `midscript [OPTIONS] run …`;
/// - in a `run`, everything after the script file (or after `-e CODE`) belongs to the script,
///   even words that look like midscript's options (`--yes`, `-v`): a `--` is put before them.
///
/// Anything else is returned as it came.
pub fn script_shorthand(mut args: Vec<OsString>) -> Vec<OsString> {
    let cli = Cli::command();
    let Some(run_cmd) = cli.find_subcommand("run") else {
        return args;
    };
    let known: Vec<&clap::Arg> = cli.get_arguments().chain(run_cmd.get_arguments()).collect();
    let takes_value = |a: &str| {
        let (long, short) = match a.strip_prefix("--") {
            Some(l) if l.contains('=') => return false,
            Some(l) => (Some(l), None),
            None => match a.strip_prefix('-').map(|s| s.chars().collect::<Vec<_>>()) {
                Some(c) if c.len() == 1 => (None, Some(c[0])),
                _ => return false,
            },
        };
        known.iter().any(|k| {
            k.get_action().takes_values()
                && ((long.is_some() && k.get_long() == long)
                    || (short.is_some() && k.get_short() == short))
        })
    };
    let is_eval = |a: &str| a == "-e" || a == "--eval";

    // Before the command: find it, or a script, or -e.
    let mut i = 1;
    let run_at = loop {
        let Some(a) = args.get(i).and_then(|a| a.to_str()) else {
            return args;
        };
        if is_eval(a) || a.starts_with("--eval=") {
            args.insert(i, "run".into());
            break i;
        }
        if a == "--" {
            return args;
        }
        if a.starts_with('-') && a.len() > 1 {
            i += if takes_value(a) { 2 } else { 1 };
            continue;
        }
        if a == "run" {
            break i;
        }
        if cli.find_subcommand(a).is_some() || a == "help" {
            return args;
        }
        if a.ends_with(".rhai") || is_midscript_script(Path::new(a)) {
            args.insert(i, "run".into());
            break i;
        }
        return args;
    };

    // After `run`: the script's arguments start after `-e CODE`, or after the file.
    let mut i = run_at + 1;
    while let Some(a) = args.get(i).and_then(|a| a.to_str()) {
        let starts = if a == "--" {
            return args;
        } else if is_eval(a) {
            i + 2
        } else if a.starts_with("--eval=") || !a.starts_with('-') || a == "-" {
            i + 1
        } else {
            i += if takes_value(a) { 2 } else { 1 };
            continue;
        };
        if starts < args.len() && args[starts] != "--" {
            args.insert(starts, "--".into());
        }
        return args;
    }
    args
}

/// A file whose first line is a `#!` line naming midscript.
fn is_midscript_script(path: &Path) -> bool {
    use std::io::{BufRead, BufReader, Read};
    let Ok(file) = std::fs::File::open(path) else {
        return false;
    };
    let mut first = String::new();
    if BufReader::new(file.take(512))
        .read_line(&mut first)
        .is_err()
    {
        return false;
    }
    first.starts_with("#!") && first.contains("midscript")
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn rewrite(args: &[&str]) -> Vec<String> {
        script_shorthand(args.iter().map(OsString::from).collect())
            .into_iter()
            .map(|a| a.to_string_lossy().into_owned())
            .collect()
    }

    #[test]
    fn rhai_files_and_eval_become_run() {
        assert_eq!(
            rewrite(&["midscript", "deploy.rhai", "x"]),
            ["midscript", "run", "deploy.rhai", "--", "x"]
        );
        assert_eq!(
            rewrite(&["midscript", "--mock", "-U", "deploy.rhai", "s.rhai"]),
            ["midscript", "--mock", "-U", "deploy.rhai", "run", "s.rhai"]
        );
        assert_eq!(
            rewrite(&["midscript", "--url=ws://x", "-e", "print(1)"]),
            ["midscript", "--url=ws://x", "run", "-e", "print(1)"]
        );
        assert_eq!(
            rewrite(&["midscript", "-e", "print(1)", "-v"]),
            ["midscript", "run", "-e", "print(1)", "--", "-v"]
        );
        assert_eq!(
            rewrite(&["midscript", "call", "a.rhai"]),
            ["midscript", "call", "a.rhai"]
        );
        assert_eq!(
            rewrite(&["midscript", "run", "a.rhai"]),
            ["midscript", "run", "a.rhai"]
        );
        assert_eq!(
            rewrite(&["midscript", "run", "-q", "--url", "u", "a.rhai", "--mock"]),
            [
                "midscript",
                "run",
                "-q",
                "--url",
                "u",
                "a.rhai",
                "--",
                "--mock"
            ]
        );
        assert_eq!(
            rewrite(&["midscript", "run", "a.rhai", "--", "x"]),
            ["midscript", "run", "a.rhai", "--", "x"]
        );
        assert_eq!(rewrite(&["midscript", "ping"]), ["midscript", "ping"]);
        assert_eq!(rewrite(&["midscript"]), ["midscript"]);
    }

    #[test]
    fn shebang_scripts_without_extension_become_run() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deploy");
        std::fs::write(&path, "#!/usr/bin/env midscript\nprint(1);\n").unwrap();
        let p = path.to_string_lossy().into_owned();
        assert_eq!(
            rewrite(&["midscript", &p, "--mock"]),
            ["midscript", "run", p.as_str(), "--", "--mock"]
        );
    }

    #[test]
    fn script_arguments_are_the_scripts() {
        let cli = Cli::try_parse_from(rewrite(&[
            "midscript",
            "--mock",
            "s.rhai",
            "--yes",
            "-v",
            "x",
        ]))
        .unwrap();
        let Some(super::super::Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert!(cli.conn.settings.mock);
        assert!(!cli.verbose);
        assert_eq!(run.file.as_deref(), Some(Path::new("s.rhai")));
        assert_eq!(run.args, ["--yes", "-v", "x"]);

        let cli = Cli::try_parse_from(rewrite(&["midscript", "run", "s.rhai", "--mock"])).unwrap();
        let Some(super::super::Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert!(!run.conn.settings.mock);
        assert_eq!(run.args, ["--mock"]);

        let cli =
            Cli::try_parse_from(rewrite(&["midscript", "-e", "print(args)", "a", "--b"])).unwrap();
        let Some(super::super::Command::Run(run)) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.eval.as_deref(), Some("print(args)"));
        assert_eq!(run.file.as_deref(), Some(Path::new("a")));
        assert_eq!(run.args, ["--b"]);

        assert!(Cli::try_parse_from(["midscript", "run"]).is_err());
    }
}
