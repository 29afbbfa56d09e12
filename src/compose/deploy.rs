//! Talking to the NAS, the one deploy path of `midscript compose` and the script `compose`
//! module: [`plan`] reads what runs and diffs it; [`apply`] creates the bind-mount folders
//! (datasets under a dataset, with `--create-dirs`) or says which are missing, uploads the files
//! the app needs, creates or updates the app as a job, waits until it is RUNNING or CRASHED,
//! shows the failing containers' logs and records the document in the journal; [`rollback`]
//! redeploys the journal's previous document. Also stop/delete, containers, logs.
//!
//! Waiting (docs/apps.md §1.3, §1.4, §1.5): `app.create`/`app.update` return once
//! `compose up -d` exits, usually with the app DEPLOYING. `app.query` events are subscribed
//! to *before* the job is sent. The job's result (the app entry after `up`) is the starting
//! point; later events count only when they describe the same containers (events of the old
//! containers, still queued from before the `down`, are ignored), and the app is polled when
//! events stay quiet. RUNNING or CRASHED ends the wait; so does the timeout (an error).

use std::collections::BTreeSet;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use serde_json::{Value, json};

use super::Project;
use super::canonical::{create_params, semantic_eq};
use super::diff::{Diff, Secrets, diff};
use super::error::ComposeError;
use super::journal::{Entry, Journal};
use super::paths::{BindMount, MountKind};
use super::uploads::{self, Upload, fingerprints};
use crate::client::{Client, Error, JobProgress, Subscription};
use crate::protocol::{EventKind, errno};

/// The server log with docker compose's own errors (not returned in job errors).
pub const LIFECYCLE_LOG: &str = "/var/log/app_lifecycle.log";

/// How to deploy.
#[derive(Debug, Clone)]
pub struct DeployOptions {
    /// Wait for RUNNING or CRASHED after the job.
    pub wait: bool,
    /// How long to wait.
    pub timeout: Duration,
    /// Create missing bind-mount folders on the NAS first: datasets (`pool.dataset.create`)
    /// where the parent is a dataset, directories (`filesystem.mkdir`) otherwise.
    pub create_dirs: bool,
    /// Log lines shown per crashed container.
    pub log_lines: u64,
    /// Stop reading a crashed container's log after this long without a line.
    pub log_quiet: Duration,
    /// Poll `app.query` after this long without an event while waiting.
    pub poll: Duration,
    /// Record created/updated documents here (journal, server key), right after the job.
    pub journal: Option<(Journal, String)>,
    /// The journal action for an update (`updated`, or `rolled_back`).
    pub update_action: String,
}

impl Default for DeployOptions {
    fn default() -> Self {
        DeployOptions {
            wait: true,
            timeout: Duration::from_secs(300),
            create_dirs: false,
            log_lines: 50,
            log_quiet: Duration::from_secs(2),
            poll: Duration::from_secs(5),
            journal: None,
            update_action: "updated".into(),
        }
    }
}

/// What `up` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    /// `app.create`.
    Created,
    /// `app.update`.
    Updated,
    /// Nothing was sent: the NAS already runs this document.
    Unchanged,
    /// Unchanged but stopped: `app.start`.
    Started,
}

impl std::fmt::Display for Action {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Action::Created => "created",
            Action::Updated => "updated",
            Action::Unchanged => "unchanged",
            Action::Started => "started",
        })
    }
}

/// The last log lines of one container.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContainerLog {
    /// The compose service.
    pub service: String,
    /// The container id.
    pub container_id: String,
    /// Its state (`crashed`, `exited`, …).
    pub state: String,
    /// The lines, oldest first.
    pub lines: Vec<String>,
}

