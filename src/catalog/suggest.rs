//! "Did you mean": names of a catalog close to a misspelt method, and the catalog a session
//! uses for them (bundled or the server's, replaceable when the REPL reconnects).

use std::sync::{Arc, RwLock};

use super::Catalog;

/// The catalog a session works with.
#[derive(Debug, Clone)]
pub enum MethodCatalog {
    /// The bundled TrueNAS 25.04 catalog (offline, `--mock`).
    Bundled,
    /// The server's own `core.get_methods`.
    Server(Arc<Catalog>),
}

impl MethodCatalog {
    /// The catalog.
    pub fn get(&self) -> &Catalog {
        match self {
            MethodCatalog::Bundled => Catalog::bundled(),
            MethodCatalog::Server(c) => c,
        }
    }
}

/// A session's catalog, shared between the REPL (which replaces it on `.connect`) and the
/// script runner (which suggests names from it).
pub type SharedCatalog = Arc<RwLock<MethodCatalog>>;

/// [`suggestions`] from a shared catalog (none if its lock was poisoned).
pub fn suggest_in(shared: &SharedCatalog, name: &str) -> Vec<String> {
    match shared.read() {
        Ok(c) => suggestions(c.get(), name),
        Err(_) => Vec::new(),
    }
}

/// Up to five names of `catalog` closest to `name`: by edit distance over the whole name, or
/// over the last part when `name` has no dot (`update` → `user.update`, …); names containing
/// `name` count as close.
pub fn suggestions(catalog: &Catalog, name: &str) -> Vec<String> {
    let wanted = name.to_ascii_lowercase();
    let dotted = wanted.contains('.');
    let mut scored: Vec<(f64, &str)> = catalog
        .names()
        .filter_map(|name| {
            let tail = name.rsplit('.').next().unwrap_or(name);
            let compared = if dotted { name } else { tail };
            let mut score = strsim::normalized_damerau_levenshtein(&wanted, compared);
            if wanted.len() >= 3 && name.contains(wanted.as_str()) {
                score = score.max(0.8);
            }
            (score >= 0.7).then_some((score, name))
        })
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(b.1)));
    scored
        .into_iter()
        .take(5)
        .map(|(_, n)| n.to_owned())
        .collect()
}

/// Event sources that are not methods, so `core.get_methods` does not list them (the other
/// events are named after their query method: `app.query`, `core.get_jobs`, `alert.list`).
const EVENT_SOURCES: &[&str] = &[
    "app.container_log_follow",
    "app.stats",
    "docker.state",
    "failover.status",
    "filesystem.file_tail_follow",
    "reporting.realtime",
    "virt.instance.metrics",
    "zfs.pool.scan",
];

/// Does `catalog` know the event `name` (arguments after `:` aside)? Events named after a
/// method of the catalog count, and the usual event sources that are not methods.
pub fn event_known(catalog: &Catalog, name: &str) -> bool {
    let base = name.split(':').next().unwrap_or(name);
    catalog.contains(base) || EVENT_SOURCES.contains(&base)
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
    fn events_are_known_by_their_method_or_as_sources() {
        let c = Catalog::bundled();
        assert!(event_known(c, "app.query"));
        assert!(event_known(c, "core.get_jobs"));
        assert!(event_known(c, "reporting.realtime:{\"interval\": 2}"));
        assert!(!event_known(c, "app.qurey"));
        assert!(!event_known(c, ""));
    }

    #[test]
    fn a_shared_catalog_suggests_from_what_it_holds_now() {
        let shared: SharedCatalog = Arc::new(RwLock::new(MethodCatalog::Bundled));
        assert_eq!(suggest_in(&shared, "user.updat")[0], "user.update");
        *shared.write().unwrap() = MethodCatalog::Server(Arc::new(Catalog::default()));
        assert!(suggest_in(&shared, "user.updat").is_empty());
    }
}
