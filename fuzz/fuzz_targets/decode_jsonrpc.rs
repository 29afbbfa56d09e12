//! Any text frame on the JSON-RPC dialect: decoding it (and redacting it for a trace, which
//! every received frame goes through) never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midscript::protocol::{Incoming, redact};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Incoming::parse(text);
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) {
        redact::redact_keys(&mut v);
    }
});
