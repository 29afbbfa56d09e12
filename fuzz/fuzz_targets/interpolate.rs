//! Any string: compose interpolation (`$VAR`, `${VAR:-default}`, `${VAR:?error}`, `$$`, nested
//! defaults) never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use midscript::compose::Variables;
use midscript::compose::interpolate::expand;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut vars = Variables {
        environment: Some(Default::default()),
        ..Variables::default()
    };
    vars.vars.insert("A".into(), "x".into());
    vars.vars.insert("EMPTY".into(), String::new());
    vars.dotenv.insert("B".into(), "${A}".into());
    let _ = expand(text, &vars);
});
