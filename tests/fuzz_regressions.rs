//! The fuzz targets' checks (`fuzz/checks.rs`) replayed on every input committed under
//! `fuzz/regressions/TARGET/` (crashes the fuzzers found, kept once fixed) and on the
//! repository's own samples of each input kind, so `cargo test` keeps them fixed without
//! a nightly toolchain.

use std::path::{Path, PathBuf};

#[path = "../fuzz/checks.rs"]
mod checks;

/// What a fuzz target checks: arbitrary bytes in, a panic on a bug.
type Check = fn(&[u8]);

const TARGETS: [(&str, Check); 7] = [
    ("decode_jsonrpc", checks::decode_jsonrpc),
    ("decode_legacy", checks::decode_legacy),
    ("ejson", checks::ejson),
    ("compose_load", checks::compose_load),
    ("interpolate", checks::interpolate),
    ("env_file", checks::env_file),
    ("call_args", checks::call_args),
];

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
    v.sort();
    v
}

/// Samples of what each target parses, from the repository's fixtures.
fn samples(target: &str) -> Vec<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let compose = root.join("tests/fixtures/compose");
    let projects = files_in(&compose).into_iter().filter(|p| p.is_dir());
    match target {
        "compose_load" | "interpolate" => projects
            .flat_map(|p| files_in(&p))
            .filter(|f| {
                let name = f.file_name().unwrap().to_string_lossy();
                name.ends_with(".yaml") || name.ends_with(".yml")
            })
            .collect(),
        "env_file" => projects
            .map(|p| p.join(".env"))
            .filter(|f| f.is_file())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn committed_crashing_inputs_and_samples_pass_every_check() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/regressions");
    let mut replayed = 0;
    for (target, check) in TARGETS {
        for file in files_in(&root.join(target))
            .into_iter()
            .chain(samples(target))
        {
            let data = std::fs::read(&file).unwrap();
            check(&data);
            replayed += 1;
        }
    }
    assert!(replayed > 0, "no inputs found under {}", root.display());
}

/// Inputs every target must take without panicking, whatever the corpus holds.
#[test]
fn hostile_inputs_pass_every_check() {
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_yaml = format!("a: {}1{}", "[".repeat(100_000), "]".repeat(100_000));
    let nested_default = format!("{}x{}", "${A:-".repeat(10_000), "}".repeat(10_000));
    let inputs: [&[u8]; 8] = [
        b"",
        b"\xff\xfe",
        b"\0\0\0",
        deep_json.as_bytes(),
        deep_yaml.as_bytes(),
        nested_default.as_bytes(),
        br#"{"msg":"result","id":"1","error":{"error":"x"}}"#,
        br#"{"$date": 9223372036854775807}"#,
    ];
    for (_, check) in TARGETS {
        for input in inputs {
            check(input);
        }
    }
}