/// The result of `up`.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    /// The app.
    pub app: String,
    /// What was done.
    pub action: Action,
    /// The last known state (RUNNING, CRASHED, DEPLOYING, STOPPED, …).
    pub state: Option<String>,
    /// The job ids run, in order.
    pub jobs: Vec<i64>,
    /// Folders created on the NAS (datasets and directories).
    pub dirs_created: Vec<Created>,
    /// Bind-mount folders missing on the NAS (without `create_dirs`; docker creates them as
    /// plain root-owned directories).
    pub missing_dirs: Vec<String>,
    /// Files uploaded to the NAS.
    pub uploaded: Vec<String>,
    /// Logs of the containers that crashed.
    pub crashed: Vec<ContainerLog>,
    /// The last `app.query` entry seen (with `portals`, `active_workloads`, …), when the app
    /// exists. Not serialized: the CLI's JSON output stays the outcome itself.
    #[serde(skip)]
    pub entry: Option<Value>,
}

impl Outcome {
    /// The deployment crashed.
    pub fn is_crashed(&self) -> bool {
        self.state.as_deref() == Some("CRASHED")
    }
}

/// Why `up` (or a helper) failed.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The server or the connection.
    #[error(transparent)]
    Client(#[from] Error),
    /// The app did not reach RUNNING or CRASHED in time.
    #[error(
        "{app} is still {state} after {seconds}s (see `midscript compose ps` and {LIFECYCLE_LOG} on the NAS)"
    )]
    Timeout {
        /// The app.
        app: String,
        /// Its last state.
        state: String,
        /// The timeout.
        seconds: u64,
    },
    /// The app is in the `ERROR` state (TrueNAS 27+): the server cannot read its metadata, so
    /// it can neither be compared nor changed safely.
    #[error(
        "{app} is in the ERROR state ({reason}): TrueNAS cannot read its metadata on the NAS; repair or delete the app (app.delete) before deploying it again"
    )]
    AppError {
        /// The app.
        app: String,
        /// The server's `error_reason` (`METADATA_MISSING`, `METADATA_UNREADABLE`,
        /// `METADATA_INCOMPLETE`), or `unknown`.
        reason: String,
    },
    /// The app disappeared while waiting.
    #[error(
        "{app} was removed while waiting for it to start (a failed deployment is cleaned up; see {LIFECYCLE_LOG} on the NAS)"
    )]
    Removed {
        /// The app.
        app: String,
    },
    /// The deploy journal could not be written (the deployment itself went through).
    #[error(transparent)]
    Journal(#[from] ComposeError),
    /// Nothing in the journal to roll back to.
    #[error(
        "nothing to roll back to: the deploy journal ({}) has no other document of {app} for this server",
        dir.display()
    )]
    NothingToRollBack {
        /// The app.
        app: String,
        /// The journal folder of the app.
        dir: std::path::PathBuf,
    },
    /// A bind-mount path exists on the NAS but is not a directory.
    #[error("{path} exists on the NAS but is not a directory (it is {kind})")]
    NotADirectory {
        /// The path.
        path: String,
        /// What it is.
        kind: String,
    },
}

/// What runs on the NAS for one app.
#[derive(Debug, Clone, Default)]
pub struct Remote {
    /// The `app.query` entry; `None` when the app does not exist.
    pub entry: Option<Value>,
    /// `app.config`: for a custom app, the compose document.
    pub config: Option<Value>,
}

impl Remote {
    /// The app's state, when it exists.
    pub fn state(&self) -> Option<&str> {
        self.entry.as_ref().and_then(state_of)
    }
}

fn state_of(entry: &Value) -> Option<&str> {
    entry.get("state").and_then(Value::as_str)
}

/// A state the app does not leave by itself: RUNNING, CRASHED, or ERROR (27+).
fn terminal(entry: &Value) -> bool {
    matches!(state_of(entry), Some("RUNNING" | "CRASHED" | "ERROR"))
}

/// [`DeployError::AppError`] when `entry` is in the `ERROR` state.
fn check_not_error(app: &str, entry: &Value) -> Result<(), DeployError> {
    if state_of(entry) != Some("ERROR") {
        return Ok(());
    }
    Err(DeployError::AppError {
        app: app.to_owned(),
        reason: entry
            .get("error_reason")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
    })
}

