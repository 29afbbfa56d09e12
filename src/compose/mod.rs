//! Compose deployments: a local docker-compose project → an idempotent TrueNAS custom app.
//!
//! The pipeline (docs/apps.md §1.12), each step in its own module:
//! 1. [`load`]: find and parse the compose files as compose finds them (`-f`, `COMPOSE_FILE`,
//!    or the default file and its default override; YAML 1.2, anchors and merge keys, merge
//!    tags, positions kept for messages);
//! 2. [`interpolate`]: `${VAR}` & co. with compose's semantics, from `--var`, the environment,
//!    then `.env` (compose's order), per file (so errors name file:line:col);
//! 3. [`extends`] then [`merge`]: `extends:` and the override files, with compose's merge
//!    rules (`!reset` and `!override` included);
//! 4. [`env_file`]: `env_file:` inlined into `environment:`;
//! 5. [`paths`]: relative host paths rewritten to a dataset root; [`uploads`]: the files the
//!    NAS needs (secrets, configs, single-file mounts) read and fingerprinted;
//! 6. [`checks`]: what the server cannot run is refused, what it runs differently is warned;
//! 7. [`canonical`]: every literal `$` written `$$` (the server interpolates again), size guard;
//! 8. [`diff`]: semantic diff against `app.config`, secrets masked;
//! 9. [`deploy`]: the one deploy path of the CLI and scripts: [`deploy::plan`] (what runs +
//!    diff), [`deploy::apply`] (folders, uploads, create/update as a job, wait for RUNNING or
//!    CRASHED, logs on a crash, journal) and [`deploy::rollback`];
//! 10. [`journal`]: the local history of deployed documents, for rollback.
//!
//! Steps 1–8 are plain functions over [`serde_json::Value`] with no network, so a script
//! binding can expose them as they are: [`resolve`] takes an [`Options`] and returns a
//! [`Project`] (serializable), [`diff::diff`] returns a [`diff::Diff`] (serializable).

pub mod canonical;
pub mod checks;
pub mod deploy;
pub mod diff;
pub mod env_file;
mod error;
pub mod extends;
pub mod interpolate;
pub mod journal;
pub mod load;
pub mod merge;
pub mod paths;
pub mod request;
pub mod uploads;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde_json::Value;

pub use diff::{Diff, Secrets};
pub use error::{ComposeError, Place, Problem};
pub use interpolate::Variables;
pub use paths::{BindMount, MountKind};
pub use uploads::Upload;

use interpolate::{Lookup, Origin, Report};
use load::SourceFile;

/// What to load and how to resolve it.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Compose files in merge order (`-f`); empty = the default name in `project_dir`.
    pub files: Vec<PathBuf>,
    /// The project directory; default: the directory of the first file, else the current one.
    pub project_dir: Option<PathBuf>,
    /// The app name; default: `COMPOSE_PROJECT_NAME`, the top-level `name:`, the folder's name.
    pub name: Option<String>,
    /// The env file to use instead of `<project>/.env`.
    pub env_file: Option<PathBuf>,
    /// `--var KEY=VALUE` / script variables (win over the environment and `.env`).
    pub vars: BTreeMap<String, String>,
    /// The environment: `None` = the process environment (read, never modified).
    pub environment: Option<BTreeMap<String, String>>,
    /// Where relative host paths go on the NAS, e.g. `/mnt/tank/apps` (→ `/mnt/tank/apps/<app>/…`).
    pub dataset_root: Option<String>,
}

/// A resolved project, ready to diff and deploy.
#[derive(Debug, Clone, Serialize)]
pub struct Project {
    /// The app name.
    pub name: String,
    /// The project directory.
    pub dir: PathBuf,
    /// The compose files, in merge order.
    pub files: Vec<PathBuf>,
    /// The `.env` file that was read, if any.
    pub env_file: Option<PathBuf>,
    /// The document to send as `custom_compose_config` (every literal `$` written `$$`).
    pub document: Value,
    /// Relative host paths and where they went.
    pub mounts: Vec<BindMount>,
    /// The files to put on the NAS (their fingerprints are in the document).
    pub uploads: Vec<Upload>,
    /// What will run differently than a local `docker compose up`.
    pub warnings: Vec<String>,
    /// Characters of the `app.create` request (limit 65 536).
    pub request_chars: usize,
    /// Values to mask in diffs.
    #[serde(skip)]
    pub secrets: Secrets,
}

/// Check an app name against TrueNAS's rule (`^[a-z]([-a-z0-9]*[a-z0-9])?$`, 1–40 chars).
pub fn check_app_name(name: &str) -> Result<(), ComposeError> {
    let bad = |reason: &str| {
        Err(ComposeError::AppName {
            name: name.to_owned(),
            reason: reason.to_owned(),
        })
    };
    let n = name.chars().count();
    if n == 0 {
        return bad("it is empty");
    }
    if n > 40 {
        return bad("it is longer than 40 characters");
    }
    let b = name.as_bytes();
    if !b[0].is_ascii_lowercase() {
        return bad("it must start with a lowercase letter");
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return bad(&format!(
            "{c:?} is not allowed (only lowercase letters, digits and -)"
        ));
    }
    if name.ends_with('-') {
        return bad("it must not end with -");
    }
    Ok(())
}

