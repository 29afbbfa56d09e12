//! midscript: script, explore and deploy to TrueNAS through its middleware API.
//!
//! The library holds everything; the `midscript` binary is a thin front end.
//! - [`catalog`]: the method catalog (`core.get_methods`), offline docs and argument validation.
//! - [`cli`]: the command line (argument definitions, commands, exit codes).
//! - [`client`]: the JSON-RPC client (transport, calls, auth, jobs, events).
//! - [`colour`]: ANSI colour for JSON and diffs on a terminal (`NO_COLOR` respected).
//! - [`compose`]: compose deployments (a local project → an idempotent custom app).
//! - [`dirs`]: where midscript keeps its files (XDG config, state and cache folders).
//! - [`machine`]: the machine interface (one JSON request in, one JSON result out).
//! - [`mock`]: the built-in mock middleware, a simulated TrueNAS.
//! - [`monitor`]: live monitoring (`midscript top`, `midscript check`) fed by events.
//! - [`output`]: how results, progress and errors are printed.
//! - [`protocol`]: wire types shared by the client and the mock.
//! - [`repl`]: the interactive REPL (`midscript repl`) over the script engine.
//! - [`script`]: the Rhai script runner (`midscript run`), its bindings and embedded stdlib.
//! - [`ws`]: a WebSocket JSON client for services that are not TrueNAS (the scripts' `ws::`).

pub mod catalog;
pub mod cli;
pub mod client;
pub mod colour;
pub mod compose;
pub mod dirs;
pub mod machine;
pub mod mock;
pub mod monitor;
pub mod output;
pub mod protocol;
pub mod repl;
pub mod script;
pub mod ws;
