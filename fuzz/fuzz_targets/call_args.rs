//! Any command line after `midscript call` (arguments split at NUL bytes), and any JSON on
//! stdin for `call METHOD -`: parsing never panics.
#![no_main]

use clap::Parser as _;
use libfuzzer_sys::fuzz_target;
use midscript::cli::{Cli, parse_call_args};

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<String> = text.split('\0').map(str::to_owned).collect();
    let argv = ["midscript", "call"]
        .into_iter()
        .map(str::to_owned)
        .chain(args.iter().cloned());
    let _ = Cli::try_parse_from(argv);
    let _ = parse_call_args(&args, || Ok(text.to_string()));
    let dash = vec!["-".to_owned()];
    let _ = parse_call_args(&dash, || Ok(text.to_string()));
});
