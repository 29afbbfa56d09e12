//! What the front ends that take a compose project as data (a script's options map, a
//! machine-interface request) have in common: a file list given as one path or several, and
//! `vars` given as JSON values.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::Deserialize;
use serde_json::Value;

/// Compose files as a request names them: `"compose.yaml"` or `["compose.yaml", "prod.yaml"]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum FileList {
    /// One file.
    One(String),
    /// Files merged in order.
    Many(Vec<String>),
}

impl FileList {
    /// The files in merge order, each placed by `at` (which resolves relative paths).
    pub fn paths(&self, at: impl Fn(&str) -> PathBuf) -> Vec<PathBuf> {
        match self {
            FileList::One(f) => vec![at(f)],
            FileList::Many(fs) => fs.iter().map(|f| at(f)).collect(),
        }
    }
}

/// Variables (as `--var NAME=VALUE` gives them) from JSON values: a string as it is, `null`
/// as the empty string, anything else as its JSON text (`8080`, `true`).
pub fn vars_from_json<'a>(
    vars: impl IntoIterator<Item = (&'a String, &'a Value)>,
) -> BTreeMap<String, String> {
    vars.into_iter()
        .map(|(k, v)| {
            let v = match v {
                Value::String(s) => s.clone(),
                Value::Null => String::new(),
                other => other.to_string(),
            };
            (k.clone(), v)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn one_or_many_files_and_json_vars() {
        let one: FileList = serde_json::from_value(json!("a.yaml")).unwrap();
        let many: FileList = serde_json::from_value(json!(["a.yaml", "b.yaml"])).unwrap();
        let at = |p: &str| PathBuf::from("/p").join(p);
        assert_eq!(one.paths(at), [PathBuf::from("/p/a.yaml")]);
        assert_eq!(
            many.paths(at),
            [PathBuf::from("/p/a.yaml"), PathBuf::from("/p/b.yaml")]
        );
        assert!(serde_json::from_value::<FileList>(json!(3)).is_err());
        let vars = BTreeMap::from([
            ("S".to_owned(), json!("text")),
            ("N".to_owned(), json!(8080)),
            ("B".to_owned(), json!(true)),
            ("E".to_owned(), Value::Null),
        ]);
        let got = vars_from_json(&vars);
        assert_eq!(got["S"], "text");
        assert_eq!(got["N"], "8080");
        assert_eq!(got["B"], "true");
        assert_eq!(got["E"], "");
    }
}