fn container_ids(entry: &Value) -> BTreeSet<String> {
    containers(entry)
        .iter()
        .filter_map(|c| c.get("id").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// `active_workloads.container_details` of an app entry.
pub fn containers(entry: &Value) -> Vec<Value> {
    entry
        .pointer("/active_workloads/container_details")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default()
}

/// The `app.query` entry of `app`, if it exists.
pub async fn app_entry(client: &Client, app: &str) -> Result<Option<Value>, Error> {
    let found = client
        .call("app.query", vec![json!([["name", "=", app]])])
        .await?;
    Ok(found.as_array().and_then(|a| a.first()).cloned())
}

/// The entry and `app.config` of `app`.
pub async fn remote(client: &Client, app: &str) -> Result<Remote, Error> {
    let Some(entry) = app_entry(client, app).await? else {
        return Ok(Remote::default());
    };
    // An app in ERROR (27+) has no config the server can read.
    if state_of(&entry) == Some("ERROR") {
        return Ok(Remote {
            entry: Some(entry),
            config: None,
        });
    }
    let config = client.call("app.config", vec![json!(app)]).await?;
    Ok(Remote {
        entry: Some(entry),
        config: Some(config),
    })
}

async fn run_job(
    client: &Client,
    method: &str,
    params: Vec<Value>,
    jobs: &mut Vec<i64>,
    progress: &mut (dyn FnMut(&JobProgress) + Send),
) -> Result<Value, Error> {
    // Reported both when the job starts and as it runs: one lock, so both callbacks can.
    let progress = std::sync::Mutex::new(progress);
    let report = |p: &JobProgress| (progress.lock().unwrap_or_else(|e| e.into_inner()))(p);
    let started = |id| {
        jobs.push(id);
        // At once, so the id is known (and shown) even when waiting ends before any event.
        report(&JobProgress {
            job_id: id,
            state: "WAITING".into(),
            percent: None,
            description: Some(format!("{method} started")),
        });
    };
    client.job_with_id(method, params, started, report).await
}

/// `filesystem.stat`, `None` when the path does not exist.
async fn stat(client: &Client, path: &str) -> Result<Option<Value>, Error> {
    match client.call("filesystem.stat", vec![json!(path)]).await {
        Ok(v) => Ok(Some(v)),
        Err(Error::Server(e)) if e.errno == Some(errno::ENOENT) => Ok(None),
        Err(e) => Err(e),
    }
}

fn parent(path: &str) -> Option<&str> {
    let p = path.trim_end_matches('/');
    match p.rfind('/') {
        Some(0) | None => None,
        Some(i) => Some(&p[..i]),
    }
}

/// A folder created on the NAS.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Created {
    /// Its path.
    pub path: String,
    /// The dataset it is, when it was created as one.
    pub dataset: Option<String>,
}

impl std::fmt::Display for Created {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.dataset {
            Some(d) => write!(f, "{} (dataset {d})", self.path),
            None => f.write_str(&self.path),
        }
    }
}

/// The dataset mounted at `path`, if it is one (TrueNAS mounts dataset `X` at `/mnt/X`).
async fn dataset_at(client: &Client, path: &str) -> Result<Option<String>, Error> {
    let Some(id) = path.strip_prefix("/mnt/").filter(|i| !i.is_empty()) else {
        return Ok(None);
    };
    let found = client
        .call(
            "pool.dataset.query",
            vec![
                json!([["id", "=", id]]),
                json!({"extra": {"retrieve_children": false}}),
            ],
        )
        .await?;
    Ok(found
        .as_array()
        .and_then(|a| a.first())
        .filter(|d| d.get("mountpoint").and_then(Value::as_str) == Some(path))
        .and_then(|d| d.get("id").and_then(Value::as_str))
        .map(str::to_owned))
}

/// Can `leaf` be a ZFS dataset name component?
fn dataset_component(leaf: &str) -> bool {
    !leaf.is_empty()
        && leaf != "."
        && leaf != ".."
        && !leaf.ends_with(' ')
        && leaf
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_-.:".contains(c))
}

