//! Prepares the bundled method catalog at build time, so that reading it costs nothing until a
//! method is looked up: `assets/core.get_methods-25.04.json.gz` is decompressed and split into
//! one JSON text per method (the dump's own bytes, unchanged), written one after the other to
//! `$OUT_DIR/catalog_entries.json`, with `$OUT_DIR/catalog_index.rs` listing each method's name
//! and byte range there, sorted by name. `src/catalog/` embeds both and parses an entry on its
//! first lookup.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::Read as _;
use std::path::PathBuf;

use serde_json::value::RawValue;

const ASSET: &str = "assets/core.get_methods-25.04.json.gz";

fn main() {
    println!("cargo::rerun-if-changed={ASSET}");
    println!("cargo::rerun-if-changed=build.rs");
    let gz = std::fs::read(ASSET).unwrap_or_else(|e| panic!("{ASSET}: {e}"));
    let mut json = String::new();
    flate2::read::GzDecoder::new(gz.as_slice())
        .read_to_string(&mut json)
        .unwrap_or_else(|e| panic!("{ASSET}: cannot decompress: {e}"));
    let entries: BTreeMap<String, Box<RawValue>> = serde_json::from_str(&json)
        .unwrap_or_else(|e| panic!("{ASSET}: not an object of methods: {e}"));

    let mut blob = String::with_capacity(json.len());
    let mut index = String::from(
        "/// The bundled catalog's methods: name, start and end of its entry in the blob.\n\
         pub(crate) static BUNDLED_INDEX: &[(&str, usize, usize)] = &[\n",
    );
    for (name, entry) in &entries {
        let start = blob.len();
        blob.push_str(entry.get());
        writeln!(index, "    ({name:?}, {start}, {}),", blob.len()).expect("a string");
    }
    index.push_str("];\n");

    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("OUT_DIR is set by cargo"));
    std::fs::write(out.join("catalog_entries.json"), blob).expect("write the catalog blob");
    std::fs::write(out.join("catalog_index.rs"), index).expect("write the catalog index");
}
