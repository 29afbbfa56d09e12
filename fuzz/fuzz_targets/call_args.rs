//! Any command line after `midscript call` (arguments split at NUL bytes), and any JSON on
//! stdin for `call METHOD -`: parsing never panics.
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::call_args(data));
