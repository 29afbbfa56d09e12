//! Any string: compose interpolation (`$VAR`, `${VAR:-default}`, `${VAR:?error}`, `$$`, nested
//! defaults) never panics.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::interpolate(data));
