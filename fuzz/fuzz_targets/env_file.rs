//! Any env-file text, interpreted and raw: parsing never panics.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use midscript::compose::Variables;
use midscript::compose::env_file::parse_env;
use midscript::compose::interpolate::Origin;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let mut vars = Variables {
        environment: Some(Default::default()),
        ..Variables::default()
    };
    vars.vars.insert("A".into(), "x".into());
    for raw in [false, true] {
        let _ = parse_env(Path::new(".env"), text, &vars, Origin::DotEnv, raw);
    }
});
