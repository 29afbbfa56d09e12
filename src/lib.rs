//! midscript: script, explore and deploy to TrueNAS through its middleware API.
//!
//! The library holds everything; the `midscript` binary is a thin front end.
//! - [`catalog`]: the method catalog (`core.get_methods`), offline docs and argument validation.
//! - [`client`]: the JSON-RPC client (transport, calls, auth, jobs, events).
//! - [`protocol`]: wire types shared by the client and the mock.
//! - [`mock`]: the built-in mock middleware (a simulated TrueNAS server).
//! - [`script`]: the Rhai script runner (`midscript run`), its bindings and embedded stdlib.

pub mod catalog;
pub mod client;
pub mod mock;
pub mod protocol;
pub mod script;
