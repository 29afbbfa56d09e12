//! `midscript compose up|diff|down|ps|logs|pull|rollback|config`: a local docker-compose
//! project deployed as an idempotent TrueNAS custom app (the pipeline lives in
//! [`crate::compose`]).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use serde_json::{Value, json};

use super::connection::Session;
use super::{CliError, ConnArgs, Exit};
use crate::client::{Client, Error};
use crate::compose::deploy::{self, DeployError, DeployOptions, LIFECYCLE_LOG, Outcome};
use crate::compose::journal::Journal;
use crate::compose::{self, ComposeError, Options, Project};
use crate::output::{self, Format, ProgressPrinter, ProgressStyle};

/// Which project, and how to resolve it.
#[derive(Debug, Clone, Default, Args)]
pub struct ProjectArgs {
    /// Compose file; repeat to merge overrides in order [default: compose.yaml, compose.yml,
    /// docker-compose.yml or docker-compose.yaml]
    #[arg(long = "file", short = 'f', value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Project directory [default: the first file's directory, else the current one]
    #[arg(long, value_name = "DIR")]
    pub project_directory: Option<PathBuf>,
    /// App name [default: COMPOSE_PROJECT_NAME, the top-level name:, the project directory's name]
    #[arg(long, value_name = "APP")]
    pub name: Option<String>,
    /// Read variables from this file instead of the project's .env.
    #[arg(long, value_name = "FILE")]
    pub env_file: Option<PathBuf>,
    /// Set a variable for interpolation (wins over the environment, which wins over .env).
    #[arg(long = "var", value_name = "KEY=VALUE")]
    pub vars: Vec<String>,
    /// Put relative bind mounts under this path on the NAS: ./data → PATH/APP/data.
    #[arg(long, value_name = "PATH")]
    pub dataset_root: Option<String>,
}

impl ProjectArgs {
    fn options(&self) -> Result<Options, CliError> {
        let mut vars = BTreeMap::new();
        for v in &self.vars {
            let (k, val) = v
                .split_once('=')
                .ok_or_else(|| CliError::Usage(format!("--var needs KEY=VALUE, not {v:?}")))?;
            vars.insert(k.to_owned(), val.to_owned());
        }
        Ok(Options {
            files: self.files.clone(),
            project_dir: self.project_directory.clone(),
            name: self.name.clone(),
            env_file: self.env_file.clone(),
            vars,
            environment: None,
            dataset_root: self.dataset_root.clone(),
        })
    }
}

/// How to wait after a deployment.
#[derive(Debug, Clone, Args)]
pub struct WaitArgs {
    /// Do not wait for the app to run.
    #[arg(long)]
    pub no_wait: bool,
    /// Seconds to wait for RUNNING (or CRASHED).
    #[arg(long = "timeout", value_name = "SECONDS", default_value_t = 300.0, value_parser = super::seconds::parse)]
    pub wait: f64,
    /// Log lines to show per crashed container.
    #[arg(long, value_name = "N", default_value_t = 50)]
    pub tail: u64,
    /// How to show job progress.
    #[arg(long, value_enum, default_value_t = ProgressStyle::Auto)]
    pub progress: ProgressStyle,
}

