//! What the integration tests share: the `midscript` binary with a clean environment and the
//! standalone mock in a child process (`standalone`), and the in-process mock with the
//! transcript checks for tests that drive the client library (`in_process`).

#![allow(dead_code)] // each area uses its own subset

pub mod in_process;
pub mod standalone;
pub mod sysmedic;
