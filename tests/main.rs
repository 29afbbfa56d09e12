//! The integration tests: one binary, a module per area, one support module.
//!
//! - `cli`: the binary's start-up contract and exit statuses
//! - `oneoff`: one-off commands (methods, doc, profiles, trust, trace) as snapshots
//! - `traffic`: the client's frames against the in-process mock, the shared scenarios once per
//!   dialect; `legacy`: what only the legacy dialect has
//! - `compose` / `compose_cli`: compose deployments through the library and the binary
//! - `script`: the script runner, the stdlib and the examples in `scripts/`
//! - `repl`: the REPL through a pseudo-terminal

mod support;

mod cli;
mod compose;
mod compose_cli;
mod compose_oracle;
mod legacy;
mod oneoff;
mod repl;
mod script;
mod traffic;
