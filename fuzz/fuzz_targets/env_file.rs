//! Any env-file text, interpreted and raw: parsing never panics.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::env_file(data));
