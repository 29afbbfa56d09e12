//! midscript: script, explore and deploy to TrueNAS through its middleware API.
//!
//! The library holds everything; the `midscript` binary is a thin front end.
//! - [`protocol`]: wire types shared by the client and the mock.
//! - [`catalog`]: the method catalog (`core.get_methods`), offline docs and argument validation.

pub mod catalog;
pub mod protocol;
