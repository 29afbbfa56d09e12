//! The method catalog: what `core.get_methods` says about every method, offline docs built from
//! it, and an argument validator that answers like the server's pydantic validation.
//!
//! - [`Catalog::bundled`]: a real TrueNAS 25.04 dump embedded in the crate (see
//!   `assets/README.md`), decompressed and parsed once on first use.
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
use std::io::Read;
use std::sync::OnceLock;

use serde_json::{Map, Value};

pub use cache::Source;
pub use doc::{listing, render_doc};
pub use method::{ArgInfo, MethodInfo};
pub use suggest::{MethodCatalog, SharedCatalog, suggest_in, suggestions};
pub use validate::{too_many_arguments, validate_params};

/// The bundled dump, gzip-compressed (unedited; origin in `assets/README.md`).
const BUNDLED_GZ: &[u8] = include_bytes!("../../assets/core.get_methods-25.04.json.gz");

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
/// role on the server), or `core.ping`. Where the bundled catalog is already loaded, a method
/// it marks as a job is not a read (one read-only method, `ipmi.sel.info`, is a job, and
/// sending a job method again would start a second job).
pub fn is_read_method(method: &str) -> bool {
    let Some((_, last)) = method.rsplit_once('.') else {
        return false;
    };
    let by_name = matches!(last, "query" | "get_instance" | "config" | "info" | "ping")
        || last.starts_with("get_");
    by_name
        && !Catalog::loaded_bundled()
            .and_then(|c| c.get(method))
            .is_some_and(|m| m.job)
}

static BUNDLED: OnceLock<Catalog> = OnceLock::new();

/// Methods keyed by name; iteration is sorted by name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Catalog {
    methods: BTreeMap<String, MethodInfo>,
}

impl Catalog {
    /// The bundled TrueNAS 25.04 catalog (771 methods). The first call decompresses and parses
    /// it (about 45 ms in a release build, ~35 MB of parsed schemas); later calls are free.
    /// The embedded asset is checked by this module's tests; were it corrupt, the catalog would
    /// be empty rather than panic.
    pub fn bundled() -> &'static Catalog {
        BUNDLED.get_or_init(|| Catalog::from_gzip(BUNDLED_GZ).unwrap_or_default())
    }

    /// The bundled catalog if something loaded it already (never loads it).
    pub fn loaded_bundled() -> Option<&'static Catalog> {
        BUNDLED.get()
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
                (name, m)
            })
            .collect();
        Ok(Catalog { methods })
    }

    /// The method called `name`.
    pub fn get(&self, name: &str) -> Option<&MethodInfo> {
        self.methods.get(name)
    }

    /// Every method, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = &MethodInfo> {
        self.methods.values()
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
        let glob = pattern.contains('*');
        self.iter().filter(move |m| {
            if glob {
                glob_match(pattern, &m.name)
            } else {
                m.name.contains(pattern)
            }
        })
    }

    /// The catalog in `core.get_methods`'s shape: an object keyed by method name (sorted).
    pub fn to_value(&self) -> Value {
        let map: Map<String, Value> = self
            .methods
            .iter()
            .map(|(k, m)| (k.clone(), m.to_value()))
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