/// The compose subcommands.
#[derive(Debug, Subcommand)]
pub enum ComposeCommand {
    /// Deploy: create the app or update it (nothing is sent when the NAS already runs this
    /// exact document), then wait until it runs. A crash shows the containers' last log lines.
    #[command(mut_arg("timeout", |a| a.long("call-timeout").short(None)))]
    #[command(after_help = "Examples:
  midscript --profile nas compose up --dataset-root /mnt/tank/apps --create-dirs
  midscript compose up --plan                   show the changes, send nothing
  midscript compose up -f compose.yaml -f prod.yaml --var TAG=1.27")]
    Up {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        wait: WaitArgs,
        /// Only show what would change (like `diff`), send nothing.
        #[arg(long)]
        plan: bool,
        /// Create missing bind-mount folders on the NAS: datasets where the parent is a
        /// dataset (pool.dataset.create), directories otherwise (filesystem.mkdir).
        #[arg(long)]
        create_dirs: bool,
        /// Show values from .env/env_file and secret-looking keys in the diff.
        #[arg(long)]
        show_secrets: bool,
    },
    /// Show what `up` would change, per service, against what runs on the NAS.
    #[command(after_help = "Examples:
  midscript --profile nas compose diff
  midscript compose diff --exit-code || echo 'the NAS runs something else'")]
    Diff {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        conn: ConnArgs,
        /// Show values from .env/env_file and secret-looking keys.
        #[arg(long)]
        show_secrets: bool,
        /// Exit 1 when something would change, 0 when nothing would (for CI).
        #[arg(long)]
        exit_code: bool,
    },
    /// Stop the app (app.stop), or delete it with --delete.
    Down {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        conn: ConnArgs,
        /// Delete the app (app.delete) instead of stopping it.
        #[arg(long)]
        delete: bool,
        /// With --delete: remove its images too.
        #[arg(long, requires = "delete")]
        remove_images: bool,
        /// How to show job progress.
        #[arg(long, value_enum, default_value_t = ProgressStyle::Auto)]
        progress: ProgressStyle,
    },
    /// List the app's containers: service, state, image, ports.
    Ps {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        conn: ConnArgs,
    },
    /// Print the containers' logs (of one service when given).
    #[command(mut_arg("files", |a| a.short(None)))]
    Logs {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        conn: ConnArgs,
        /// Keep following until Ctrl-C.
        #[arg(long, short = 'f')]
        follow: bool,
        /// Lines from the end of each log.
        #[arg(long, value_name = "N", default_value_t = 100)]
        tail: u64,
        /// Only this service.
        service: Option<String>,
    },
    /// Pull the app's images (app.pull_images) and redeploy.
    Pull {
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        conn: ConnArgs,
        /// Only pull; do not recreate the containers.
        #[arg(long)]
        no_redeploy: bool,
        /// How to show job progress.
        #[arg(long, value_enum, default_value_t = ProgressStyle::Auto)]
        progress: ProgressStyle,
    },
    /// Redeploy the previous document from the local deploy journal (the NAS keeps no history).
    #[command(mut_arg("timeout", |a| a.long("call-timeout").short(None)))]
    Rollback {
        /// The app [default: the project's name].
        app: Option<String>,
        #[command(flatten)]
        project: ProjectArgs,
        #[command(flatten)]
        conn: ConnArgs,
        #[command(flatten)]
        wait: WaitArgs,
    },
    /// Print the resolved document that `up` would send (no connection). Values from
    /// .env/env_file and secret-looking keys are masked unless --show-secrets.
    Config {
        #[command(flatten)]
        project: ProjectArgs,
        /// Show the secrets instead of masking them.
        #[arg(long)]
        show_secrets: bool,
    },
}

impl ComposeCommand {
    fn conn(&self) -> Option<&ConnArgs> {
        match self {
            ComposeCommand::Up { conn, .. }
            | ComposeCommand::Diff { conn, .. }
            | ComposeCommand::Down { conn, .. }
            | ComposeCommand::Ps { conn, .. }
            | ComposeCommand::Logs { conn, .. }
            | ComposeCommand::Pull { conn, .. }
            | ComposeCommand::Rollback { conn, .. } => Some(conn),
            ComposeCommand::Config { .. } => None,
        }
    }
}

fn compose_err(e: ComposeError) -> CliError {
    match e {
        ComposeError::Journal { .. } => CliError::Refused(e.to_string()),
        other => CliError::Project(other.to_string()),
    }
}

fn deploy_err(e: DeployError) -> CliError {
    match e {
        DeployError::Client(c) => CliError::Client(c),
        DeployError::Journal(j) => compose_err(j),
        other => CliError::Refused(other.to_string()),
    }
}