/// What a project is before its files are read: folder, app name, variables, files.
struct Setup {
    dir: PathBuf,
    name: String,
    vars: Variables,
    env_path: Option<PathBuf>,
    /// The compose files in merge order (empty when none was found and none is needed).
    files: Vec<PathBuf>,
}

/// A `COMPOSE_*` setting as compose reads it: `--var`, then the environment, then `.env`.
fn setting(vars: &Variables, key: &str) -> Option<String> {
    vars.get(key).map(|(v, _)| v).filter(|v| !v.is_empty())
}

/// Folder, `.env`, files and app name, as docker compose finds them:
/// - files: `-f`, else `COMPOSE_FILE` (split on `COMPOSE_PATH_SEPARATOR`, default `:`), else
///   the first default name and the first override name (`compose.override.yml`, …);
/// - app name: `--name`, else `COMPOSE_PROJECT_NAME`, else the top-level `name:` of the
///   files, else the folder's name.
fn setup(options: &Options, need_files: bool) -> Result<Setup, ComposeError> {
    let dir = project_dir(options)?;
    let mut vars = Variables {
        vars: options.vars.clone(),
        dotenv: BTreeMap::new(),
        environment: options.environment.clone(),
    };
    let env_path = match &options.env_file {
        Some(p) => Some(p.clone()),
        None => Some(dir.join(".env")).filter(|p| p.is_file()),
    };
    if let Some(p) = &env_path {
        for v in env_file::load_env(p, &vars, Origin::DotEnv, false)? {
            vars.dotenv.insert(v.key, v.value);
        }
    }
    let files = if !options.files.is_empty() {
        options.files.clone()
    } else if let Some(list) = setting(&vars, "COMPOSE_FILE") {
        let sep = setting(&vars, "COMPOSE_PATH_SEPARATOR").unwrap_or_else(|| ":".into());
        list.split(sep.as_str())
            .filter(|f| !f.is_empty())
            .map(|f| dir.join(f))
            .collect()
    } else {
        match load::find_default(&dir) {
            Ok(main) => {
                let mut files = vec![main];
                files.extend(load::find_override(&dir));
                files
            }
            Err(e) if need_files => return Err(e),
            Err(_) => Vec::new(),
        }
    };
    let (name, from) = match &options.name {
        Some(n) => (n.clone(), None),
        None => match setting(&vars, "COMPOSE_PROJECT_NAME") {
            Some(n) => (n, Some("COMPOSE_PROJECT_NAME")),
            None => match top_level_name(&files, &vars) {
                Some(n) => (n, Some("the top-level name:")),
                None => {
                    let abs = std::fs::canonicalize(&dir).unwrap_or_else(|_| dir.clone());
                    let n = abs
                        .file_name()
                        .map(|s| s.to_string_lossy().into_owned())
                        .unwrap_or_default();
                    (n, None)
                }
            },
        },
    };
    check_app_name(&name).map_err(|e| match (e, from) {
        (ComposeError::AppName { name, reason }, Some(from)) => ComposeError::AppName {
            name,
            reason: format!("{reason}; it comes from {from}"),
        },
        (e, _) => e,
    })?;
    // On TrueNAS the compose project is always ix-<app>, whatever `.env` says.
    vars.vars
        .insert("COMPOSE_PROJECT_NAME".into(), format!("ix-{name}"));
    Ok(Setup {
        dir,
        name,
        vars,
        env_path,
        files,
    })
}

/// The last top-level `name:` of the files (interpolated), if any; unreadable files are left
/// to the full load to report.
fn top_level_name(files: &[PathBuf], vars: &Variables) -> Option<String> {
    let mut name = None;
    for f in files {
        let Ok(src) = load::load_file(f) else {
            continue;
        };
        if let Some(n) = src.value.get("name").and_then(Value::as_str)
            && let Ok(e) = interpolate::expand(n, vars)
            && !e.text.is_empty()
        {
            name = Some(e.text);
        }
    }
    name
}

/// The project directory and app name the options mean (for `down`, `ps`, `logs`, … which
/// only need the name): `--name`, `COMPOSE_PROJECT_NAME`, the top-level `name:`, the folder.
pub fn project_name(options: &Options) -> Result<(PathBuf, String), ComposeError> {
    let s = setup(options, false)?;
    Ok((s.dir, s.name))
}

fn project_dir(options: &Options) -> Result<PathBuf, ComposeError> {
    if let Some(d) = &options.project_dir {
        return Ok(d.clone());
    }
    if let Some(f) = options.files.first() {
        return Ok(match f.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        });
    }
    std::env::current_dir().map_err(|e| ComposeError::Options(format!("no current directory: {e}")))
}

