//! midscript: script, explore and deploy to TrueNAS through its middleware API.
//!
//! The library holds everything; the `midscript` binary is a thin front end.
//! - [`protocol`]: wire types shared by the client and the mock.
//! - [`mock`]: the built-in mock middleware (a simulated TrueNAS server).

pub mod mock;
pub mod protocol;
