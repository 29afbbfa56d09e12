//! The `midscript` binary: parse the command line, run it on the tokio runtime it needs (one
//! thread for one-off commands), exit with its code.

use std::process::ExitCode;

use clap::Parser;
use midscript::cli::{Cli, Exit, Runtime};

fn main() -> ExitCode {
    let cli = Cli::parse_from(midscript::cli::script_shorthand(
        std::env::args_os().collect(),
    ));
    let mut builder = match cli.runtime() {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => {
            let mut b = tokio::runtime::Builder::new_multi_thread();
            b.worker_threads(2);
            b
        }
    };
    let runtime = match builder.enable_all().build() {
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