/// The missing folders on the way to `path`, outermost first, and the existing folder above
/// them.
async fn missing_levels(client: &Client, path: &str) -> Result<(Vec<String>, String), DeployError> {
    let mut missing = Vec::new();
    let mut p = Some(path.trim_end_matches('/'));
    while let Some(cur) = p {
        match stat(client, cur).await? {
            Some(st) => {
                let kind = st.get("type").and_then(Value::as_str).unwrap_or("OTHER");
                if kind != "DIRECTORY" {
                    return Err(DeployError::NotADirectory {
                        path: cur.to_owned(),
                        kind: kind.to_owned(),
                    });
                }
                missing.reverse();
                return Ok((missing, cur.to_owned()));
            }
            None => {
                missing.push(cur.to_owned());
                p = parent(cur);
            }
        }
    }
    missing.reverse();
    Ok((missing, "/".to_owned()))
}

/// `mkdir -p` on the NAS: each missing level becomes a dataset (`pool.dataset.create`) when
/// its parent is a dataset, else a directory (`filesystem.mkdir`, one level at a time).
pub async fn mkdir_p(client: &Client, path: &str) -> Result<Vec<Created>, DeployError> {
    let (missing, existing) = missing_levels(client, path).await?;
    if missing.is_empty() {
        return Ok(Vec::new());
    }
    let mut dataset = dataset_at(client, &existing).await?;
    let mut created = Vec::new();
    for dir in missing {
        let leaf = dir.rsplit('/').next().unwrap_or("");
        dataset = match dataset.filter(|_| dataset_component(leaf)) {
            Some(parent) => {
                let name = format!("{parent}/{leaf}");
                client
                    .call(
                        "pool.dataset.create",
                        vec![json!({"name": name, "type": "FILESYSTEM"})],
                    )
                    .await?;
                Some(name)
            }
            None => {
                client
                    .call("filesystem.mkdir", vec![json!({"path": dir})])
                    .await?;
                None
            }
        };
        created.push(Created {
            path: dir,
            dataset: dataset.clone(),
        });
    }
    Ok(created)
}

/// The folders a deployment needs: the bind-mount directories and the folders of the files
/// it uploads.
fn needed_dirs(mounts: &[BindMount], files: &[Upload]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let dirs = mounts
        .iter()
        .filter(|m| m.kind == MountKind::Directory)
        .map(|m| m.remote.clone());
    let parents = files
        .iter()
        .filter_map(|u| parent(&u.remote).map(str::to_owned));
    for d in dirs.chain(parents) {
        if !out.contains(&d) {
            out.push(d);
        }
    }
    out
}

/// Create the folders a deployment needs (see [`mkdir_p`]); returns what was created.
pub async fn ensure_dirs(
    client: &Client,
    mounts: &[BindMount],
    files: &[Upload],
) -> Result<Vec<Created>, DeployError> {
    let mut created = Vec::new();
    for d in needed_dirs(mounts, files) {
        created.extend(mkdir_p(client, &d).await?);
    }
    Ok(created)
}

/// The bind-mount directories that do not exist on the NAS.
pub async fn missing_dirs(client: &Client, mounts: &[BindMount]) -> Result<Vec<String>, Error> {
    let mut out = Vec::new();
    for m in mounts.iter().filter(|m| m.kind == MountKind::Directory) {
        if stat(client, &m.remote).await?.is_none() {
            out.push(m.remote.clone());
        }
    }
    Ok(out)
}

