//! The method catalog: what `core.get_methods` says about every method, offline docs built from
//! it, and an argument validator that answers like the server's pydantic validation.
//!
//! - [`Catalog::bundled`]: a real TrueNAS 25.04 dump embedded in the crate (see
//!   `assets/README.md`). `build.rs` splits it into one JSON entry per method at build time;
//!   an entry is parsed on its first lookup, so a command that reads one method's doc (or the
//!   mock, which checks each call's arguments) pays for that method only.
//! - [`Catalog::from_value`]: the same from a live server's `core.get_methods` result.
//! - [`render_doc`], [`MethodInfo::summary`], [`MethodInfo::signature`]: plain-text docs.
//! - [`cache`]: servers' catalogs cached per server and version; [`Source`] says where one
//!   came from.
//! - [`suggestions`], [`MethodCatalog`]: "did you mean" for a misspelt method.
//! - [`validate_params`]: `-32602`-style [`ValidationEntry`] lists
//!   (see `validate.rs` for what is checked and what is deliberately accepted unchecked).
//!
//! [`ValidationEntry`]: crate::protocol::ValidationEntry

pub mod cache;
mod doc;
mod method;
mod schema;
mod suggest;
mod validate;

use std::collections::BTreeMap;
use std::fmt;
use std::io::Read;
use std::sync::OnceLock;

use serde_json::{Map, Value};

pub use cache::Source;
pub use doc::{listing, render_doc};
pub use method::{ArgInfo, MethodInfo};
pub use suggest::{MethodCatalog, SharedCatalog, event_known, suggest_in, suggestions};
pub use validate::{too_many_arguments, validate_params};

/// The bundled dump, gzip-compressed (unedited; origin in `assets/README.md`): the source of
/// `build.rs`'s prepared form, which tests compare against it.
#[cfg(test)]
const BUNDLED_GZ: &[u8] = include_bytes!("../../assets/core.get_methods-25.04.json.gz");

/// The bundled dump's entries, one JSON text per method, one after the other (`build.rs`).
static BUNDLED_ENTRIES: &str = include_str!(concat!(env!("OUT_DIR"), "/catalog_entries.json"));

// `BUNDLED_INDEX`: each method's name and the byte range of its entry in `BUNDLED_ENTRIES`.
include!(concat!(env!("OUT_DIR"), "/catalog_index.rs"));

/// Why a catalog could not be built.
#[derive(thiserror::Error, Debug)]
pub enum CatalogError {
    /// `core.get_methods` returns an object keyed by method name; this was something else.
    #[error("a method catalog must be a JSON object keyed by method name, found {found}")]
    NotAnObject {
        /// The JSON type found instead.
        found: &'static str,
    },
    /// The compressed data could not be decompressed.
    #[error("cannot decompress the method catalog: {0}")]
    Decompress(#[from] std::io::Error),
    /// The data is not valid JSON.
    #[error("the method catalog is not valid JSON: {0}")]
    Json(#[from] serde_json::Error),
}

/// Is `method` a read that is safe to send again when its reply was lost: a `query`,
/// `get_instance`, `get_*`, `config` or `info` method (those are allowed to the read-only admin
/// role on the server), or `core.ping`. A method the bundled catalog marks as a job is not a
/// read (one read-only method, `ipmi.sel.info`, is a job, and sending a job method again would
/// start a second job).
pub fn is_read_method(method: &str) -> bool {
    let Some((_, last)) = method.rsplit_once('.') else {
        return false;
    };
    let by_name = matches!(last, "query" | "get_instance" | "config" | "info" | "ping")
        || last.starts_with("get_");
    by_name && !Catalog::bundled().get(method).is_some_and(|m| m.job)
}

static BUNDLED: OnceLock<Catalog> = OnceLock::new();

/// Methods keyed by name; iteration is sorted by name.
#[derive(Clone, Default)]
pub struct Catalog {
    methods: BTreeMap<String, Slot>,
}

/// One method of a catalog: parsed already, or its JSON entry, parsed on first use.
#[derive(Clone)]
struct Slot {
    /// The entry's JSON text, for a method not parsed yet (the bundled catalog).
    entry: Option<&'static str>,
    info: OnceLock<MethodInfo>,
}

impl Slot {
    fn parsed(info: MethodInfo) -> Slot {
        Slot {
            entry: None,
            info: OnceLock::from(info),
        }
    }

    /// The method, parsed now if it was not. An entry that is not JSON (it cannot be: build.rs
    /// copies it from a parsed dump) reads as an entry without details, as odd entries do.
    fn info(&self, name: &str) -> &MethodInfo {
        self.info.get_or_init(|| {
            let entry = self
                .entry
                .and_then(|text| serde_json::from_str(text).ok())
                .unwrap_or(Value::Null);
            MethodInfo::from_entry(name.to_owned(), entry)
        })
    }
}

impl fmt::Debug for Catalog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Catalog")
            .field("methods", &self.methods.len())
            .finish()
    }
}

