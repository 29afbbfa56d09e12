//! midscript: script, explore and deploy to TrueNAS through its middleware API.
//!
//! The library holds everything; the `midscript` binary is a thin front end.
//! - [`client`]: the JSON-RPC client (transport, calls, auth, jobs, events).
//! - [`protocol`]: wire types shared by the client and the mock.

pub mod client;
pub mod protocol;