/// Upload the files whose copy on the NAS is missing, of another size, or not the one that
/// `document` (what is about to be deployed) fingerprints: the running document's fingerprint
/// of a file differs from `document`'s unless the file is unchanged, since [`plan`] carries an
/// unchanged file's fingerprint over (a secret's is salted, so comparing the strings is enough
/// and no fingerprint is derived again). `filesystem.file_receive`, base64 in one message.
/// Returns the paths uploaded.
pub async fn upload_files(
    client: &Client,
    files: &[Upload],
    document: &Value,
    running: Option<&Value>,
) -> Result<Vec<String>, Error> {
    let deployed = running.map(fingerprints).unwrap_or_default();
    let wanted = fingerprints(document);
    let mut sent = Vec::new();
    for u in files {
        let current = deployed
            .get(&u.remote)
            .is_some_and(|fp| wanted.get(&u.remote) == Some(fp));
        if current
            && let Some(st) = stat(client, &u.remote).await?
            && st.get("type").and_then(Value::as_str) == Some("FILE")
            && st.get("size").and_then(Value::as_u64) == Some(u.size as u64)
        {
            continue;
        }
        client
            .call(
                "filesystem.file_receive",
                vec![
                    json!(u.remote),
                    json!(B64.encode(&u.content)),
                    json!({"mode": u.mode}),
                ],
            )
            .await?;
        sent.push(u.remote.clone());
    }
    Ok(sent)
}

/// What `up` would do: what runs on the NAS, the document to send, and how it differs.
#[derive(Debug, Clone)]
pub struct Plan {
    /// What runs.
    pub remote: Remote,
    /// The project's document, with the fingerprints of unchanged secret files carried over
    /// from the running document (a secret's fingerprint is salted, so a fresh one would
    /// always differ).
    pub document: Value,
    /// The changes, secrets masked unless asked otherwise.
    pub diff: Diff,
}

impl Plan {
    /// The NAS already runs this document.
    pub fn unchanged(&self) -> bool {
        self.remote
            .config
            .as_ref()
            .is_some_and(|c| semantic_eq(c, &self.document))
    }
}

/// The project's document with the fingerprints of `running` kept where they still describe
/// the local file.
pub fn carry_fingerprints(project: &Project, running: Option<&Value>) -> Value {
    let mut doc = project.document.clone();
    let Some(old) = running.map(fingerprints) else {
        return doc;
    };
    let mut files = fingerprints(&doc);
    for u in &project.uploads {
        if let Some(fp) = old.get(&u.remote)
            && u.matches(fp)
        {
            files.insert(u.remote.clone(), fp.clone());
        }
    }
    uploads::set_fingerprints(&mut doc, &files);
    doc
}

/// Read what runs and diff the project against it (nothing is changed).
pub async fn plan(client: &Client, project: &Project, show_secrets: bool) -> Result<Plan, Error> {
    let remote = remote(client, &project.name).await?;
    let document = carry_fingerprints(project, remote.config.as_ref());
    let diff = diff(
        remote.config.as_ref(),
        &document,
        &project.secrets,
        show_secrets,
    );
    Ok(Plan {
        remote,
        document,
        diff,
    })
}

/// Deploy a planned project: folders (created with `create_dirs`, else reported missing), the
/// files it needs, then [`up`].
pub async fn apply(
    client: &Client,
    project: &Project,
    plan: &Plan,
    options: &DeployOptions,
    progress: &mut (dyn FnMut(&JobProgress) + Send),
) -> Result<Outcome, DeployError> {
    let (created, missing) = if options.create_dirs {
        (
            ensure_dirs(client, &project.mounts, &project.uploads).await?,
            Vec::new(),
        )
    } else {
        (Vec::new(), missing_dirs(client, &project.mounts).await?)
    };
    let uploaded = upload_files(
        client,
        &project.uploads,
        &plan.document,
        plan.remote.config.as_ref(),
    )
    .await?;
    let mut outcome = up(
        client,
        &project.name,
        &plan.document,
        &plan.remote,
        &project.uploads,
        options,
        progress,
    )
    .await?;
    outcome.dirs_created = created;
    outcome.missing_dirs = missing;
    outcome.uploaded = uploaded;
    Ok(outcome)
}

/// What [`rollback`] did.
#[derive(Debug, Clone)]
pub struct Rollback {
    /// The journal entry redeployed.
    pub entry: Entry,
    /// The changes against what ran (masked).
    pub diff: Diff,
    /// The deployment.
    pub outcome: Outcome,
}

