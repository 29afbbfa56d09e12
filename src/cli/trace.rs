//! `--trace FILE`: the transcript of a run, one line per frame, in the mock's transcript
//! format: `-> {…}` for what was sent, `<- {…}` for what was received. Frames reach the
//! tracer already redacted (passwords, keys, tokens and OTPs are `"********"`), so the file
//! can be shared in a bug report.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::CliError;
use crate::client::{Direction, Tracer};

/// A tracer that writes to `path` (created, or truncated), flushing each line so the file is
/// complete even when the run is interrupted.
pub fn to_file(path: &Path) -> Result<Tracer, CliError> {
    let file = std::fs::File::create(path).map_err(|e| {
        CliError::File(format!(
            "cannot write the trace file {}: {e}",
            path.display()
        ))
    })?;
    let file = Mutex::new(file);
    Ok(Arc::new(move |direction: Direction, frame: &str| {
        let arrow = match direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        let line = format!("{arrow} {frame}\n");
        if let Ok(mut f) = file.lock() {
            let _ = f.write_all(line.as_bytes());
        }
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_arrows_and_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.log");
        let t = to_file(&path).unwrap();
        t(Direction::Sent, r#"{"id":1}"#);
        t(Direction::Received, r#"{"id":1,"result":null}"#);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "-> {\"id\":1}\n<- {\"id\":1,\"result\":null}\n"
        );
        let Err(err) = to_file(&dir.path().join("no/such/dir/t.log")) else {
            panic!("a missing folder is an error")
        };
        assert_eq!(err.exit(), super::super::Exit::Usage);
    }
}
