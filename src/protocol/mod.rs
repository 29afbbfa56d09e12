//! Wire types shared by the client and the mock: JSON-RPC 2.0 envelopes, the TrueNAS error
//! object, `collection_update` / `notify_unsubscribed` notifications, errno names, extended JSON
//! and secret redaction.
//!
//! Nothing in here knows about sockets or sessions. The mock shares only this module with the
//! client, so a misunderstanding of the protocol on one side cannot be hidden by the same
//! misunderstanding on the other: the mock never uses client code, so the tests of one check
//! the other only where both follow the documented protocol.

pub mod channel_binding;
pub mod ddp;
pub mod ejson;
pub mod errno;
pub mod message;
pub mod redact;

pub use message::{
    CollectionUpdate, ErrorData, ErrorObject, EventKind, Incoming, Notification, Request, Response,
    ValidationEntry, codes,
};