/// Redeploy the newest journal document of `app` on `server` that differs from what runs, with
/// the files it was deployed with (rolling back twice swaps back); it is journaled as
/// `rolled_back`.
pub async fn rollback(
    client: &Client,
    journal: &Journal,
    server: &str,
    app: &str,
    options: &DeployOptions,
    progress: &mut (dyn FnMut(&JobProgress) + Send),
) -> Result<Rollback, DeployError> {
    let remote = remote(client, app).await?;
    let Some(entry) = journal.previous(server, app, remote.config.as_ref())? else {
        return Err(DeployError::NothingToRollBack {
            app: app.to_owned(),
            dir: journal.app_dir(server, app),
        });
    };
    let d = diff(
        remote.config.as_ref(),
        &entry.document,
        &Secrets::default(),
        false,
    );
    let options = DeployOptions {
        journal: Some((journal.clone(), server.to_owned())),
        update_action: "rolled_back".into(),
        ..options.clone()
    };
    let files = entry.uploads(journal, server, app)?;
    let uploaded = upload_files(client, &files, &entry.document, remote.config.as_ref()).await?;
    let mut outcome = up(
        client,
        app,
        &entry.document,
        &remote,
        &files,
        &options,
        progress,
    )
    .await?;
    outcome.uploaded = uploaded;
    Ok(Rollback {
        entry,
        diff: d,
        outcome,
    })
}

/// Deploy `document` as app `app`: create it, update it, or leave it alone when the NAS
/// already runs exactly this document; then wait (see the module docs). [`apply`] prepares
/// folders and uploads `files` first; they are journaled with the document.
pub async fn up(
    client: &Client,
    app: &str,
    document: &Value,
    remote: &Remote,
    files: &[Upload],
    options: &DeployOptions,
    progress: &mut (dyn FnMut(&JobProgress) + Send),
) -> Result<Outcome, DeployError> {
    let mut outcome = Outcome {
        app: app.to_owned(),
        action: Action::Unchanged,
        state: remote.state().map(str::to_owned),
        jobs: Vec::new(),
        dirs_created: Vec::new(),
        missing_dirs: Vec::new(),
        uploaded: Vec::new(),
        crashed: Vec::new(),
        entry: remote.entry.clone(),
    };
    if let Some(entry) = &remote.entry {
        check_not_error(app, entry)?;
    }
    let unchanged = remote
        .config
        .as_ref()
        .is_some_and(|c| semantic_eq(c, document));
    if unchanged && remote.state() != Some("STOPPED") {
        let entry = remote.entry.clone().unwrap_or(Value::Null);
        if options.wait && state_of(&entry) == Some("DEPLOYING") {
            let mut sub = client.subscribe("app.query").await?;
            let entry = wait_state(client, &mut sub, app, &entry, options).await?;
            let _ = sub.unsubscribe().await;
            outcome.state = state_of(&entry).map(str::to_owned);
            finish(client, &entry, options, &mut outcome).await?;
        } else {
            finish(client, &entry, options, &mut outcome).await?;
        }
        return Ok(outcome);
    }
    // Subscribe before the job, so no state change is missed.
    let mut sub = client.subscribe("app.query").await?;
    let mut entry = if remote.entry.is_none() {
        outcome.action = Action::Created;
        run_job(
            client,
            "app.create",
            vec![create_params(app, document)],
            &mut outcome.jobs,
            progress,
        )
        .await?
    } else if unchanged {
        Value::Null
    } else {
        outcome.action = Action::Updated;
        run_job(
            client,
            "app.update",
            vec![json!(app), json!({"custom_compose_config": document})],
            &mut outcome.jobs,
            progress,
        )
        .await?
    };
    if let Some((journal, server)) = &options.journal
        && matches!(outcome.action, Action::Created | Action::Updated)
    {
        let action = if outcome.action == Action::Created {
            "created"
        } else {
            options.update_action.as_str()
        };
        journal.record(server, app, action, document, files)?;
    }
    // An update of a stopped app only saves the config (docs/apps.md §1.3); `up` means running.
    if unchanged || state_of(&entry) == Some("STOPPED") {
        if unchanged {
            outcome.action = Action::Started;
        }
        run_job(
            client,
            "app.start",
            vec![json!(app)],
            &mut outcome.jobs,
            progress,
        )
        .await?;
        entry = app_entry(client, app)
            .await?
            .ok_or_else(|| DeployError::Removed {
                app: app.to_owned(),
            })?;
    }
    if options.wait {
        entry = wait_state(client, &mut sub, app, &entry, options).await?;
    }
    let _ = sub.unsubscribe().await;
    check_not_error(app, &entry)?;
    outcome.state = state_of(&entry).map(str::to_owned);
    finish(client, &entry, options, &mut outcome).await?;
    Ok(outcome)
}

