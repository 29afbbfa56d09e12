//! Any compose file: loading it (YAML with anchors and merge keys, positions kept) and
//! interpolating every string of it never panics; errors name a place.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::compose_load(data));
