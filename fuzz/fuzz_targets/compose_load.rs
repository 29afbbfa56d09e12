//! Any compose file: loading it (YAML with anchors and merge keys, positions kept) and
//! interpolating every string of it never panics; errors name a place.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use midscript::compose::Variables;
use midscript::compose::interpolate::{Report, interpolate_file};
use midscript::compose::load;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = load::parse(Path::new("compose.yaml"), text.to_owned()) else {
        return;
    };
    let mut vars = Variables {
        environment: Some(Default::default()),
        ..Variables::default()
    };
    vars.vars.insert("TAG".into(), "1.27".into());
    vars.dotenv.insert("PASS".into(), "s3cret".into());
    let mut report = Report::default();
    let _ = interpolate_file(&file, &vars, &mut report);
});
