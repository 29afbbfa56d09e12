//! Helpers for the end-to-end tests of the `midscript` binary: commands with a clean
//! environment (no URL, key or profile of the developer's, XDG folders of their own), and the
//! standalone mock in a child process.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

pub const BIN: &str = env!("CARGO_BIN_EXE_midscript");

/// Variables from the developer's shell that would change what the binary does.
const INHERITED: &[&str] = &[
    "MIDSCRIPT_URL",
    "TRUENAS_URL",
    "MIDSCRIPT_API_KEY",
    "TRUENAS_API_KEY",
    "MIDSCRIPT_PASSWORD",
    "MIDSCRIPT_PROFILE",
    "MIDSCRIPT_FINGERPRINT",
];

/// `args` with the environment cleaned and the XDG folders under `home`.
fn command_in(home: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(BIN);
    c.args(args);
    for var in INHERITED {
        c.env_remove(var);
    }
    c.env("NO_COLOR", "1")
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_STATE_HOME", home.join("state"))
        .env("XDG_CACHE_HOME", home.join("cache"));
    c
}

/// A command with a clean environment; its XDG folders are shared by the tests that do not
/// care about them (under cargo's per-target temporary folder).
pub fn midscript(args: &[&str]) -> Command {
    command_in(
        &Path::new(env!("CARGO_TARGET_TMPDIR")).join("shared-home"),
        args,
    )
}

/// Run to the end with nothing on stdin.
pub fn run(args: &[&str]) -> Output {
    midscript(args)
        .stdin(Stdio::null())
        .output()
        .expect("the binary runs")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A home of its own: config, state (known hosts) and cache start empty and are removed at
/// the end.
pub struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    pub fn new() -> Sandbox {
        Sandbox {
            dir: tempfile::tempdir().expect("a temporary folder"),
        }
    }

    /// The home folder.
    pub fn home(&self) -> &Path {
        self.dir.path()
    }

    /// `config.toml` in the XDG config folder.
    pub fn config_file(&self) -> PathBuf {
        self.home().join("config/midscript/config.toml")
    }

    /// The known-hosts file in the XDG state folder.
    pub fn known_hosts(&self) -> PathBuf {
        self.home().join("state/midscript/known_hosts")
    }

    /// The methods cache in the XDG cache folder.
    pub fn methods_cache(&self) -> PathBuf {
        self.home().join("cache/midscript/methods")
    }

    /// Write `text` to `path` (relative to the home), creating folders.
    pub fn write(&self, path: impl AsRef<Path>, text: &str) -> PathBuf {
        let path = self.home().join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, text).unwrap();
        path
    }

    pub fn command(&self, args: &[&str]) -> Command {
        command_in(self.home(), args)
    }

    pub fn run(&self, args: &[&str]) -> Output {
        self.command(args)
            .stdin(Stdio::null())
            .output()
            .expect("the binary runs")
    }

    /// Run with `input` on stdin.
    pub fn run_with_stdin(&self, args: &[&str], input: &str) -> Output {
        let mut child = self
            .command(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the binary runs");
        child
            .stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    }
}

/// `midscript mock` in a child process; killed on drop.
pub struct StandaloneMock {
    child: Child,
    pub lines: Vec<String>,
}

impl StandaloneMock {
    pub fn start(extra: &[&str]) -> StandaloneMock {
        let mut args = vec!["mock", "--deterministic"];
        args.extend_from_slice(extra);
        let mut child = midscript(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("mock starts");
        let mut reader = BufReader::new(child.stdout.take().expect("stdout"));
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            assert!(
                reader.read_line(&mut line).expect("read") > 0,
                "the mock ended before READY: {lines:?}"
            );
            let line = line.trim_end().to_owned();
            let done = line == "READY";
            lines.push(line);
            if done {
                break;
            }
        }
        StandaloneMock { child, lines }
    }

    pub fn value(&self, key: &str) -> String {
        self.lines
            .iter()
            .find_map(|l| l.strip_prefix(&format!("{key} ")))
            .unwrap_or_else(|| panic!("no {key} line in {:?}", self.lines))
            .to_owned()
    }
}

impl Drop for StandaloneMock {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
