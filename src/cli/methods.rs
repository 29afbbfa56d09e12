//! `midscript methods [PATTERN]` and `midscript doc METHOD`: the server's own method catalog
//! (`core.get_methods`), cached per server and version, or the bundled 25.04 catalog with
//! `--mock`, `--offline`, or when no server is given.

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::{CliError, ConnArgs, Exit, trust};
use crate::catalog::{Catalog, MethodInfo, render_doc};
use crate::client::Client;
use crate::dirs::{Dirs, create_parent};
use crate::output::{self, Format};

/// Where a catalog came from, for messages.
pub(crate) enum Source {
    Bundled,
    Server { host: String, version: String },
}

impl std::fmt::Display for Source {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Source::Bundled => f.write_str("the bundled TrueNAS 25.04 catalog"),
            Source::Server { host, version } => write!(f, "{host} (TrueNAS {version})"),
        }
    }
}

/// A catalog, borrowed (bundled) or owned (a server's).
enum Loaded {
    Bundled,
    Owned(Box<Catalog>),
}

impl Loaded {
    fn catalog(&self) -> &Catalog {
        match self {
            Loaded::Bundled => Catalog::bundled(),
            Loaded::Owned(c) => c,
        }
    }
}

/// A file name made of `s`: letters, digits, `.`, `-` and `_` kept, anything else `_`.
fn file_name(s: &str) -> String {
    let name: String = s
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match name.trim_matches('.') {
        "" => "_".to_owned(),
        n => n.to_owned(),
    }
}

/// The cache file for `host` (`host:port`) at `version`.
pub fn cache_path(cache_dir: &Path, host: &str, version: &str) -> PathBuf {
    cache_dir
        .join(file_name(host))
        .join(format!("{}.json.gz", file_name(version)))
}

fn read_cache(path: &Path) -> Option<Catalog> {
    let mut gz = Vec::new();
    std::fs::File::open(path).ok()?.read_to_end(&mut gz).ok()?;
    Catalog::from_gzip(&gz).ok().filter(|c| !c.is_empty())
}

fn write_cache(path: &Path, methods: &Value) -> std::io::Result<()> {
    create_parent(path)?;
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let mut enc =
        flate2::write::GzEncoder::new(std::fs::File::create(&tmp)?, flate2::Compression::default());
    enc.write_all(methods.to_string().as_bytes())?;
    enc.finish()?.sync_all()?;
    std::fs::rename(&tmp, path)
}

/// The catalog these arguments point at.
async fn load(conn: &ConnArgs, offline: bool) -> Result<(Loaded, Source), CliError> {
    let args = conn.with_profile()?;
    if offline || args.mock {
        return Ok((Loaded::Bundled, Source::Bundled));
    }
    if !args.names_a_server() {
        eprintln!(
            "midscript: note: no server given; using the bundled TrueNAS 25.04 catalog \
             (--host, --url or --profile for your server's, --offline to silence this)"
        );
        return Ok((Loaded::Bundled, Source::Bundled));
    }
    let session = args.connect_resolved().await?;
    let fetched = fetch(&session.client).await;
    session.finish().await;
    let (catalog, source) = fetched?;
    Ok((Loaded::Owned(Box::new(catalog)), source))
}

/// The catalog of the server `client` is logged in to: from the cache (per host and
/// `system.version`), else `core.get_methods`, which is then cached.
pub(crate) async fn fetch(client: &Client) -> Result<(Catalog, Source), CliError> {
    let info = match client.call("system.info", vec![]).await {
        Ok(i) => i,
        Err(e) => {
            if e.server().is_some_and(|s| s.is_not_authenticated()) {
                eprintln!(
                    "midscript: hint: reading a server's catalog needs a login (-U, -K); \
                     --offline uses the bundled 25.04 catalog"
                );
            }
            return Err(e.into());
        }
    };
    let version = info
        .get("version")
        .and_then(Value::as_str)
        .unwrap_or("unknown")
        .to_owned();
    let host = trust::host_key(client.url()).unwrap_or_else(|| client.url().to_owned());
    let cache = Dirs::from_env()
        .methods_cache()
        .map(|d| cache_path(&d, &host, &version));
    let source = Source::Server {
        host,
        version: version.clone(),
    };
    if let Some(c) = cache.as_deref().and_then(read_cache) {
        return Ok((c, source));
    }
    let methods = client.call("core.get_methods", vec![]).await?;
    if let Some(path) = &cache
        && let Err(e) = write_cache(path, &methods)
    {
        eprintln!(
            "midscript: warning: cannot cache the catalog in {}: {e}",
            path.display()
        );
    }
    let catalog = Catalog::from_value(methods).map_err(|e| {
        CliError::Client(crate::client::Error::Protocol(format!(
            "core.get_methods: {e}"
        )))
    })?;
    Ok((catalog, source))
}