fn warn_all(warnings: &[String]) {
    for w in warnings {
        output::warn(&format!("midscript: warning: {w}"));
    }
}

/// Structured output (`-o json|compact|yaml`) instead of text for people.
fn json_out(format: Format) -> bool {
    matches!(format, Format::Json | Format::Compact | Format::Yaml)
}

fn print_json(v: &Value, format: Format) {
    output::emit_value(v, format, false);
}

/// The deploy journal in the state directory (`$XDG_STATE_HOME/midscript/journal`).
fn journal() -> Result<Journal, CliError> {
    Journal::default_location().map_err(compose_err)
}

/// The journal's key for the server: its URL, or [`ConnArgs::journal_server`].
fn server_of(conn: &ConnArgs, client: &Client) -> String {
    conn.journal_server()
        .unwrap_or_else(|| client.url().to_owned())
}

/// Run a compose subcommand.
pub async fn run(cmd: ComposeCommand, outer: &ConnArgs, format: Format) -> Result<Exit, CliError> {
    let conn = cmd.conn().cloned().map(|c| c.or(outer));
    match cmd {
        ComposeCommand::Config {
            project,
            show_secrets,
        } => {
            let p = compose::resolve(&project.options()?).map_err(compose_err)?;
            warn_all(&p.warnings);
            let shown = if show_secrets {
                p.document.clone()
            } else {
                p.secrets.mask_document(&p.document)
            };
            let text = match format {
                // The document is what is sent: pretty JSON unless another format is asked for.
                Format::Auto | Format::Table => {
                    serde_json::to_string_pretty(&shown).unwrap_or_default()
                }
                other => output::render(&shown, other, false),
            };
            output::emit_line(&text);
            Ok(Exit::Ok)
        }
        ComposeCommand::Up {
            project,
            wait,
            plan,
            create_dirs,
            show_secrets,
            ..
        } => {
            let conn = conn.unwrap_or_default();
            let p = compose::resolve(&project.options()?).map_err(compose_err)?;
            warn_all(&p.warnings);
            let session = conn.connect().await?;
            session
                .scoped(async |session| {
                    interruptible(up(
                        session,
                        &conn,
                        &p,
                        &wait,
                        plan,
                        create_dirs,
                        show_secrets,
                        format,
                    ))
                    .await
                })
                .await
        }
        ComposeCommand::Diff {
            project,
            show_secrets,
            exit_code,
            ..
        } => {
            let conn = conn.unwrap_or_default();
            let p = compose::resolve(&project.options()?).map_err(compose_err)?;
            warn_all(&p.warnings);
            let session = conn.connect().await?;
            let d = session
                .scoped(async |s| Ok(deploy::plan(&s.client, &p, show_secrets).await?))
                .await?
                .diff;
            if json_out(format) {
                print_json(&serde_json::to_value(&d).unwrap_or_default(), format);
            } else {
                output::emit_line(&output::diff_text(&d.render()));
            }
            Ok(if exit_code && !d.is_empty() {
                Exit::MethodError
            } else {
                Exit::Ok
            })
        }
        ComposeCommand::Down {
            project,
            delete,
            remove_images,
            progress,
            ..
        } => {
            let (session, app) = open_app(conn, &project).await?;
            let mut printer = ProgressPrinter::new(progress);
            let r = session
                .scoped(async |session| {
                    must_exist(&session.client, &app).await?;
                    interruptible(async {
                        deploy::down(&session.client, &app, delete, remove_images, &mut |p| {
                            printer.update(p)
                        })
                        .await
                        .map_err(CliError::from)
                    })
                    .await
                })
                .await;
            printer.finish();
            r?;
            if json_out(format) {
                print_json(
                    &json!({"app": app, "action": if delete { "deleted" } else { "stopped" }}),
                    format,
                );
            } else {
                output::emit_line(&format!(
                    "{app}: {}",
                    if delete { "deleted" } else { "stopped" }
                ));
            }
            Ok(Exit::Ok)
        }
        ComposeCommand::Ps { project, .. } => {
            let (session, app) = open_app(conn, &project).await?;
            let entry = session
                .scoped(async |s| Ok(deploy::app_entry(&s.client, &app).await?))
                .await?;
            let Some(entry) = entry else {
                return Err(missing_app(&app));
            };
            print_ps(&app, &entry, format);
            Ok(Exit::Ok)
        }
        ComposeCommand::Logs {
            project,
            follow,
            tail,
            service,
            ..
        } => {
            let (session, app) = open_app(conn, &project).await?;
            session
                .scoped(async |session| {
                    interruptible(logs(
                        &session.client,
                        &app,
                        service.as_deref(),
                        tail,
                        follow,
                    ))
                    .await
                })
                .await
        }
        ComposeCommand::Pull {
            project,
            no_redeploy,
            progress,
            ..
        } => {
            let (session, app) = open_app(conn, &project).await?;
            let mut printer = ProgressPrinter::new(progress);
            let r = session
                .scoped(async |session| {
                    must_exist(&session.client, &app).await?;
                    interruptible(async {
                        deploy::pull(&session.client, &app, !no_redeploy, &mut |p| {
                            printer.update(p)
                        })
                        .await
                        .map_err(CliError::from)
                    })
                    .await
                })
                .await;
            printer.finish();
            r?;
            output::emit_line(&format!(
                "{app}: images pulled{}",
                if no_redeploy { "" } else { ", redeployed" }
            ));
            Ok(Exit::Ok)
        }
        ComposeCommand::Rollback {
            app, project, wait, ..
        } => {
            let conn = conn.unwrap_or_default();
            let app = match app {
                Some(a) => {
                    compose::check_app_name(&a).map_err(compose_err)?;
                    a
                }
                None => {
                    compose::project_name(&project.options()?)
                        .map_err(compose_err)?
                        .1
                }
            };
            let session = conn.connect().await?;
            session
                .scoped(async |session| {
                    interruptible(rollback(session, &conn, &app, &wait, format)).await
                })
                .await
        }
    }
}

