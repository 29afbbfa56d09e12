//! The integration tests: one binary, a module per area, one support module.
//!
//! - `ansible`: the Ansible collection with real ansible-core against three mocks
//! - `apps_versions`: app entries and app jobs as TrueNAS 26 and 27 changed them
//! - `cli`: the binary's start-up contract and exit statuses
//! - `machine`: `midscript machine` (JSON in and out) through the binary
//! - `official_client`: what the official client needs from a server, recorded from running it
//! - `oneoff`: one-off commands (methods, doc, profiles, trust, trace) as snapshots
//! - `traffic`: the client's frames against the in-process mock, the shared scenarios once per
//!   dialect; `legacy`: what only the legacy dialect has
//! - `compose` / `compose_cli`: compose deployments through the library and the binary
//! - `faults`: faults and bad input (issue 12): crashes, hangs, lost results, leaks
//! - `firsthour`: what a new user meets first (issue 15): the mock as a playground, "did you
//!   mean", saved REPL sessions, `run -`, `-q`, `compose diff --exit-code`, the README's commands
//! - `script`: the script runner, the stdlib and the examples in `scripts/`
//! - `repl`: the REPL through a pseudo-terminal
//! - `reconnect`: reconnect and resume against the mock's injected faults
//! - `scram`: SCRAM API-key logins with and without channel binding, client, CLI and mock
//! - `fuzz_regressions`: the fuzz targets' checks on committed crashing inputs and samples
//! - `monitor`: `top` (through a pseudo-terminal) and `check` against the mock
//! - `readme`: the README's playground block and `--mock` commands, run as written
//! - `ws`: the `ws` script module and `scripts/sysmedic-watch.rhai` against a SysMedic-protocol server

mod support;

mod ansible;
mod apps_versions;
mod cli;
mod compose;
mod compose_cli;
mod compose_oracle;
mod faults;
mod firsthour;
mod fuzz_regressions;
mod legacy;
mod machine;
mod monitor;
mod official_client;
mod oneoff;
mod readme;
mod reconnect;
mod repl;
mod scram;
mod script;
mod traffic;
mod ws;
