//! The `midscript` binary: parse the command line, run it on a tokio runtime, exit with its code.

use std::process::ExitCode;

use clap::Parser;
use midscript::cli::{Cli, Exit};

fn main() -> ExitCode {
    let cli = Cli::parse_from(midscript::cli::script_shorthand(
        std::env::args_os().collect(),
    ));
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            midscript::output::warn(&format!(
                "midscript: error: cannot start the async runtime: {e}"
            ));
            return Exit::Connection.into();
        }
    };
    runtime.block_on(midscript::cli::run(cli))
}