/// The refusal for an app that is not on the NAS.
fn missing_app(app: &str) -> CliError {
    CliError::Refused(format!(
        "{app} does not exist on the NAS (deploy it with `midscript compose up`)"
    ))
}

/// Refuse, before starting a job that would fail, to act on an app that is not there.
async fn must_exist(client: &Client, app: &str) -> Result<(), CliError> {
    match deploy::app_entry(client, app).await? {
        Some(_) => Ok(()),
        None => Err(missing_app(app)),
    }
}

/// The app a project deploys as, and a session to the server it lives on.
async fn open_app(
    conn: Option<ConnArgs>,
    project: &ProjectArgs,
) -> Result<(Session, String), CliError> {
    let (_, app) = compose::project_name(&project.options()?).map_err(compose_err)?;
    let session = conn.unwrap_or_default().connect().await?;
    Ok((session, app))
}

/// Run `f`, turning Ctrl-C into an interruption (jobs already sent keep running on the NAS).
async fn interruptible<T>(
    f: impl std::future::Future<Output = Result<T, CliError>>,
) -> Result<T, CliError> {
    tokio::select! {
        r = f => r,
        _ = tokio::signal::ctrl_c() => {
            output::warn("midscript: interrupted (a job already sent keeps running on the NAS)");
            Err(Error::Cancelled.into())
        }
    }
}

fn deploy_options(wait: &WaitArgs) -> Result<DeployOptions, CliError> {
    super::seconds::check(wait.wait).map_err(|e| CliError::Usage(format!("--timeout: {e}")))?;
    Ok(DeployOptions {
        wait: !wait.no_wait,
        timeout: super::seconds::duration(wait.wait),
        log_lines: wait.tail,
        ..DeployOptions::default()
    })
}

