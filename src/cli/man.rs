//! `midscript man`: the manual page, generated from the command line's definition (its
//! options, commands, exit statuses and files), so it cannot drift from `--help`.

use clap::CommandFactory as _;

use super::{Cli, CliError};

/// The roff source of `midscript(1)`.
pub fn page() -> Result<String, CliError> {
    let mut out = Vec::new();
    clap_mangen::Man::new(Cli::command())
        .render(&mut out)
        .map_err(|e| CliError::Output(format!("cannot render the manual page: {e}")))?;
    String::from_utf8(out).map_err(|e| CliError::Output(format!("manual page: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_page_has_the_title_the_commands_the_options_and_the_exit_statuses() {
        let page = page().unwrap();
        assert!(page.contains(".TH midscript 1"), "{page}");
        assert!(page.contains(".SH SUBCOMMANDS"), "{page}");
        for command in [
            "midscript\\-call(1)",
            "midscript\\-compose(1)",
            "midscript\\-mock(1)",
        ] {
            assert!(page.contains(command), "{command} in {page}");
        }
        assert!(page.contains("\\-\\-profile"), "{page}");
        assert!(page.contains("Exit status:"), "{page}");
    }
}