impl PartialEq for Catalog {
    fn eq(&self, other: &Catalog) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Catalog {
    /// The bundled TrueNAS 25.04 catalog (771 methods). The first call only lists the names;
    /// a method's entry is parsed when it is first looked up ([`Catalog::get`]) or iterated
    /// ([`Catalog::iter`] parses them all: ~35 MB of schemas). Its names need no parsing
    /// ([`Catalog::names`]).
    pub fn bundled() -> &'static Catalog {
        BUNDLED.get_or_init(Catalog::prepared)
    }

    /// The bundled catalog's names with their unparsed entries (what `build.rs` prepared).
    fn prepared() -> Catalog {
        let methods = BUNDLED_INDEX
            .iter()
            .map(|&(name, start, end)| {
                let slot = Slot {
                    entry: BUNDLED_ENTRIES.get(start..end),
                    info: OnceLock::new(),
                };
                (name.to_owned(), slot)
            })
            .collect();
        Catalog { methods }
    }

    /// How many methods have been parsed so far.
    #[cfg(test)]
    fn parsed(&self) -> usize {
        self.methods
            .values()
            .filter(|s| s.info.get().is_some())
            .count()
    }

    /// Build from gzip-compressed `core.get_methods` JSON.
    pub fn from_gzip(gz: &[u8]) -> Result<Catalog, CatalogError> {
        let mut json = Vec::with_capacity(gz.len() * 16);
        flate2::read::GzDecoder::new(gz).read_to_end(&mut json)?;
        let value: Value = serde_json::from_slice(&json)?;
        drop(json);
        Catalog::from_value(value)
    }

    /// Build from a `core.get_methods` result (an object keyed by method name). Entries are
    /// read leniently: missing keys become empty/false.
    pub fn from_value(v: Value) -> Result<Catalog, CatalogError> {
        let Value::Object(map) = v else {
            return Err(CatalogError::NotAnObject {
                found: schema::kind_of(&v),
            });
        };
        let methods = map
            .into_iter()
            .map(|(name, entry)| {
                let m = MethodInfo::from_entry(name.clone(), entry);
                (name, Slot::parsed(m))
            })
            .collect();
        Ok(Catalog { methods })
    }

    /// The method called `name`.
    pub fn get(&self, name: &str) -> Option<&MethodInfo> {
        self.methods
            .get_key_value(name)
            .map(|(name, slot)| slot.info(name))
    }

    /// Does the catalog have a method called `name`? (Parses nothing.)
    pub fn contains(&self, name: &str) -> bool {
        self.methods.contains_key(name)
    }

    /// Every method, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &MethodInfo> {
        self.methods.iter().map(|(name, slot)| slot.info(name))
    }

    /// Every method's name, sorted (parses nothing).
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.methods.keys().map(String::as_str)
    }

    /// Number of methods.
    pub fn len(&self) -> usize {
        self.methods.len()
    }

    /// No methods at all.
    pub fn is_empty(&self) -> bool {
        self.methods.is_empty()
    }

    /// Methods whose name matches `pattern`, sorted by name: a glob if it contains `*` (which
    /// matches any run of characters, dots included: `app.*`, `*.query`), else a substring.
    pub fn matching<'a>(&'a self, pattern: &'a str) -> impl Iterator<Item = &'a MethodInfo> {
        self.matching_names(pattern)
            .map(|name| self.methods[name].info(name))
    }

    /// The names [`Catalog::matching`] gives, without reading their entries (for completion).
    pub fn matching_names<'a>(&'a self, pattern: &'a str) -> impl Iterator<Item = &'a str> {
        let glob = pattern.contains('*');
        self.methods
            .keys()
            .filter(move |name| {
                if glob {
                    glob_match(pattern, name)
                } else {
                    name.contains(pattern)
                }
            })
            .map(String::as_str)
    }

    /// The catalog in `core.get_methods`'s shape: an object keyed by method name (sorted).
    pub fn to_value(&self) -> Value {
        let map: Map<String, Value> = self
            .methods
            .iter()
            .map(|(k, slot)| (k.clone(), slot.info(k).to_value()))
            .collect();
        Value::Object(map)
    }
}

/// `*`-only glob over the whole name (no other metacharacters).
fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else {
        return false;
    };
    let middle: Vec<&str> = parts.collect();
    let Some((last, middle)) = middle.split_last() else {
        return rest.is_empty(); // no `*` at all
    };
    for part in middle {
        match rest.find(part) {
            Some(i) => rest = &rest[i + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

#[cfg(test)]
mod tests;
