//! The README's commands, run as written: the playground block (marked
//! `<!-- readme-test: playground -->`) against a `midscript mock --env` it starts itself, and
//! every `midscript --mock …` command of its shell blocks, compared with the output the README
//! shows after a `$ ` command when it shows one.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::support::standalone::{BIN, stderr, stdout};

fn readme() -> String {
    std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("README.md")).unwrap()
}

/// The fenced block after `marker`, without its fences.
fn block_after(text: &str, marker: &str) -> String {
    let start = text
        .find(marker)
        .unwrap_or_else(|| panic!("no {marker} in README.md"));
    let rest = &text[start..];
    let open = rest.find("```sh\n").expect("a sh block after the marker") + "```sh\n".len();
    let close = rest[open..].find("```").expect("the block ends");
    rest[open..open + close].to_owned()
}

/// `sh -c script` in the repository, with the built `midscript` first on `PATH`, a home of
/// its own and none of the developer's settings.
fn shell(script: &str, home: &Path) -> Output {
    let bin_dir = PathBuf::from(BIN).parent().unwrap().to_path_buf();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut c = Command::new("sh");
    c.arg("-c").arg(script);
    for (name, _) in std::env::vars() {
        if name.starts_with("MIDSCRIPT_")
            || name.starts_with("TRUENAS_")
            || name.starts_with("COMPOSE_")
        {
            c.env_remove(name);
        }
    }
    c.current_dir(env!("CARGO_MANIFEST_DIR"))
        .env("PATH", path)
        .env("NO_COLOR", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"))
        .stdin(Stdio::null())
        .output()
        .expect("sh runs")
}

#[test]
fn the_playground_block_runs_as_written() {
    let block = block_after(&readme(), "<!-- readme-test: playground -->");
    for needed in [
        "eval \"$(midscript mock --env --demo)\"",
        "midscript compose up ",
        "midscript compose ps",
        "midscript compose logs",
        "midscript compose rollback",
        "midscript compose down",
        "kill $MIDSCRIPT_MOCK_PID",
    ] {
        assert!(
            block.contains(needed),
            "the playground lacks {needed:?}:\n{block}"
        );
    }
    let home = tempfile::tempdir().unwrap();
    // Stop the mock whatever happens; every command must succeed (`set -e`).
    let script =
        format!("set -e\ntrap 'kill $MIDSCRIPT_MOCK_PID 2>/dev/null || true' EXIT\n{block}");
    let o = shell(&script, home.path());
    assert_eq!(
        o.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&o),
        stderr(&o)
    );
    let out = stdout(&o);
    for expected in [
        "\"hostname\":\"truenas\"",
        "+ web (image traefik/whoami:v1.10)",
        "whoami: created, RUNNING",
        "whoami: unchanged, RUNNING",
        "image: \"traefik/whoami:v1.10\" -> \"traefik/whoami:v1.11\"",
        "whoami: updated, RUNNING",
        "rolled whoami back to the document deployed at",
        "whoami: stopped",
    ] {
        assert!(
            out.contains(expected),
            "{expected:?} not in:\n{out}\nstderr:\n{}",
            stderr(&o)
        );
    }
}

/// Every `midscript --mock …` line of the README's shell blocks (with or without a `$ `
/// prompt), and the output shown under a `$ ` line until the next one.
fn mock_commands(text: &str) -> Vec<(String, Option<String>)> {
    let mut found = Vec::new();
    let mut in_sh = false;
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        if line.starts_with("```") {
            in_sh = line == "```sh";
            continue;
        }
        if !in_sh {
            continue;
        }
        let prompted = line.starts_with("$ ");
        let command = line.trim_start_matches("$ ");
        if !command.starts_with("midscript --mock ") {
            continue;
        }
        // The comment column: two spaces, then `#`.
        let command = command.split("  #").next().unwrap().trim().to_owned();
        let mut shown = Vec::new();
        while prompted
            && let Some(l) = lines.next_if(|l| !l.starts_with("$ ") && !l.starts_with("```"))
        {
            shown.push(l.to_owned());
        }
        let shown = (!shown.is_empty()).then(|| shown.join("\n") + "\n");
        found.push((command, shown));
    }
    found
}

#[test]
fn every_mock_command_of_the_readme_runs_and_prints_what_it_shows() {
    let commands = mock_commands(&readme());
    assert!(commands.len() >= 4, "{commands:?}");
    let home = tempfile::tempdir().unwrap();
    let mut ran = 0;
    for (command, shown) in &commands {
        // `top` without --once is the dashboard (a terminal); jq may not be installed.
        if (command.contains(" top") && !command.contains("--once")) || command.contains("| jq") {
            continue;
        }
        let o = shell(command, home.path());
        let code = o.status.code();
        match shown {
            Some(expected) => {
                assert_eq!(&stdout(&o), expected, "{command}\nstderr:\n{}", stderr(&o))
            }
            // `check` reports through its exit status; the others succeed.
            None if command.contains(" check") => assert!(code.is_some(), "{command}"),
            None => assert_eq!(code, Some(0), "{command}\nstderr:\n{}", stderr(&o)),
        }
        ran += 1;
    }
    assert!(ran >= 6, "{ran} commands ran: {commands:?}");
}