#[allow(clippy::too_many_arguments)]
async fn up(
    session: &Session,
    conn: &ConnArgs,
    p: &Project,
    wait: &WaitArgs,
    plan: bool,
    create_dirs: bool,
    show_secrets: bool,
    format: Format,
) -> Result<Exit, CliError> {
    let client = &session.client;
    let planned = deploy::plan(client, p, show_secrets).await?;
    let d = &planned.diff;
    if plan {
        if json_out(format) {
            print_json(&serde_json::to_value(d).unwrap_or_default(), format);
        } else {
            output::emit_line(&output::diff_text(&d.render()));
        }
        return Ok(Exit::Ok);
    }
    if !d.is_empty() && !json_out(format) {
        output::emit_line(&output::diff_text(&d.render()));
    }
    let mut options = deploy_options(wait)?;
    options.create_dirs = create_dirs;
    options.journal = Some((journal()?, server_of(conn, client)));
    let mut printer = ProgressPrinter::new(wait.progress);
    let r = deploy::apply(client, p, &planned, &options, &mut |j| printer.update(j)).await;
    printer.finish();
    report(&r.map_err(deploy_err)?, format)
}

/// Print the outcome; CRASHED exits [`Exit::Crashed`].
fn report(o: &Outcome, format: Format) -> Result<Exit, CliError> {
    for d in &o.dirs_created {
        output::warn(&format!("midscript: created {d} on the NAS"));
    }
    for d in &o.missing_dirs {
        output::warn(&format!(
            "midscript: warning: bind folder {d} does not exist on the NAS: docker will create it owned by root (pass --create-dirs to create it first)"
        ));
    }
    for f in &o.uploaded {
        output::warn(&format!("midscript: uploaded {f}"));
    }
    if json_out(format) {
        print_json(&serde_json::to_value(o).unwrap_or_default(), format);
    } else {
        let state = o.state.as_deref().unwrap_or("unknown");
        output::emit_line(&format!("{}: {}, {state}", o.app, o.action));
        for c in &o.crashed {
            output::emit_line(&format!(
                "--- {} ({}, container {}), last {} lines:",
                c.service,
                c.state,
                short_id(&c.container_id),
                c.lines.len()
            ));
            for l in &c.lines {
                output::emit_line(&format!("{} | {l}", c.service));
            }
        }
    }
    if o.is_crashed() {
        output::warn(&format!(
            "midscript: error: {} crashed; docker compose's own messages are in {LIFECYCLE_LOG} on the NAS",
            o.app
        ));
        return Ok(Exit::Crashed);
    }
    Ok(Exit::Ok)
}

fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

fn ports_text(c: &Value) -> String {
    let mut out = Vec::new();
    for p in c
        .get("port_config")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let container = p
            .get("container_port")
            .map(|v| v.to_string().trim_matches('"').to_owned())
            .unwrap_or_default();
        let proto = p.get("protocol").and_then(Value::as_str).unwrap_or("tcp");
        let hosts = p
            .get("host_ports")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        if hosts.is_empty() {
            out.push(format!("{container}/{proto}"));
        }
        for h in hosts {
            let ip = h
                .get("host_ip")
                .and_then(Value::as_str)
                .unwrap_or("0.0.0.0");
            let port = h
                .get("host_port")
                .map(|v| v.to_string().trim_matches('"').to_owned())
                .unwrap_or_default();
            out.push(format!("{ip}:{port}->{container}/{proto}"));
        }
    }
    out.join(", ")
}

