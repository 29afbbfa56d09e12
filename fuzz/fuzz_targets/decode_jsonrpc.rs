//! Any text frame on the JSON-RPC dialect: decoding it (and redacting it for a trace, which
//! every received frame goes through) never panics.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decode_jsonrpc(data));
