//! Any text frame on the legacy `/websocket` dialect: decoding it never panics.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::decode_legacy(data));