/// Keep the final entry; on CRASHED, collect the failing containers' logs.
async fn finish(
    client: &Client,
    entry: &Value,
    options: &DeployOptions,
    outcome: &mut Outcome,
) -> Result<(), DeployError> {
    if !entry.is_null() {
        outcome.entry = Some(entry.clone());
    }
    if state_of(entry) == Some("CRASHED") {
        outcome.crashed = crash_logs(client, &outcome.app, entry, options).await?;
    }
    Ok(())
}

/// Follow `app.query` events (and poll when quiet) until the app is RUNNING, CRASHED or (27+)
/// ERROR.
pub async fn wait_state(
    client: &Client,
    sub: &mut Subscription,
    app: &str,
    start: &Value,
    options: &DeployOptions,
) -> Result<Value, DeployError> {
    let ids = container_ids(start);
    let mut entry = start.clone();
    if terminal(&entry) {
        return Ok(entry);
    }
    let deadline = tokio::time::Instant::now() + options.timeout;
    let mut events = true;
    loop {
        tokio::select! {
            ev = sub.recv(), if events => match ev {
                Some(Ok(ev)) if ev.id.as_ref().and_then(Value::as_str) == Some(app) => {
                    if ev.msg == EventKind::Removed {
                        return Err(DeployError::Removed { app: app.to_owned() });
                    }
                    if let Some(fields) = ev.fields
                        && (ids.is_empty() || container_ids(&fields) == ids)
                    {
                        entry = fields;
                        if terminal(&entry) {
                            return Ok(entry);
                        }
                    }
                }
                Some(Ok(_)) => {}
                Some(Err(_)) | None => events = false,
            },
            _ = tokio::time::sleep(options.poll) => {
                match app_entry(client, app).await? {
                    Some(e) => {
                        entry = e;
                        if terminal(&entry) {
                            return Ok(entry);
                        }
                    }
                    None => return Err(DeployError::Removed { app: app.to_owned() }),
                }
            }
            _ = tokio::time::sleep_until(deadline) => {
                return Err(DeployError::Timeout {
                    app: app.to_owned(),
                    state: state_of(&entry).unwrap_or("unknown").to_owned(),
                    seconds: options.timeout.as_secs(),
                });
            }
        }
    }
}

