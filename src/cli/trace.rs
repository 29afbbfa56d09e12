//! `--trace FILE`: the transcript of a run, one line per frame, in the mock's transcript
//! format: `-> {…}` for what was sent, `<- {…}` for what was received. Frames reach the
//! tracer already redacted (passwords, keys, tokens and OTPs are `"********"`, and values
//! under secret-looking names, by the rule every output uses); values known to be secrets
//! wherever they appear (a compose project's `${DB_PASS}` inside a command line) are masked
//! here. The file is private to its owner (0600), and can be shared in a bug report.

use std::io::Write as _;
use std::path::Path;
use std::sync::{Arc, Mutex};

use super::CliError;
use crate::client::{Direction, Tracer};
use crate::protocol::redact;

/// A tracer that writes to `path` (created, or truncated), flushing each line so the file is
/// complete even when the run is interrupted.
pub fn to_file(path: &Path) -> Result<Tracer, CliError> {
    let fail = |e: std::io::Error| {
        CliError::File(format!(
            "cannot write the trace file {}: {e}",
            path.display()
        ))
    };
    let mut open = std::fs::OpenOptions::new();
    open.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut open, 0o600);
    let file = open.open(path).map_err(fail)?;
    // An existing file keeps its mode on open: make it private too.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(0o600))
            .map_err(fail)?;
    }
    let file = Mutex::new(file);
    Ok(Arc::new(move |direction: Direction, frame: &str| {
        let arrow = match direction {
            Direction::Sent => "->",
            Direction::Received => "<-",
        };
        let line = format!("{arrow} {}\n", redact::scrub_known_values(frame));
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

    #[cfg(unix)]
    #[test]
    fn the_trace_file_is_private() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let fresh = dir.path().join("new.log");
        to_file(&fresh).unwrap();
        let old = dir.path().join("old.log");
        std::fs::write(&old, "x").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).unwrap();
        to_file(&old).unwrap();
        for path in [fresh, old] {
            let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode, 0o600, "{}", path.display());
        }
    }
}