/// The text listing: one method per line, `[job]` marked, then its one-line summary.
pub fn listing<'a>(methods: impl IntoIterator<Item = &'a MethodInfo>) -> String {
    let methods: Vec<&MethodInfo> = methods.into_iter().collect();
    let width = methods.iter().map(|m| m.name.len()).max().unwrap_or(0);
    let mut out = String::new();
    for m in methods {
        let mark = if m.job { "[job]" } else { "" };
        let line = format!("{:<width$}  {mark:<5}  {}", m.name, m.summary());
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

/// `midscript methods [PATTERN]`.
pub async fn methods(
    conn: &ConnArgs,
    pattern: Option<&str>,
    offline: bool,
    format: Format,
) -> Result<Exit, CliError> {
    let (loaded, source) = load(conn, offline).await?;
    let found: Vec<&MethodInfo> = loaded.catalog().matching(pattern.unwrap_or("")).collect();
    if found.is_empty() {
        eprintln!(
            "midscript: no method in {source} matches {:?}",
            pattern.unwrap_or("")
        );
        return Ok(Exit::MethodError);
    }
    match format {
        Format::Auto | Format::Table => output::emit(&listing(found)),
        _ => {
            let list: Vec<Value> = found
                .iter()
                .map(|m| json!({"name": m.name, "job": m.job, "summary": m.summary()}))
                .collect();
            output::emit_line(&output::render(&Value::Array(list), format, false));
        }
    }
    Ok(Exit::Ok)
}

/// Up to five names of `catalog` closest to `name`: by edit distance over the whole name, or
/// over the last part when `name` has no dot (`update` → `user.update`, …); names containing
/// `name` count as close.
pub fn suggestions(catalog: &Catalog, name: &str) -> Vec<String> {
    let wanted = name.to_ascii_lowercase();
    let dotted = wanted.contains('.');
    let mut scored: Vec<(f64, &str)> = catalog
        .iter()
        .filter_map(|m| {
            let tail = m.name.rsplit('.').next().unwrap_or(&m.name);
            let compared = if dotted { m.name.as_str() } else { tail };
            let mut score = strsim::normalized_damerau_levenshtein(&wanted, compared);
            if wanted.len() >= 3 && m.name.contains(wanted.as_str()) {
                score = score.max(0.8);
            }
            (score >= 0.7).then_some((score, m.name.as_str()))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// `midscript doc METHOD`.
pub async fn doc(
    conn: &ConnArgs,
    method: &str,
    offline: bool,
    format: Format,
) -> Result<Exit, CliError> {
    let (loaded, source) = load(conn, offline).await?;
    let catalog = loaded.catalog();
    let Some(m) = catalog.get(method) else {
        let near = suggestions(catalog, method);
        let hint = if near.is_empty() {
            "; `midscript methods PATTERN` lists names".to_owned()
        } else {
            format!("\ndid you mean: {}?", near.join(", "))
        };
        return Err(CliError::Usage(format!(
            "no method {method} in {source}{hint}"
        )));
    };
    match format {
        Format::Auto | Format::Table => output::emit(&render_doc(m)),
        _ => output::emit_line(&output::render(&m.to_value(), format, false)),
    }
    Ok(Exit::Ok)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn near_names_are_suggested() {
        let c = Catalog::bundled();
        assert_eq!(suggestions(c, "user.updat")[0], "user.update");
        assert!(suggestions(c, "sytem.info").contains(&"system.info".to_owned()));
        assert!(suggestions(c, "app.creat").contains(&"app.create".to_owned()));
        assert!(suggestions(c, "zzzzzzzz.qqqq").is_empty());
        let s = suggestions(c, "user.updat");
        assert!(s.iter().all(|n| n.starts_with("user.")), "{s:?}");
        assert!(
            suggestions(c, "get_instanc")
                .iter()
                .all(|n| n.ends_with(".get_instance"))
        );
    }

    #[test]
    fn cache_files_are_named_by_host_and_version() {
        let p = cache_path(Path::new("/c"), "[::1]:443", "25.10.1");
        assert_eq!(p, Path::new("/c/___1__443/25.10.1.json.gz"));
        assert_eq!(
            cache_path(Path::new("/c"), "nas:443", "../x"),
            Path::new("/c/nas_443/_x.json.gz")
        );
    }

    #[test]
    fn the_cache_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = cache_path(dir.path(), "nas:443", "25.04.2");
        let small = json!({"core.ping": {"description": "Ping.", "job": false, "accepts": [], "returns": []}});
        write_cache(&path, &small).unwrap();
        let c = read_cache(&path).unwrap();
        assert_eq!(c.len(), 1);
        std::fs::write(&path, b"not gzip").unwrap();
        assert!(read_cache(&path).is_none());
    }

    #[test]
    fn listings_mark_jobs() {
        let c = Catalog::bundled();
        let text = listing(c.matching("app.create"));
        assert!(text.starts_with("app.create  [job]  "), "{text}");
        let text = listing(c.matching("core.ping"));
        assert!(text.starts_with("core.ping         "), "{text}");
    }
}
