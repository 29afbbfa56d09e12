//! Errors of the compose pipeline, each naming its place (file:line:col) when the input has one.

use std::fmt;
use std::path::{Path, PathBuf};

/// A place in an input file: `compose.yaml:6:5`, or just the file when no position is known.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// The file, as the user named it (or as found in the project directory).
    pub file: PathBuf,
    /// 1-based line and column, when known.
    pub position: Option<(u64, u64)>,
}

impl Place {
    /// A place without a position.
    pub fn file(file: &Path) -> Place {
        Place {
            file: file.to_path_buf(),
            position: None,
        }
    }

    /// A place at `line:column` (1-based; 0 means unknown).
    pub fn at(file: &Path, line: u64, column: u64) -> Place {
        Place {
            file: file.to_path_buf(),
            position: (line > 0).then_some((line, column.max(1))),
        }
    }
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some((l, c)) => write!(f, "{}:{l}:{c}", self.file.display()),
            None => write!(f, "{}", self.file.display()),
        }
    }
}

/// One reason the project cannot be deployed as it is (several are reported together).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Where, as precisely as known.
    pub place: Place,
    /// The compose path, e.g. `services.app.build`.
    pub path: String,
    /// What is wrong and what to do instead.
    pub reason: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.place, self.path, self.reason)
    }
}

/// Everything that can go wrong while turning a local project into a deployable document.
#[derive(Debug, thiserror::Error)]
pub enum ComposeError {
    /// No `-f` was given and none of the default file names exists.
    #[error(
        "no compose file in {}: looked for compose.yaml, compose.yml, docker-compose.yml and docker-compose.yaml (or pass -f FILE)",
        dir.display()
    )]
    NoComposeFile {
        /// The directory searched.
        dir: PathBuf,
    },
    /// A file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The YAML does not parse.
    #[error("{place}: invalid YAML: {message}{snippet}")]
    Yaml {
        /// Where the parser stopped.
        place: Place,
        /// The parser's message.
        message: String,
        /// The offending line with a caret under the column (may be empty).
        snippet: String,
    },
    /// The document parses but is not a compose document (e.g. `services` is a list).
    #[error("{place}: {message}")]
    Invalid {
        /// Where.
        place: Place,
        /// What.
        message: String,
    },
    /// `${VAR:?message}` or `${VAR?message}` with the variable missing.
    #[error("{place}: required variable {name} is missing a value{}{snippet}", if message.is_empty() { String::new() } else { format!(": {message}") })]
    MissingVariable {
        /// Where the expression is.
        place: Place,
        /// The variable.
        name: String,
        /// The message written after `?` in the file.
        message: String,
        /// The offending line with a caret (may be empty).
        snippet: String,
    },
    /// A `${…}` expression compose would reject ("invalid interpolation format").
    #[error("{place}: invalid interpolation format {text:?}: {reason}")]
    BadTemplate {
        /// Where.
        place: Place,
        /// The expression.
        text: String,
        /// Why.
        reason: String,
    },
    /// A `.env` or `env_file` file has a line that cannot be parsed.
    #[error("{place}: {message}")]
    EnvFile {
        /// Where.
        place: Place,
        /// What.
        message: String,
    },
    /// Things the server cannot run, reported together.
    #[error("{}", problems.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n"))]
    Refused {
        /// Each problem.
        problems: Vec<Problem>,
    },
    /// The app name (given or derived from the folder) breaks TrueNAS's rule.
    #[error(
        "invalid app name {name:?}: {reason} (TrueNAS app names match ^[a-z]([-a-z0-9]*[a-z0-9])?$, 1-40 characters; pass --name)"
    )]
    AppName {
        /// The name.
        name: String,
        /// Which part of the rule it breaks.
        reason: String,
    },
    /// The option values make no sense (e.g. a relative `--dataset-root`).
    #[error("{0}")]
    Options(String),
    /// The whole `app.create` request would not fit in one WebSocket message.
    #[error(
        "the app.create request would be {size} characters; TrueNAS accepts at most {limit} characters in one message: shrink the compose file (move config into files on a dataset)"
    )]
    TooLarge {
        /// Characters of the request.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// A file to upload does not fit in one `filesystem.file_receive` message.
    #[error(
        "{} is {size} bytes; midscript uploads files of at most {limit} bytes: copy it to {remote} on the NAS yourself",
        path.display()
    )]
    UploadTooLarge {
        /// The local file.
        path: PathBuf,
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
        /// Where it would go on the NAS.
        remote: String,
    },
    /// The local deploy journal could not be read or written.
    #[error("deploy journal {}: {message}", path.display())]
    Journal {
        /// The file or directory.
        path: PathBuf,
        /// What failed.
        message: String,
    },
}

/// The source line `line` (1-based) with a caret under `column`, indented, for error messages.
pub(crate) fn snippet(text: &str, line: u64, column: u64) -> String {
    let Some(src) = text.lines().nth(line.saturating_sub(1) as usize) else {
        return String::new();
    };
    let width = line.to_string().len();
    let pad = " ".repeat(width);
    let caret_at: String = src
        .chars()
        .take(column.saturating_sub(1) as usize)
        .map(|c| if c == '\t' { '\t' } else { ' ' })
        .collect();
    format!("\n{pad} |\n{line} | {src}\n{pad} | {caret_at}^")
}