/// The place of a compose path: in the last file that has it, else its nearest ancestor in the
/// main file.
fn locate(files: &[SourceFile], pointer: &str) -> Place {
    files
        .iter()
        .rev()
        .find(|f| f.has(pointer))
        .or_else(|| files.first())
        .map(|f| f.place(pointer, false))
        .unwrap_or_else(|| Place::file(Path::new("compose.yaml")))
}

/// Load, interpolate, merge, inline, rewrite, check and canonicalise a project. Reads local
/// files only; nothing is sent anywhere.
pub fn resolve(options: &Options) -> Result<Project, ComposeError> {
    let Setup {
        dir,
        name,
        vars,
        env_path,
        files,
    } = setup(options, true)?;
    if let Some(root) = &options.dataset_root {
        if !root.starts_with('/') {
            return Err(ComposeError::Options(format!(
                "--dataset-root must be an absolute path on the NAS, like /mnt/tank/apps (not {root:?})"
            )));
        }
        if root.trim_end_matches('/') == "/mnt/.ix-apps" || root.starts_with("/mnt/.ix-apps/") {
            return Err(ComposeError::Options(
                "--dataset-root must not be under /mnt/.ix-apps: that is the apps' own dataset, emptied by app.delete".into(),
            ));
        }
    }
    let mut report = Report::default();
    let mut sources = Vec::new();
    let mut doc: Option<Value> = None;
    for f in &files {
        let src = load::load_file(f)?;
        let mut value = interpolate::interpolate_file(&src, &vars, &mut report)?;
        extends::apply_extends(&mut value, &src, &dir, &vars, &mut report)?;
        if let Some(d) = &mut doc {
            merge::clear_tagged(d, &src.tagged);
        }
        match &mut doc {
            None => doc = Some(value),
            Some(d) => merge::merge_documents(d, value),
        }
        sources.push(src);
    }
    let mut doc = doc.unwrap_or(Value::Null);
    env_file::inline_env_files(&mut doc, &dir, &files[0], &vars, &mut report)?;
    let place = |p: &str| locate(&sources, p);
    let mut problems = Vec::new();
    let mut warnings = std::mem::take(&mut report.warnings);
    let profiles: Vec<String> = setting(&vars, "COMPOSE_PROFILES")
        .map(|p| {
            p.split(',')
                .map(|x| x.trim().to_owned())
                .filter(|x| !x.is_empty())
                .collect()
        })
        .unwrap_or_default();
    checks::check(
        &mut doc,
        &name,
        &profiles,
        &place,
        &mut problems,
        &mut warnings,
    );
    let rewriter = paths::Rewriter {
        project_dir: &dir,
        app: &name,
        root: options.dataset_root.as_deref(),
        place: &place,
    };
    let mut mounts = paths::rewrite_paths(&mut doc, &rewriter, &mut problems);
    paths::environment_sources(&mut doc, &rewriter, &vars, &mut mounts, &mut problems);
    if !problems.is_empty() {
        return Err(ComposeError::Refused { problems });
    }
    let uploads = uploads::file_uploads(&mounts, &mut warnings)?;
    canonical::escape_dollars(&mut doc);
    let fingerprints = uploads
        .iter()
        .map(|u| (u.remote.clone(), u.fingerprint()))
        .collect();
    uploads::set_fingerprints(&mut doc, &fingerprints);
    let request_chars = canonical::request_chars(&name, &doc);
    if request_chars > canonical::MESSAGE_LIMIT {
        return Err(ComposeError::TooLarge {
            size: request_chars,
            limit: canonical::MESSAGE_LIMIT,
        });
    }
    let escape = |set: &std::collections::BTreeSet<String>| {
        set.iter().map(|s| s.replace('$', "$$")).collect()
    };
    report.raw.extend(
        vars.dotenv
            .iter()
            .filter(|(name, _)| crate::protocol::redact::looks_secret(name))
            .map(|(_, value)| value.clone()),
    );
    crate::protocol::redact::remember_secret_values(&report.raw);
    let secrets = Secrets::new(escape(&report.tainted), escape(&report.raw));
    Ok(Project {
        name,
        dir,
        files,
        env_file: env_path,
        document: doc,
        mounts,
        uploads,
        warnings,
        request_chars,
        secrets,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn app_names() {
        for ok in ["a", "whoami", "inventory-2", &"a".repeat(40)] {
            assert!(check_app_name(ok).is_ok(), "{ok}");
        }
        for (bad, why) in [
            ("", "empty"),
            ("Inventory", "lowercase letter"),
            ("1a", "lowercase letter"),
            ("a_b", "'_' is not allowed"),
            ("a-", "end with"),
            (&"a".repeat(41) as &str, "40"),
        ] {
            let e = check_app_name(bad).unwrap_err().to_string();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(e.contains("--name"), "{e}");
        }
    }
}
