//! What the server cannot run is refused before anything is sent; what it runs differently
//! from a local `docker compose up` is warned about.

use serde_json::Value;

use super::error::{Place, Problem};
use super::load::{dotted, pointer_key};

/// Check the merged, interpolated document. Removes `build:` from services that also name an
/// `image:` (the server would try to build it in the hidden app directory). Pushes problems
/// and warnings.
pub fn check(
    doc: &mut Value,
    place: &dyn Fn(&str) -> Place,
    problems: &mut Vec<Problem>,
    warnings: &mut Vec<String>,
) {
    let mut problem = |pointer: &str, reason: String| {
        problems.push(Problem {
            place: place(pointer),
            path: dotted(pointer),
            reason,
        })
    };
    if doc.get("name").is_some() {
        warnings.push(format!(
            "{}: the top-level name: is ignored on TrueNAS: the compose project is always ix-<app>",
            place("/name")
        ));
    }
    if let Some(include) = doc.get("include") {
        let paths: Vec<String> = match include {
            Value::Array(items) => items
                .iter()
                .flat_map(|i| match i {
                    Value::String(s) => vec![s.clone()],
                    Value::Object(m) => match m.get("path") {
                        Some(Value::String(s)) => vec![s.clone()],
                        Some(Value::Array(a)) => a
                            .iter()
                            .filter_map(|x| x.as_str().map(str::to_owned))
                            .collect(),
                        _ => vec![],
                    },
                    _ => vec![],
                })
                .collect(),
            _ => vec![],
        };
        for p in paths {
            if p.starts_with('/') {
                warnings.push(format!(
                    "{}: include {p:?} is read on the NAS: the file must exist there",
                    place("/include")
                ));
            } else {
                problem(
                    "/include",
                    format!(
                        "{p:?} is relative: on TrueNAS it would be looked up in the app's hidden directory, where it does not exist; merge it with -f {p} instead, or use an absolute path on the NAS"
                    ),
                );
            }
        }
    }
    let services = match doc.get_mut("services") {
        Some(Value::Object(s)) if !s.is_empty() => s,
        Some(Value::Object(_)) | None => {
            problem(
                "/services",
                "a compose project needs at least one service".into(),
            );
            return;
        }
        Some(_) => {
            problem(
                "/services",
                "services: must be a mapping of service names".into(),
            );
            return;
        }
    };
    for (name, svc) in services.iter_mut() {
        let sp = pointer_key("/services", name);
        let Some(s) = svc.as_object_mut() else {
            problem(&sp, "a service must be a mapping".into());
            continue;
        };
        let image = s
            .get("image")
            .and_then(Value::as_str)
            .filter(|i| !i.trim().is_empty());
        if s.contains_key("build") {
            match image {
                None => problem(
                    &pointer_key(&sp, "build"),
                    "build: without image: cannot work: TrueNAS cannot build images (there is no way to send it a build context); build and push the image elsewhere and set image:".into(),
                ),
                Some(i) => {
                    warnings.push(format!(
                        "{}: build: is dropped: TrueNAS cannot build images, so {i} is pulled",
                        place(&pointer_key(&sp, "build"))
                    ));
                    s.shift_remove("build");
                }
            }
        } else if image.is_none() {
            problem(&sp, "the service has no image:".into());
        }
        if let Some(Value::Object(ext)) = s.get("extends")
            && let Some(file) = ext.get("file").and_then(Value::as_str)
            && !file.starts_with('/')
        {
            problem(
                &pointer_key(&sp, "extends"),
                format!(
                    "extends: file {file:?} is relative: the NAS cannot read it; inline the service or merge files with -f"
                ),
            );
        }
        if let Some(profiles) = s.get("profiles")
            && profiles.as_array().is_none_or(|a| !a.is_empty())
        {
            warnings.push(format!(
                "{}: service {name} has profiles: {}; TrueNAS starts no profile, so it will not run",
                place(&pointer_key(&sp, "profiles")),
                profiles
            ));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use std::path::Path;

    fn run(mut doc: Value) -> (Value, Vec<Problem>, Vec<String>) {
        let place = |p: &str| Place::file(Path::new(&format!("f{p}")));
        let (mut problems, mut warnings) = (Vec::new(), Vec::new());
        check(&mut doc, &place, &mut problems, &mut warnings);
        (doc, problems, warnings)
    }

    #[test]
    fn build_without_image_is_refused() {
        let (_, p, _) = run(json!({"services": {"app": {"build": "."}}}));
        assert_eq!(p.len(), 1);
        assert_eq!(p[0].path, "services.app.build");
        assert!(p[0].reason.contains("cannot build images"));
    }

    #[test]
    fn build_with_image_is_dropped_with_a_warning() {
        let (doc, p, w) = run(json!({"services": {"app": {"build": ".", "image": "x:1"}}}));
        assert!(p.is_empty());
        assert_eq!(doc, json!({"services": {"app": {"image": "x:1"}}}));
        assert!(w[0].contains("x:1 is pulled"));
    }

    #[test]
    fn includes_profiles_and_name() {
        let (_, p, w) = run(
            json!({"name": "x", "include": ["./other.yaml", "/mnt/a.yaml"],
            "services": {"a": {"image": "i", "profiles": ["debug"]}}}),
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].reason.contains("merge it with -f"));
        assert_eq!(w.len(), 3, "{w:?}");
        let (_, p, _) = run(json!({"services": {}}));
        assert_eq!(p.len(), 1);
    }
}
