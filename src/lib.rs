//! midscript: script, explore and deploy to TrueNAS through its middleware API.
//!
//! The library holds everything; the `midscript` binary is a thin front end.
//! - [`protocol`]: wire types shared by the client and the mock.

pub mod protocol;
