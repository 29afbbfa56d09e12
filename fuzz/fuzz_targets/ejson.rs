//! Extended JSON (`{"$date": …}`, `{"$set": …}`, …) in any JSON value: decoding never panics,
//! what decodes re-encodes to a value that decodes the same, and humanizing never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midscript::protocol::ejson::{Ejson, humanize, iso8601_utc};

fuzz_target!(|data: &[u8]| {
    if data.len() >= 8 {
        let ms = i64::from_le_bytes(data[..8].try_into().unwrap());
        let _ = iso8601_utc(ms);
    }
    let Ok(value) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    if let Some(decoded) = Ejson::decode(&value) {
        let again = Ejson::decode(&decoded.encode());
        assert_eq!(again.as_ref(), Some(&decoded), "{value}");
        let _ = decoded.humanized();
    }
    let _ = humanize(&value);
});
