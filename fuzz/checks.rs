//! What each fuzz target checks, one function per target, shared by the fuzz targets
//! (`fuzz_targets/*.rs`) and the replay of committed crashing inputs
//! (`tests/fuzz_regressions.rs` in the main crate, which includes this file).
//! Every function takes arbitrary bytes and must neither panic nor hang.

#![allow(dead_code)]

use clap::Parser as _;
use midscript::cli::{Cli, parse_call_args};
use midscript::compose::Variables;
use midscript::compose::env_file::parse_env;
use midscript::compose::interpolate::Origin;
use midscript::compose::interpolate::expand;
use midscript::compose::interpolate::{Report, interpolate_file};
use midscript::compose::load;
use midscript::protocol::ddp::ServerMessage;
use midscript::protocol::ejson::{Ejson, humanize, iso8601_utc};
use midscript::protocol::{Incoming, redact};
use std::path::Path;

/// Any text frame on the JSON-RPC dialect: decoding it (and redacting it for a trace, which
/// every received frame goes through) never panics.
pub fn decode_jsonrpc(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = Incoming::parse(text);
    if let Ok(mut v) = serde_json::from_str::<serde_json::Value>(text) {
        redact::redact_keys(&mut v);
    }
}

/// Any text frame on the legacy `/websocket` dialect: decoding it never panics.
pub fn decode_legacy(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = ServerMessage::parse(text);
}

/// Extended JSON (`{"$date": …}`, `{"$set": …}`, …) in any JSON value: decoding never panics,
/// what decodes re-encodes to a value that decodes the same, and humanizing never panics.
pub fn ejson(data: &[u8]) {
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
}

/// Any compose file: loading it (YAML with anchors and merge keys, positions kept) and
/// interpolating every string of it never panics; errors name a place.
pub fn compose_load(data: &[u8]) {
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
}

/// Any string: compose interpolation (`$VAR`, `${VAR:-default}`, `${VAR:?error}`, `$$`, nested
/// defaults) never panics.
pub fn interpolate(data: &[u8]) {
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
}

/// Any env-file text, interpreted and raw: parsing never panics.
pub fn env_file(data: &[u8]) {
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
}

/// Any command line after `midscript call` (arguments split at NUL bytes), and any JSON on
/// stdin for `call METHOD -`: parsing never panics.
pub fn call_args(data: &[u8]) {
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
}