/// The last lines of every container of `entry` that is not running.
pub async fn crash_logs(
    client: &Client,
    app: &str,
    entry: &Value,
    options: &DeployOptions,
) -> Result<Vec<ContainerLog>, Error> {
    let mut out = Vec::new();
    for c in containers(entry) {
        let state = c.get("state").and_then(Value::as_str).unwrap_or("");
        if matches!(state, "running" | "starting") {
            continue;
        }
        let id = c.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
        let mut lines = Vec::new();
        follow_logs(
            client,
            app,
            &id,
            Some(options.log_lines),
            Some(options.log_quiet),
            |l| lines.push(l.to_owned()),
        )
        .await?;
        out.push(ContainerLog {
            service: c
                .get("service_name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            container_id: id,
            state: state.to_owned(),
            lines,
        });
    }
    Ok(out)
}

/// The event name of a container's log (`app.container_log_follow:{…}`).
pub fn log_event(app: &str, container_id: &str, tail_lines: Option<u64>) -> String {
    let arg = json!({"app_name": app, "container_id": container_id, "tail_lines": tail_lines});
    format!("app.container_log_follow:{arg}")
}

/// Stream a container's log lines to `on_line` until the stream ends, or (with `quiet`) until
/// no line came for that long.
pub async fn follow_logs(
    client: &Client,
    app: &str,
    container_id: &str,
    tail_lines: Option<u64>,
    quiet: Option<Duration>,
    mut on_line: impl FnMut(&str),
) -> Result<(), Error> {
    let mut sub = client
        .subscribe(&log_event(app, container_id, tail_lines))
        .await?;
    loop {
        let next = match quiet {
            Some(d) => match tokio::time::timeout(d, sub.recv()).await {
                Ok(n) => n,
                Err(_) => break,
            },
            None => sub.recv().await,
        };
        match next {
            Some(Ok(ev)) => {
                if let Some(data) = ev
                    .fields
                    .as_ref()
                    .and_then(|f| f.get("data"))
                    .and_then(Value::as_str)
                {
                    for line in data.trim_end_matches('\n').split('\n') {
                        on_line(line);
                    }
                }
            }
            Some(Err(e)) => return Err(e),
            None => return Ok(()),
        }
    }
    let _ = sub.unsubscribe().await;
    Ok(())
}

/// Stop the app (`app.stop`), or delete it (`app.delete`, with `remove_images`).
pub async fn down(
    client: &Client,
    app: &str,
    delete: bool,
    remove_images: bool,
    progress: &mut (dyn FnMut(&JobProgress) + Send),
) -> Result<Value, Error> {
    let mut jobs = Vec::new();
    if delete {
        run_job(
            client,
            "app.delete",
            vec![json!(app), json!({"remove_images": remove_images})],
            &mut jobs,
            progress,
        )
        .await
    } else {
        run_job(client, "app.stop", vec![json!(app)], &mut jobs, progress).await
    }
}

/// `app.pull_images` (then a redeploy unless `redeploy` is false).
pub async fn pull(
    client: &Client,
    app: &str,
    redeploy: bool,
    progress: &mut (dyn FnMut(&JobProgress) + Send),
) -> Result<Value, Error> {
    let mut jobs = Vec::new();
    run_job(
        client,
        "app.pull_images",
        vec![json!(app), json!({"redeploy": redeploy})],
        &mut jobs,
        progress,
    )
    .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_event_names_are_exact() {
        assert_eq!(
            log_event("web", "abc", Some(5)),
            r#"app.container_log_follow:{"app_name":"web","container_id":"abc","tail_lines":5}"#
        );
        assert_eq!(
            log_event("web", "abc", None),
            r#"app.container_log_follow:{"app_name":"web","container_id":"abc","tail_lines":null}"#
        );
    }

    #[test]
    fn dataset_names() {
        for ok in ["data", "my-app_1", "v1.2", "a:b"] {
            assert!(dataset_component(ok), "{ok}");
        }
        for bad in ["", ".", "..", "a b ", "a*b", "ü", "a/b"] {
            assert!(!dataset_component(bad), "{bad}");
        }
    }

    #[test]
    fn folders_needed_once_each() {
        let mount = |remote: &str, kind| BindMount {
            owner: "s".into(),
            written: "./x".into(),
            local: "/p/x".into(),
            remote: remote.into(),
            kind,
            content: None,
        };
        let file = |remote: &str| Upload {
            owner: "s".into(),
            source: "./f".into(),
            remote: remote.into(),
            secret: false,
            size: 0,
            mode: 0o644,
            content: Vec::new(),
        };
        assert_eq!(
            needed_dirs(
                &[
                    mount("/r/a/data", MountKind::Directory),
                    mount("/r/a/conf/x.conf", MountKind::File)
                ],
                &[file("/r/a/conf/x.conf"), file("/r/a/data/seed.sql")]
            ),
            ["/r/a/data", "/r/a/conf"]
        );
    }

    #[test]
    fn parents() {
        assert_eq!(parent("/mnt/tank/a"), Some("/mnt/tank"));
        assert_eq!(parent("/mnt"), None);
        assert_eq!(parent("/mnt/tank/a/"), Some("/mnt/tank"));
    }
}
