//! `midscript methods [PATTERN]` and `midscript doc METHOD`: the server's own method catalog
//! (`core.get_methods`, kept in [`crate::catalog::cache`] per server and version), or the
//! bundled 25.04 catalog with `--mock`, `--offline`, or when no server is given.

use serde_json::{Value, json};

use super::{CliError, ConnArgs, Exit, trust};
use crate::catalog::cache::{read_cache, user_cache_path, write_cache};
use crate::catalog::{Catalog, MethodInfo, Source, listing, render_doc, suggestions};
use crate::client::Client;
use crate::output::{self, Format};

/// A catalog, borrowed (bundled) or owned (a server's).
pub(crate) enum Loaded {
    Bundled,
    Owned(Box<Catalog>),
}

impl Loaded {
    pub(crate) fn catalog(&self) -> &Catalog {
        match self {
            Loaded::Bundled => Catalog::bundled(),
            Loaded::Owned(c) => c,
        }
    }
}

/// The catalog of an open session, for advice after a failure ("did you mean"): the bundled
/// one for `--mock`, else the server's (cached per version); the bundled one if that fails.
pub(crate) async fn session_catalog(session: &super::Session) -> Loaded {
    if session.is_mock() {
        return Loaded::Bundled;
    }
    match fetch(&session.client).await {
        Ok((catalog, _)) => Loaded::Owned(Box::new(catalog)),
        Err(_) => Loaded::Bundled,
    }
}

/// A catalog without asking the server anything (so a command's traffic stays what it was):
/// the bundled one for `--mock`, else the newest cached catalog, else the bundled one.
pub(crate) fn local_catalog(session: &super::Session) -> Loaded {
    if session.is_mock() {
        return Loaded::Bundled;
    }
    crate::dirs::Dirs::from_env()
        .methods_cache()
        .and_then(|dir| crate::catalog::cache::newest_cache(&dir))
        .map_or(Loaded::Bundled, |c| Loaded::Owned(Box::new(c)))
}

/// The catalog these arguments point at.
async fn load(conn: &ConnArgs, offline: bool) -> Result<(Loaded, Source), CliError> {
    let args = conn.resolve()?;
    if offline || args.settings.mock {
        return Ok((Loaded::Bundled, Source::Bundled));
    }
    if !args.names_a_server() {
        output::warn(
            "midscript: note: no server given; using the bundled TrueNAS 25.04 catalog \
             (--host, --url or --profile for your server's, --offline to silence this)",
        );
        return Ok((Loaded::Bundled, Source::Bundled));
    }
    let session = args.connect_resolved().await?;
    let (catalog, source) = session.scoped(async |s| fetch(&s.client).await).await?;
    Ok((Loaded::Owned(Box::new(catalog)), source))
}

/// The catalog of the server `client` is logged in to: from the cache (per host and
/// `system.version`), else `core.get_methods`, which is then cached.
pub(crate) async fn fetch(client: &Client) -> Result<(Catalog, Source), CliError> {
    let info = match client.call("system.info", vec![]).await {
        Ok(i) => i,
        Err(e) => {
            if e.server().is_some_and(|s| s.is_not_authenticated()) {
                output::warn(
                    "midscript: hint: reading a server's catalog needs a login (-U, -K); \
                     --offline uses the bundled 25.04 catalog",
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
    let cache = user_cache_path(&host, &version);
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
        output::warn(&format!(
            "midscript: warning: cannot cache the catalog in {}: {e}",
            path.display()
        ));
    }
    let catalog = Catalog::from_value(methods).map_err(|e| {
        CliError::Client(crate::client::Error::Protocol(format!(
            "core.get_methods: {e}"
        )))
    })?;
    Ok((catalog, source))
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
        output::warn(&format!(
            "midscript: no method in {source} matches {:?}",
            pattern.unwrap_or("")
        ));
        return Ok(Exit::MethodError);
    }
    match format {
        Format::Auto | Format::Table => output::emit(&listing(found)),
        _ => {
            let list: Vec<Value> = found
                .iter()
                .map(|m| json!({"name": m.name, "job": m.job, "summary": m.summary()}))
                .collect();
            output::emit_value(&Value::Array(list), format, false);
        }
    }
    Ok(Exit::Ok)
}

/// `midscript methods --names [PATTERN]`: names only, from the newest cached catalog (else
/// the bundled one), without connecting: fast and quiet enough for shell completion.
pub fn names(pattern: Option<&str>) -> Exit {
    let cached = crate::dirs::Dirs::from_env()
        .methods_cache()
        .and_then(|dir| crate::catalog::cache::newest_cache(&dir));
    let catalog = cached.as_ref().unwrap_or_else(|| Catalog::bundled());
    let mut out = String::new();
    for name in catalog.matching_names(pattern.unwrap_or("")) {
        out.push_str(name);
        out.push('\n');
    }
    output::emit(&out);
    Exit::Ok
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
        _ => output::emit_value(&m.to_value(), format, false),
    }
    Ok(Exit::Ok)
}
