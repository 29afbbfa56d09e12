//! Extended JSON (`{"$date": …}`, `{"$set": …}`, …) in any JSON value: decoding never panics,
//! what decodes re-encodes to a value that decodes the same, and humanizing never panics.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::ejson(data));