fn print_ps(app: &str, entry: &Value, format: Format) {
    let rows: Vec<Value> = deploy::containers(entry)
        .iter()
        .map(|c| {
            json!({
                "service": c.get("service_name").cloned().unwrap_or(Value::Null),
                "container": short_id(c.get("id").and_then(Value::as_str).unwrap_or("")),
                "state": c.get("state").cloned().unwrap_or(Value::Null),
                "image": c.get("image").cloned().unwrap_or(Value::Null),
                "ports": ports_text(c),
            })
        })
        .collect();
    let state = entry
        .get("state")
        .and_then(Value::as_str)
        .unwrap_or("unknown");
    if json_out(format) {
        print_json(
            &json!({"app": app, "state": state, "containers": rows}),
            format,
        );
        return;
    }
    output::emit_line(&format!("{app}: {state}"));
    if let Some(t) = output::table(&Value::Array(rows)) {
        output::emit_line(&t);
    }
}

async fn logs(
    client: &Client,
    app: &str,
    service: Option<&str>,
    tail: u64,
    follow: bool,
) -> Result<Exit, CliError> {
    let Some(entry) = deploy::app_entry(client, app).await? else {
        return Err(missing_app(app));
    };
    let all = deploy::containers(&entry);
    let picked: Vec<&Value> = all
        .iter()
        .filter(|c| {
            service.is_none_or(|s| c.get("service_name").and_then(Value::as_str) == Some(s))
        })
        .collect();
    if picked.is_empty() {
        let services: Vec<&str> = all
            .iter()
            .filter_map(|c| c.get("service_name").and_then(Value::as_str))
            .collect();
        return Err(CliError::Refused(match service {
            Some(s) => format!(
                "{app} has no container for service {s:?} (services with containers: {})",
                services.join(", ")
            ),
            None => format!(
                "{app} has no containers (state {})",
                entry
                    .get("state")
                    .and_then(Value::as_str)
                    .unwrap_or("unknown")
            ),
        }));
    }
    let prefix = picked.len() > 1;
    let quiet = (!follow).then(|| Duration::from_millis(1500));
    // Cancelled once stdout is closed (`compose logs -f | head`): nobody reads any more.
    let closed = tokio_util::sync::CancellationToken::new();
    let mut tasks = tokio::task::JoinSet::new();
    for c in picked {
        let svc = c
            .get("service_name")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        let id = c.get("id").and_then(Value::as_str).unwrap_or("").to_owned();
        let (client, app, closed) = (client.clone(), app.to_owned(), closed.clone());
        let run = async move {
            deploy::follow_logs(&client, &app, &id, Some(tail), quiet, |l| {
                let written = if prefix {
                    output::try_emit(&format!("{svc} | {l}\n"))
                } else {
                    output::try_emit(&format!("{l}\n"))
                };
                if !written {
                    closed.cancel();
                }
            })
            .await
        };
        if follow {
            tasks.spawn(run);
        } else {
            // One after the other, so the output is not interleaved.
            run.await?;
        }
    }
    loop {
        tokio::select! {
            () = closed.cancelled() => {
                tasks.abort_all();
                break;
            }
            r = tasks.join_next() => match r {
                None => break,
                Some(Ok(Err(e))) => return Err(e.into()),
                Some(_) => {}
            },
        }
    }
    Ok(Exit::Ok)
}

async fn rollback(
    session: &Session,
    conn: &ConnArgs,
    app: &str,
    wait: &WaitArgs,
    format: Format,
) -> Result<Exit, CliError> {
    let client = &session.client;
    let journal = journal()?;
    let server = server_of(conn, client);
    let options = deploy_options(wait)?;
    let mut printer = ProgressPrinter::new(wait.progress);
    let r = deploy::rollback(client, &journal, &server, app, &options, &mut |j| {
        printer.update(j)
    })
    .await;
    printer.finish();
    let done = r.map_err(deploy_err)?;
    if !json_out(format) {
        output::emit_line(&format!(
            "rolled {app} back to the document deployed at {} (journal entry {})",
            done.entry.time, done.entry.seq
        ));
        output::emit_line(&output::diff_text(&done.diff.render()));
    }
    report(&done.outcome, format)
}
