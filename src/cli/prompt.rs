//! Asking the person at the terminal: a password, a one-time password, whether to trust a
//! certificate. Never without a terminal: a run from a script or CI fails with a clear error
//! instead of waiting for an answer that cannot come.

use std::io::{BufRead as _, IsTerminal as _, Write as _};

/// Where questions go. [`Terminal`] in the binary; tests script the answers.
pub trait Prompter: Send + Sync {
    /// Is there someone to ask?
    fn interactive(&self) -> bool;
    /// Show `prompt` and read one line (echoed); `None` when nothing could be read.
    fn ask(&self, prompt: &str) -> Option<String>;
    /// Show `prompt` and read a secret without echoing it; `None` when nothing could be read.
    fn secret(&self, prompt: &str) -> Option<String>;
}

/// The controlling terminal: asks on `/dev/tty` (so stdin stays free for `call … -`) when
/// stderr is a terminal too; a run with stderr redirected is treated as non-interactive.
#[derive(Debug, Clone, Copy, Default)]
pub struct Terminal;

#[cfg(unix)]
fn tty() -> std::io::Result<std::fs::File> {
    std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/tty")
}

impl Prompter for Terminal {
    fn interactive(&self) -> bool {
        if !std::io::stderr().is_terminal() {
            return false;
        }
        #[cfg(unix)]
        return tty().is_ok();
        #[cfg(not(unix))]
        return std::io::stdin().is_terminal();
    }

    fn ask(&self, prompt: &str) -> Option<String> {
        #[cfg(unix)]
        {
            let mut tty = tty().ok()?;
            tty.write_all(prompt.as_bytes()).ok()?;
            tty.flush().ok()?;
            let mut line = String::new();
            std::io::BufReader::new(tty).read_line(&mut line).ok()?;
            Some(line.trim().to_owned())
        }
        #[cfg(not(unix))]
        {
            // A closed stderr is no reason to panic: the question goes unseen, the answer is read.
            let mut err = std::io::stderr();
            let _ = err.write_all(prompt.as_bytes());
            let _ = err.flush();
            let mut line = String::new();
            std::io::stdin().lock().read_line(&mut line).ok()?;
            Some(line.trim().to_owned())
        }
    }

    fn secret(&self, prompt: &str) -> Option<String> {
        rpassword::prompt_password(prompt).ok()
    }
}

/// Nobody to ask: every question goes unanswered.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoTerminal;

impl Prompter for NoTerminal {
    fn interactive(&self) -> bool {
        false
    }
    fn ask(&self, _: &str) -> Option<String> {
        None
    }
    fn secret(&self, _: &str) -> Option<String> {
        None
    }
}

/// Answers given in advance, in order (tests); records every prompt shown.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Scripted {
    answers: std::sync::Mutex<std::collections::VecDeque<String>>,
    /// The prompts shown, in order.
    pub shown: std::sync::Mutex<Vec<String>>,
}

#[cfg(test)]
impl Scripted {
    /// A prompter that answers `answers`, one per question.
    pub fn new(answers: &[&str]) -> Scripted {
        Scripted {
            answers: std::sync::Mutex::new(answers.iter().map(|a| a.to_string()).collect()),
            shown: Default::default(),
        }
    }

    fn next(&self, prompt: &str) -> Option<String> {
        self.shown.lock().unwrap().push(prompt.to_owned());
        self.answers.lock().unwrap().pop_front()
    }
}

#[cfg(test)]
impl Prompter for Scripted {
    fn interactive(&self) -> bool {
        true
    }
    fn ask(&self, prompt: &str) -> Option<String> {
        self.next(prompt)
    }
    fn secret(&self, prompt: &str) -> Option<String> {
        self.next(prompt)
    }
}
