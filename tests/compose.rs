//! Compose deployments against the in-process mock: each sample project's expected outcome
//! (tests/fixtures/compose/README.md), with the exact `app.create` / `app.update` payloads
//! (the mock transcript lines of those calls) checked by insta snapshots.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use midscript::client::Client;
use midscript::compose::deploy::{self, Action, DeployOptions};
use midscript::compose::journal::Journal;
use midscript::compose::{self, ComposeError, Options, Project};
use midscript::mock::MockServer;
use serde_json::{Value, json};

use crate::support::in_process::{self, mock};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose")
        .join(name)
}

/// Options for a fixture with an empty environment (nothing leaks in from the test runner).
fn options(name: &str) -> Options {
    Options {
        project_dir: Some(fixture(name)),
        environment: Some(BTreeMap::new()),
        ..Options::default()
    }
}

fn inventory_options() -> Options {
    Options {
        dataset_root: Some("/mnt/tank/apps".into()),
        ..options("inventory")
    }
}

/// Logged in as the mock's first user.
async fn connect(server: &MockServer) -> Client {
    in_process::connect(server, Some(in_process::password(server)))
        .await
        .expect("login")
}

fn fast() -> DeployOptions {
    DeployOptions {
        timeout: Duration::from_secs(10),
        log_quiet: Duration::from_millis(500),
        poll: Duration::from_millis(200),
        ..DeployOptions::default()
    }
}

/// The client frames that call one of `methods`, as the mock recorded them.
fn calls(server: &MockServer, methods: &[&str]) -> String {
    server
        .transcript()
        .to_string()
        .lines()
        .filter(|l| l.contains(" -> "))
        .filter(|l| {
            methods
                .iter()
                .any(|m| l.contains(&format!("\"method\":\"{m}\"")))
        })
        .map(|l| l.split_once(" -> ").map_or(l, |(_, f)| f).to_owned())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Every method the client called, in order.
fn methods_called(server: &MockServer) -> Vec<String> {
    server
        .transcript()
        .to_string()
        .lines()
        .filter_map(|l| l.split_once(" -> "))
        .filter_map(|(_, f)| serde_json::from_str::<Value>(f).ok())
        .filter_map(|v| v.get("method").and_then(Value::as_str).map(str::to_owned))
        .collect()
}

/// Plan and apply, as `midscript compose up` and the script `compose::up` do.
async fn deploy(client: &Client, p: &Project, o: &DeployOptions) -> deploy::Outcome {
    let plan = deploy::plan(client, p, false).await.unwrap();
    deploy::apply(client, p, &plan, o, &mut |_| {})
        .await
        .expect("deploys")
}

#[tokio::test]
async fn whoami_deploys_with_portals_and_notes() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let p = compose::resolve(&options("whoami")).unwrap();
    assert_eq!(p.name, "whoami");
    assert!(p.warnings.is_empty(), "{:?}", p.warnings);
    let o = deploy(&client, &p, &fast()).await;
    assert_eq!(o.action, Action::Created);
    assert_eq!(o.state.as_deref(), Some("RUNNING"));
    assert_eq!(o.jobs.len(), 1);
    let entry = deploy::app_entry(&client, "whoami").await.unwrap().unwrap();
    assert_eq!(
        entry["portals"],
        json!({"Web UI": "http://127.0.0.1:8081/"})
    );
    assert_eq!(entry["notes"], "# whoami\nA one-container smoke test.\n");
    in_process::plain_settings().bind(|| {
        insta::assert_snapshot!("whoami_create", calls(&server, &["app.create"]));
    });
    client.close().await;
}

#[tokio::test]
async fn inventory_is_resolved_client_side_and_a_second_up_sends_nothing() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let p = compose::resolve(&inventory_options()).unwrap();
    let doc = &p.document;
    // Interpolated from .env and defaults; env_file inlined; explicit environment wins.
    assert_eq!(
        doc["services"]["api"]["image"],
        "ghcr.io/example/inventory-api:1.4.3"
    );
    assert_eq!(doc["services"]["web"]["ports"], json!(["8080:80"]));
    let api_env = &doc["services"]["api"]["environment"];
    assert_eq!(api_env["LOG_LEVEL"], "info");
    assert_eq!(
        api_env["DATABASE_URL"],
        "postgres://inventory:s3cr3t-Passw0rd@db:5432/inventory"
    );
    assert!(doc["services"]["api"].get("env_file").is_none());
    // Literal $ written $$, escapes kept escaped.
    assert_eq!(api_env["PRICE_FORMAT"], "$$#,##0.00");
    assert_eq!(
        doc["services"]["db"]["healthcheck"]["test"][1],
        "pg_isready -U $${POSTGRES_USER} -d $${POSTGRES_DB}"
    );
    // Strings stay strings.
    assert_eq!(api_env["FEATURE_FLAGS"], json!("on"));
    assert_eq!(api_env["UMASK"], json!("0022"));
    // Relative paths on the dataset.
    assert_eq!(
        doc["services"]["db"]["volumes"][0],
        "/mnt/tank/apps/inventory/data/postgres:/var/lib/postgresql/data"
    );
    assert_eq!(
        doc["services"]["web"]["volumes"][0],
        "/mnt/tank/apps/inventory/config/nginx.conf:/etc/nginx/conf.d/default.conf:ro"
    );
    // Warnings: the inactive debug profile (adminer is not deployed).
    assert_eq!(p.warnings.len(), 1, "{:#?}", p.warnings);
    assert!(p.warnings[0].contains("adminer has profiles"));
    assert!(doc["services"].get("adminer").is_none());
    // The single-file mount is uploaded; its fingerprint is in the document.
    assert_eq!(p.uploads.len(), 1);
    assert_eq!(
        p.uploads[0].remote,
        "/mnt/tank/apps/inventory/config/nginx.conf"
    );
    assert!(
        doc["x-midscript"]["files"]["/mnt/tank/apps/inventory/config/nginx.conf"]
            .as_str()
            .is_some_and(|f| f.starts_with("sha256:")),
        "{doc}"
    );

    let o = DeployOptions {
        create_dirs: true,
        ..fast()
    };
    let out = deploy(&client, &p, &o).await;
    assert_eq!(out.action, Action::Created);
    assert_eq!(out.state.as_deref(), Some("RUNNING"));
    // The pool's root is a dataset, so every missing folder becomes a dataset.
    let created: Vec<(String, Option<String>)> = out
        .dirs_created
        .iter()
        .map(|c| (c.path.clone(), c.dataset.clone()))
        .collect();
    let ds = |p: &str| (format!("/mnt/{p}"), Some(p.to_owned()));
    assert_eq!(
        created,
        [
            ds("tank/apps"),
            ds("tank/apps/inventory"),
            ds("tank/apps/inventory/data"),
            ds("tank/apps/inventory/data/postgres"),
            ds("tank/apps/inventory/config"),
        ]
    );
    assert!(out.missing_dirs.is_empty());
    assert_eq!(out.uploaded, ["/mnt/tank/apps/inventory/config/nginx.conf"]);
    assert_eq!(
        server
            .file_content("/mnt/tank/apps/inventory/config/nginx.conf")
            .unwrap(),
        std::fs::read(fixture("inventory/config/nginx.conf")).unwrap()
    );
    assert!(
        server
            .files()
            .contains(&("/mnt/tank/apps/inventory/data/postgres".into(), "DIRECTORY"))
    );
    assert!(
        server
            .datasets()
            .contains(&"tank/apps/inventory/data/postgres".to_owned())
    );
    // What the server stores is exactly what was resolved.
    let stored = client
        .call("app.config", vec![json!("inventory")])
        .await
        .unwrap();
    assert_eq!(&stored, doc);
    in_process::plain_settings().bind(|| {
        insta::assert_snapshot!(
            "inventory_create",
            calls(
                &server,
                &[
                    "filesystem.mkdir",
                    "pool.dataset.create",
                    "filesystem.file_receive",
                    "app.create"
                ]
            )
        );
    });

    // Again, nothing changed: no job, no folder, no upload.
    server.clear_transcript();
    let p2 = compose::resolve(&inventory_options()).unwrap();
    let out = deploy(&client, &p2, &o).await;
    assert_eq!(out.action, Action::Unchanged);
    assert_eq!(out.state.as_deref(), Some("RUNNING"));
    assert!(out.jobs.is_empty());
    assert!(out.dirs_created.is_empty() && out.uploaded.is_empty());
    in_process::plain_settings().bind(|| {
        insta::assert_snapshot!(
            "inventory_second_up_methods",
            methods_called(&server).join("\n")
        );
    });
    client.close().await;
}

#[tokio::test]
async fn one_changed_variable_is_a_one_line_diff_and_one_update() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let p = compose::resolve(&inventory_options()).unwrap();
    deploy(&client, &p, &fast()).await;
    server.clear_transcript();

    let mut changed = inventory_options();
    changed.vars.insert("WEB_TAG".into(), "1.5.0".into());
    let p2 = compose::resolve(&changed).unwrap();
    let remote = deploy::remote(&client, "inventory").await.unwrap();
    let d = compose::diff::diff(remote.config.as_ref(), &p2.document, &p2.secrets, false);
    assert_eq!(d.len(), 1);
    assert_eq!(
        d.render(),
        "~ web\n    image: \"ghcr.io/example/inventory-web:1.4.2\" -> \"ghcr.io/example/inventory-web:1.5.0\""
    );
    let out = deploy(&client, &p2, &fast()).await;
    assert_eq!(out.action, Action::Updated);
    assert_eq!(out.state.as_deref(), Some("RUNNING"));
    assert_eq!(
        methods_called(&server)
            .iter()
            .filter(|m| *m == "app.update")
            .count(),
        1
    );
    in_process::plain_settings().bind(|| {
        insta::assert_snapshot!("inventory_update", calls(&server, &["app.update"]));
    });
    client.close().await;
}

#[tokio::test]
async fn diffs_mask_values_from_dotenv_and_env_files() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let p = compose::resolve(&inventory_options()).unwrap();
    deploy(&client, &p, &fast()).await;
    let mut changed = inventory_options();
    changed.env_file = Some(fixture("inventory/.env"));
    changed
        .vars
        .insert("DB_PASSWORD".into(), "n3w-Passw0rd".into());
    let p2 = compose::resolve(&changed).unwrap();
    let remote = deploy::remote(&client, "inventory").await.unwrap();
    let text =
        compose::diff::diff(remote.config.as_ref(), &p2.document, &p2.secrets, false).render();
    assert!(!text.contains("s3cr3t"), "{text}");
    assert!(!text.contains("n3w-Passw0rd"), "{text}");
    assert_eq!(
        text,
        "~ db\n    environment.POSTGRES_PASSWORD: \"********\" -> \"********\"\n~ api\n    environment.DATABASE_URL: \"postgres://inventory:s3cr3t-Passw0rd@db:5432/inventory\" -> \"postgres://inventory:n3w-Passw0rd@db:5432/inventory\""
            .replace("postgres://inventory:s3cr3t-Passw0rd@db:5432/inventory", "********")
            .replace("postgres://inventory:n3w-Passw0rd@db:5432/inventory", "********")
    );
    let shown =
        compose::diff::diff(remote.config.as_ref(), &p2.document, &p2.secrets, true).render();
    assert!(shown.contains("n3w-Passw0rd"));
    client.close().await;
}

#[tokio::test]
async fn a_crashing_deployment_reports_the_failing_containers_logs() {
    let server = mock(|c| c.crash_apps = vec!["crashy".into()]).await;
    let client = connect(&server).await;
    let p = compose::resolve(&Options {
        name: Some("crashy".into()),
        ..options("whoami")
    })
    .unwrap();
    let out = deploy(&client, &p, &fast()).await;
    assert_eq!(out.action, Action::Created);
    assert!(out.is_crashed());
    assert_eq!(out.crashed.len(), 1);
    let log = &out.crashed[0];
    assert_eq!(log.service, "web");
    assert_eq!(log.state, "crashed");
    assert_eq!(
        log.lines,
        [
            "Starting web (traefik/whoami:v1.10)",
            "listening on port 80/tcp",
            "fatal error (simulated crash), exiting with code 1"
        ]
    );
    let events = calls(&server, &["core.subscribe"]);
    assert!(
        events.contains(r#"app.container_log_follow:{\"app_name\":\"crashy\",\"container_id\":"#),
        "{events}"
    );
    client.close().await;
}

/// A connected mock, and deploy options that journal into a fresh folder (kept while the
/// `TempDir` lives).
async fn journaled() -> (
    tempfile::TempDir,
    Journal,
    MockServer,
    Client,
    DeployOptions,
) {
    let state = tempfile::tempdir().unwrap();
    let journal = Journal::at(state.path());
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let options = DeployOptions {
        journal: Some((journal.clone(), server.url())),
        ..fast()
    };
    (state, journal, server, client, options)
}

/// Roll `app` back to its previous journalled document.
async fn roll_back(
    client: &Client,
    journal: &Journal,
    server: &MockServer,
    app: &str,
) -> Result<deploy::Rollback, deploy::DeployError> {
    deploy::rollback(client, journal, &server.url(), app, &fast(), &mut |_| {}).await
}

#[tokio::test]
async fn rollback_restores_the_previous_document() {
    let (_state, journal, server, client, o) = journaled().await;
    let v1 = compose::resolve(&inventory_options()).unwrap();
    deploy(&client, &v1, &o).await;
    let mut changed = inventory_options();
    changed.vars.insert("WEB_TAG".into(), "1.5.0".into());
    let v2 = compose::resolve(&changed).unwrap();
    deploy(&client, &v2, &o).await;
    assert_eq!(
        journal.entries(&server.url(), "inventory").unwrap().len(),
        2
    );

    let done = roll_back(&client, &journal, &server, "inventory")
        .await
        .unwrap();
    assert_eq!(done.entry.document, v1.document);
    assert_eq!(done.outcome.action, Action::Updated);
    assert_eq!(done.diff.len(), 1, "{}", done.diff.render());
    let stored = client
        .call("app.config", vec![json!("inventory")])
        .await
        .unwrap();
    assert_eq!(stored, v1.document);
    let entries = journal.entries(&server.url(), "inventory").unwrap();
    assert_eq!(
        entries
            .iter()
            .map(|e| e.action.as_str())
            .collect::<Vec<_>>(),
        ["created", "updated", "rolled_back"]
    );
    client.close().await;
}

/// Resolve a fixture that must fail, with a connected client, and prove nothing was sent.
async fn refused(name: &str) -> String {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let err = compose::resolve(&options(name)).unwrap_err();
    assert!(!matches!(err, ComposeError::Read { .. }), "{err}");
    client.close().await;
    let t = server.transcript().to_string();
    assert!(
        !t.contains("app.create") && !t.contains("app.update"),
        "{t}"
    );
    err.to_string()
        .replace(&fixture("").display().to_string(), "")
}

#[tokio::test]
async fn broken_yaml_names_file_line_and_column() {
    let e = refused("broken-yaml").await;
    assert_eq!(
        e,
        "broken-yaml/compose.yaml:6:6: invalid YAML: while parsing a block mapping, did not find expected key\n  |\n6 |      environment:\n  |      ^"
    );
}

#[tokio::test]
async fn a_missing_variable_quotes_its_message() {
    let e = refused("missing-var").await;
    assert_eq!(
        e,
        "missing-var/compose.yaml:5:18: required variable API_TOKEN is missing a value: set API_TOKEN before deploying\n  |\n5 |       API_TOKEN: ${API_TOKEN:?set API_TOKEN before deploying}\n  |                  ^"
    );
}

#[tokio::test]
async fn a_build_context_is_refused() {
    let e = refused("build-context").await;
    assert!(
        e.starts_with("build-context/compose.yaml:3:12: services.app.build: build: without image: cannot work: TrueNAS cannot build images"),
        "{e}"
    );
}

#[tokio::test]
async fn relative_binds_without_a_dataset_root_are_refused() {
    let e = refused("inventory").await;
    assert_eq!(e.lines().count(), 2, "{e}");
    assert!(e.contains("inventory/docker-compose.yml:24:9: services.db.volumes[0]: \"./data/postgres\" is relative"), "{e}");
    assert!(
        e.contains("deleted with the app; pass --dataset-root"),
        "{e}"
    );
}

#[test]
fn overrides_merge_and_the_size_limit_is_enforced() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "services:\n  web:\n    image: nginx:1\n    environment: [A=1]\n    ports: [\"80:80\"]\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("prod.yaml"),
        "services:\n  web:\n    image: nginx:2\n    environment:\n      B: ${B:-2}\n    ports: [\"443:443\"]\n",
    )
    .unwrap();
    let base = Options {
        files: vec![
            dir.path().join("compose.yaml"),
            dir.path().join("prod.yaml"),
        ],
        name: Some("web".into()),
        environment: Some(BTreeMap::new()),
        ..Options::default()
    };
    let p = compose::resolve(&base).unwrap();
    assert_eq!(
        p.document,
        json!({"services": {"web": {"image": "nginx:2", "environment": {"A": "1", "B": "2"}, "ports": ["80:80", "443:443"]}}})
    );
    let big = format!(
        "services:\n  web:\n    image: nginx:1\n    environment:\n      BLOB: \"{}\"\n",
        "x".repeat(70_000)
    );
    std::fs::write(dir.path().join("compose.yaml"), big).unwrap();
    let e = compose::resolve(&Options {
        files: vec![dir.path().join("compose.yaml")],
        ..base
    })
    .unwrap_err();
    assert!(matches!(e, ComposeError::TooLarge { .. }), "{e}");
}

#[tokio::test]
async fn the_mock_filesystem_behaves_like_the_middleware() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let errno_of = |e: midscript::client::Error| {
        let s = e.server().expect("a server error").clone();
        (s.errno, s.reason.unwrap_or_default())
    };
    let st = client
        .call("filesystem.stat", vec![json!("/mnt/tank")])
        .await
        .unwrap();
    assert_eq!(st["type"], "DIRECTORY");
    assert_eq!(st["is_mountpoint"], true);
    let e = client
        .call("filesystem.stat", vec![json!("/mnt/tank/nope")])
        .await
        .unwrap_err();
    assert_eq!(
        errno_of(e),
        (Some(2), "[ENOENT] Path /mnt/tank/nope not found".into())
    );
    let made = client
        .call(
            "filesystem.mkdir",
            vec![json!({"path": "/mnt/tank/a", "options": {"mode": "700"}})],
        )
        .await
        .unwrap();
    assert_eq!(made["name"], "a");
    assert_eq!(made["mode"], 0o40700);
    for (path, errno, reason) in [
        (
            "/mnt/tank/a",
            17,
            "[EEXIST] /mnt/tank/a: path already exists.",
        ),
        (
            "/mnt/tank/x/y",
            2,
            "[ENOENT] [Errno 2] No such file or directory: '/mnt/tank/x/y'",
        ),
        ("/etc/x", 1, "[EPERM] /etc/x: path not permitted"),
        ("rel", 22, "[EINVAL] rel: not an absolute path."),
    ] {
        let e = client
            .call("filesystem.mkdir", vec![json!({"path": path})])
            .await
            .unwrap_err();
        assert_eq!(errno_of(e), (Some(errno), reason.to_owned()), "{path}");
    }
    // The argument schema comes from the catalog.
    let e = client
        .call(
            "filesystem.mkdir",
            vec![json!({"path": "/mnt/tank/b", "bogus": 1})],
        )
        .await
        .unwrap_err();
    assert!(e.server().is_some_and(|s| s.is_validation), "{e}");
    client.close().await;
}

/// 24.10 (legacy `/websocket` dialect, DDP jobs and events): the same pipeline reaches RUNNING,
/// creates the bind-mount folders, and a second deploy sends nothing.
#[tokio::test]
async fn deploys_on_24_10_and_a_second_up_sends_nothing() {
    let server = mock(|c| c.version = midscript::mock::ServerVersion::V24_10).await;
    let client = in_process::connect_to(
        server.legacy_url(),
        &server,
        Some(in_process::password(&server)),
    )
    .await
    .expect("legacy login");
    let p = compose::resolve(&inventory_options()).unwrap();
    let first = deploy(
        &client,
        &p,
        &DeployOptions {
            create_dirs: true,
            ..fast()
        },
    )
    .await;
    assert_eq!(first.action, Action::Created);
    assert_eq!(first.state.as_deref(), Some("RUNNING"));
    assert!(!first.dirs_created.is_empty(), "{first:?}");
    assert_eq!(
        first.entry.as_ref().and_then(|e| e["state"].as_str()),
        Some("RUNNING")
    );
    server.clear_transcript();
    let second = deploy(&client, &p, &fast()).await;
    assert_eq!(second.action, Action::Unchanged);
    assert_eq!(second.state.as_deref(), Some("RUNNING"));
    assert!(second.jobs.is_empty());
    let sent = calls(
        &server,
        &["app.create", "app.update", "app.start", "filesystem.mkdir"],
    );
    assert!(sent.is_empty(), "the second deploy sent:\n{sent}");
    let t = server.transcript().to_string();
    assert!(
        t.contains(r#""msg":"method""#),
        "not the legacy dialect:\n{t}"
    );
    client.close().await;
}

fn corpus(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/compose-corpus")
        .join(name)
}

fn corpus_options(name: &str, env: &[(&str, &str)]) -> Options {
    Options {
        project_dir: Some(corpus(name)),
        environment: Some(
            env.iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        dataset_root: Some("/mnt/tank/apps".into()),
        ..Options::default()
    }
}

#[test]
fn the_app_name_comes_from_compose_project_name_then_name_then_the_folder() {
    // COMPOSE_PROJECT_NAME in .env, for resolve and for the commands that only need the name.
    let o = corpus_options("defect-06-compose-vars", &[]);
    assert_eq!(compose::project_name(&o).unwrap().1, "myproj");
    let p = compose::resolve(&o).unwrap();
    assert_eq!(p.name, "myproj");
    assert_eq!(
        p.files
            .iter()
            .map(|f| f.file_name().unwrap().to_str().unwrap())
            .collect::<Vec<_>>(),
        ["base.yaml", "extra.yaml"]
    );
    assert_eq!(
        p.document["services"]["app"]["image"],
        "registry.local/ix-myproj:1"
    );
    assert!(p.document["services"].get("ops").is_none());
    assert!(p.document["services"]["debug"].get("profiles").is_none());
    // The environment wins over .env, --name over both.
    let o = corpus_options(
        "defect-06-compose-vars",
        &[("COMPOSE_PROJECT_NAME", "fromenv")],
    );
    assert_eq!(compose::project_name(&o).unwrap().1, "fromenv");
    let o = Options {
        name: Some("given".into()),
        ..o
    };
    assert_eq!(compose::project_name(&o).unwrap().1, "given");
    // An invalid name says where it came from.
    let o = corpus_options(
        "defect-06-compose-vars",
        &[("COMPOSE_PROJECT_NAME", "My_Stack")],
    );
    let e = compose::project_name(&o).unwrap_err().to_string();
    assert!(
        e.contains("\"My_Stack\"") && e.contains("it comes from COMPOSE_PROJECT_NAME"),
        "{e}"
    );
    // The top-level name: of the compose file.
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("compose.yaml"),
        "name: stack\nservices:\n  a:\n    image: i\n",
    )
    .unwrap();
    let o = Options {
        project_dir: Some(dir.path().to_path_buf()),
        environment: Some(BTreeMap::new()),
        ..Options::default()
    };
    assert_eq!(compose::project_name(&o).unwrap().1, "stack");
}

#[test]
fn what_compose_would_reject_is_refused_with_its_place() {
    let e = compose::resolve(&corpus_options("defect-10-depends-on", &[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("defect-10-depends-on/compose.yaml:4:18: services.web.depends_on[0]: depends on service \"databse\", which is not defined")
            && e.contains("did you mean \"database\"?"),
        "{e}"
    );
    let e = compose::resolve(&corpus_options("defect-10-volume", &[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("compose.yaml:5:9: services.db.volumes[0]: volume \"pgdata\""),
        "{e}"
    );
    let e = compose::resolve(&corpus_options("defect-10-key", &[]))
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("compose.yaml:4:14: services.web.restrat:"),
        "{e}"
    );
}

#[test]
fn an_environment_secret_becomes_a_value_file_and_its_value_stays_out_of_the_output() {
    let o = corpus_options(
        "defect-04-env-secret",
        &[("API_TOKEN", "t0k3n"), ("BANNER", "hi")],
    );
    let p = compose::resolve(&o).unwrap();
    assert_eq!(
        p.document["secrets"]["api_token"],
        json!({"file": "/mnt/tank/apps/defect-04-env-secret/.secrets/api_token"})
    );
    let m = p
        .mounts
        .iter()
        .find(|m| m.owner == "secrets.api_token")
        .unwrap();
    assert_eq!(m.kind, compose::MountKind::Value);
    assert_eq!(m.content.as_deref(), Some("t0k3n"));
    assert!(!serde_json::to_string(&p).unwrap().contains("t0k3n"));
}

/// TrueNAS 27 lists an app whose metadata it cannot read in the `ERROR` state: `up` refuses to
/// touch it and names the reason, instead of diffing against a config it cannot trust.
#[tokio::test]
async fn an_app_in_the_error_state_on_27_is_refused_with_its_reason() {
    let server = mock(|c| c.version = midscript::mock::ServerVersion::V27_0).await;
    let client = connect(&server).await;
    let p = compose::resolve(&options("whoami")).unwrap();
    let first = deploy(&client, &p, &fast()).await;
    assert_eq!(first.state.as_deref(), Some("RUNNING"));
    assert!(server.set_app_metadata_error("whoami", Some("METADATA_MISSING")));
    server.clear_transcript();
    let remote = deploy::remote(&client, &p.name).await.unwrap();
    assert_eq!(remote.state(), Some("ERROR"));
    let err = deploy::up(
        &client,
        &p.name,
        &p.document,
        &remote,
        &p.uploads,
        &fast(),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(
        matches!(&err, deploy::DeployError::AppError { reason, .. } if reason == "METADATA_MISSING"),
        "{err:?}"
    );
    assert!(
        err.to_string().contains("ERROR state (METADATA_MISSING)"),
        "{err}"
    );
    let sent = calls(&server, &["app.create", "app.update", "app.start"]);
    assert!(sent.is_empty(), "sent:\n{sent}");
    client.close().await;
}

/// A copy of a fixture in a temporary folder (so a test can change its files), and the
/// project folder inside it (named like the fixture, so the app name stays the same).
fn copy_fixture(name: &str) -> (tempfile::TempDir, PathBuf) {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for e in std::fs::read_dir(from).unwrap() {
            let e = e.unwrap();
            let target = to.join(e.file_name());
            if e.file_type().unwrap().is_dir() {
                copy(&e.path(), &target);
            } else {
                std::fs::copy(e.path(), &target).unwrap();
            }
        }
    }
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    copy(&fixture(name), &dir);
    (tmp, dir)
}

fn secrets_options(dir: &std::path::Path) -> Options {
    Options {
        project_dir: Some(dir.to_path_buf()),
        environment: Some(BTreeMap::new()),
        dataset_root: Some("/mnt/tank/apps".into()),
        ..Options::default()
    }
}

const DB_PASSWORD: &str = "correct-horse-battery-staple";
const API_KEY: &str = "k3y-from-dotenv-0123";

/// Neither the secrets nor their base64 form reached the transcript.
fn assert_no_file_secrets(server: &MockServer, secrets: &[&str]) {
    use base64::Engine as _;
    let t = server.transcript().to_string();
    for s in secrets {
        let b64 = base64::engine::general_purpose::STANDARD.encode(s);
        assert!(!t.contains(s), "{s} leaked:\n{t}");
        assert!(
            !t.contains(&b64[..b64.len() - 4]),
            "{s} (base64) leaked:\n{t}"
        );
    }
}

#[tokio::test]
async fn secrets_and_configs_are_uploaded_once_and_a_changed_secret_is_a_masked_change() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let (_tmp, dir) = copy_fixture("uploads");
    let p = compose::resolve(&secrets_options(&dir)).unwrap();
    let doc = &p.document;
    let app = "/mnt/tank/apps/uploads";
    assert_eq!(
        doc["secrets"],
        json!({
            "db_password": {"file": format!("{app}/secrets/db_password.txt")},
            "api_key": {"file": format!("{app}/.secrets/api_key")},
        })
    );
    assert_eq!(
        doc["configs"]["app_config"]["file"],
        format!("{app}/config/app.toml")
    );
    let owners: Vec<(&str, bool)> = p
        .uploads
        .iter()
        .map(|u| (u.owner.as_str(), u.secret))
        .collect();
    assert_eq!(
        owners,
        [
            ("secrets.db_password", true),
            ("configs.app_config", false),
            ("secrets.api_key", true)
        ]
    );
    // What scripts and `compose config` see: the secrets' fingerprints masked.
    let shown = p.secrets.mask_document(doc).to_string();
    assert!(!shown.contains("pbkdf2"), "{shown}");
    assert!(shown.contains("sha256:"), "{shown}");

    let first = deploy(&client, &p, &fast()).await;
    assert_eq!(first.action, Action::Created);
    assert_eq!(first.missing_dirs, [format!("{app}/data")]);
    assert_eq!(
        first.uploaded,
        [
            format!("{app}/secrets/db_password.txt"),
            format!("{app}/config/app.toml"),
            format!("{app}/.secrets/api_key"),
        ]
    );
    let content = |p: &str| String::from_utf8(server.file_content(p).unwrap()).unwrap();
    assert_eq!(content(&format!("{app}/.secrets/api_key")), API_KEY);
    assert_eq!(
        content(&format!("{app}/secrets/db_password.txt")),
        format!("{DB_PASSWORD}\n")
    );
    assert_eq!(
        content(&format!("{app}/config/app.toml")),
        "[server]\nport = 8080\n"
    );
    assert_eq!(
        server.file_mode(&format!("{app}/.secrets/api_key")),
        Some(0o444)
    );
    let stored = client
        .call("app.config", vec![json!("uploads")])
        .await
        .unwrap();
    assert_eq!(
        &stored, doc,
        "the NAS runs the document with the fingerprints"
    );
    let mut s = in_process::plain_settings();
    s.add_filter(
        r"pbkdf2-sha256:\d+:[A-Za-z0-9+/=]+:[A-Za-z0-9+/=]+",
        "[salted fingerprint]",
    );
    s.bind(|| {
        insta::assert_snapshot!(
            "uploads_create",
            calls(&server, &["filesystem.file_receive", "app.create"])
        );
    });
    assert_no_file_secrets(&server, &[DB_PASSWORD, API_KEY]);

    // Nothing changed: nothing uploaded, nothing sent.
    server.clear_transcript();
    let p = compose::resolve(&secrets_options(&dir)).unwrap();
    let again = deploy(&client, &p, &fast()).await;
    assert_eq!(again.action, Action::Unchanged);
    assert!(again.uploaded.is_empty(), "{:?}", again.uploaded);
    let sent = calls(&server, &["filesystem.file_receive", "app.update"]);
    assert!(sent.is_empty(), "{sent}");

    // A changed secret file: a masked change, and only that file is uploaded.
    let new_password = "tr0ub4dor-and-3";
    std::fs::write(dir.join("secrets/db_password.txt"), new_password).unwrap();
    server.clear_transcript();
    let p = compose::resolve(&secrets_options(&dir)).unwrap();
    let plan = deploy::plan(&client, &p, false).await.unwrap();
    assert_eq!(
        plan.diff.render(),
        format!(
            "~ x-midscript.files./mnt/tank/apps/uploads/secrets/db_password.txt: \"********\" -> \"********\""
        )
    );
    let out = deploy::apply(&client, &p, &plan, &fast(), &mut |_| {})
        .await
        .unwrap();
    assert_eq!(out.action, Action::Updated);
    assert_eq!(out.uploaded, [format!("{app}/secrets/db_password.txt")]);
    assert_eq!(
        content(&format!("{app}/secrets/db_password.txt")),
        new_password
    );
    assert_no_file_secrets(&server, &[DB_PASSWORD, API_KEY, new_password]);
    client.close().await;
}

#[tokio::test]
async fn a_file_missing_on_the_nas_is_uploaded_again() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let (_tmp, dir) = copy_fixture("uploads");
    let p = compose::resolve(&secrets_options(&dir)).unwrap();
    deploy(&client, &p, &fast()).await;
    // Someone replaced the config with a longer file of the same name.
    let path = "/mnt/tank/apps/uploads/config/app.toml";
    use base64::Engine as _;
    client
        .call(
            "filesystem.file_receive",
            vec![
                json!(path),
                json!(base64::engine::general_purpose::STANDARD.encode("edited on the NAS\n")),
                json!({}),
            ],
        )
        .await
        .unwrap();
    let again = deploy(&client, &p, &fast()).await;
    assert_eq!(again.action, Action::Unchanged);
    assert_eq!(again.uploaded, [path]);
    assert_eq!(
        server.file_content(path).unwrap(),
        b"[server]\nport = 8080\n"
    );
    client.close().await;
}

#[tokio::test]
async fn create_dirs_works_for_an_unchanged_app_and_makes_directories_outside_datasets() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let p = compose::resolve(&inventory_options()).unwrap();
    // Without --create-dirs: the upload makes plain folders on its way (like os.makedirs),
    // the bind folder is reported missing.
    let first = deploy(&client, &p, &fast()).await;
    assert_eq!(first.action, Action::Created);
    assert_eq!(
        first.missing_dirs,
        ["/mnt/tank/apps/inventory/data/postgres"]
    );
    assert!(first.dirs_created.is_empty());
    // The app is unchanged, the folders are still made; /mnt/tank/apps/inventory is a plain
    // directory now, so they are directories, not datasets.
    let second = deploy(
        &client,
        &p,
        &DeployOptions {
            create_dirs: true,
            ..fast()
        },
    )
    .await;
    assert_eq!(second.action, Action::Unchanged);
    let created: Vec<(&str, Option<&str>)> = second
        .dirs_created
        .iter()
        .map(|c| (c.path.as_str(), c.dataset.as_deref()))
        .collect();
    assert_eq!(
        created,
        [
            ("/mnt/tank/apps/inventory/data", None),
            ("/mnt/tank/apps/inventory/data/postgres", None)
        ]
    );
    assert_eq!(server.datasets(), ["tank"]);
    assert!(second.missing_dirs.is_empty());
    client.close().await;
}

#[tokio::test]
async fn a_file_in_the_way_of_a_folder_is_an_error() {
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let p = compose::resolve(&inventory_options()).unwrap();
    server.add_file("/mnt/tank/apps/inventory/data");
    let plan = deploy::plan(&client, &p, false).await.unwrap();
    let o = DeployOptions {
        create_dirs: true,
        ..fast()
    };
    let e = deploy::apply(&client, &p, &plan, &o, &mut |_| {})
        .await
        .unwrap_err();
    assert_eq!(
        e.to_string(),
        "/mnt/tank/apps/inventory/data exists on the NAS but is not a directory (it is FILE)"
    );
    // The upload fails the same way on the server (os.makedirs), as a server error.
    server.add_file("/mnt/tank/apps/inventory/config");
    let e = deploy::apply(&client, &p, &plan, &fast(), &mut |_| {})
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .contains("Not a directory: '/mnt/tank/apps/inventory/config'"),
        "{e}"
    );
    let t = server.transcript().to_string();
    assert!(!t.contains("app.create"), "{t}");
    client.close().await;
}

#[tokio::test]
async fn rollback_without_an_older_document_says_so() {
    let (_state, journal, server, client, _) = journaled().await;
    let e = roll_back(&client, &journal, &server, "inventory")
        .await
        .unwrap_err();
    assert!(
        e.to_string()
            .starts_with("nothing to roll back to: the deploy journal ("),
        "{e}"
    );
    client.close().await;
}

#[test]
fn files_that_cannot_be_uploaded_are_refused_with_their_place() {
    // environment: without a dataset root, and with the variable unset.
    let (_tmp, dir) = copy_fixture("uploads");
    let e = compose::resolve(&Options {
        dataset_root: None,
        ..secrets_options(&dir)
    })
    .unwrap_err()
    .to_string();
    let place = "compose.yaml:18:18: secrets.api_key.environment: ";
    assert!(
        e.contains(place) && e.contains("API_KEY") && e.contains("pass --dataset-root"),
        "{e}"
    );
    std::fs::remove_file(dir.join(".env")).unwrap();
    let e = compose::resolve(&secrets_options(&dir))
        .unwrap_err()
        .to_string();
    assert!(e.contains(place) && e.contains("API_KEY is not set"), "{e}");
    // A secret file that does not exist here resolves (as `docker compose config` does), with
    // a warning, and nothing is uploaded for it.
    std::fs::write(dir.join(".env"), "API_KEY=x\n").unwrap();
    std::fs::remove_file(dir.join("secrets/db_password.txt")).unwrap();
    let p = compose::resolve(&secrets_options(&dir)).unwrap();
    assert!(
        p.warnings.iter().any(|w| w.contains("(secrets.db_password) does not exist here, so it is not uploaded: the app needs it at /mnt/tank/apps/uploads/secrets/db_password.txt on the NAS")),
        "{:#?}",
        p.warnings
    );
    assert!(p.uploads.iter().all(|u| u.owner != "secrets.db_password"));
    // A folder where the secret file should be is refused.
    std::fs::create_dir(dir.join("secrets/db_password.txt")).unwrap();
    let e = compose::resolve(&secrets_options(&dir)).unwrap_err();
    assert!(
        e.to_string().contains("db_password.txt") && e.to_string().contains("is not a file"),
        "{e}"
    );
    std::fs::remove_dir(dir.join("secrets/db_password.txt")).unwrap();
    // A file too big for one message.
    std::fs::write(
        dir.join("secrets/db_password.txt"),
        vec![b'x'; compose::uploads::MAX_FILE + 1],
    )
    .unwrap();
    let e = compose::resolve(&secrets_options(&dir)).unwrap_err();
    assert!(matches!(e, ComposeError::UploadTooLarge { .. }), "{e}");
    assert!(
        e.to_string().ends_with(
            "copy it to /mnt/tank/apps/uploads/secrets/db_password.txt on the NAS yourself"
        ),
        "{e}"
    );
}

#[tokio::test]
async fn the_mock_receives_files_and_creates_datasets_like_the_middleware() {
    use base64::Engine as _;
    let b64 = |s: &[u8]| base64::engine::general_purpose::STANDARD.encode(s);
    let server = mock(|_| {}).await;
    let client = connect(&server).await;
    let errno_of = |e: midscript::client::Error| {
        let s = e.server().expect("a server error").clone();
        (s.errno, s.reason.unwrap_or_default())
    };
    // Parents are made, append appends, mode applies; bigger than 64 KiB is fine.
    let big = vec![b'a'; 100_000];
    let r = client
        .call(
            "filesystem.file_receive",
            vec![
                json!("/mnt/tank/x/y/f"),
                json!(b64(&big)),
                json!({"mode": 0o600}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r, json!(true));
    client
        .call(
            "filesystem.file_receive",
            vec![
                json!("/mnt/tank/x/y/f"),
                json!(b64(b"!")),
                json!({"append": true}),
            ],
        )
        .await
        .unwrap();
    assert_eq!(
        server.file_content("/mnt/tank/x/y/f").unwrap().len(),
        100_001
    );
    assert_eq!(server.file_mode("/mnt/tank/x/y/f"), Some(0o600));
    let st = client
        .call("filesystem.stat", vec![json!("/mnt/tank/x/y/f")])
        .await
        .unwrap();
    assert_eq!(
        (st["type"].clone(), st["size"].clone()),
        (json!("FILE"), json!(100_001))
    );
    for (path, content, options, expect) in [
        (
            "/mnt/tank/x/y",
            "YQ==",
            json!({}),
            (
                Some(21),
                "[EISDIR] [Errno 21] Is a directory: '/mnt/tank/x/y'",
            ),
        ),
        (
            "/mnt/tank/x/y/f/g",
            "YQ==",
            json!({}),
            (
                Some(20),
                "[ENOTDIR] [Errno 20] Not a directory: '/mnt/tank/x/y/f'",
            ),
        ),
        (
            "/mnt/tank/z",
            "YQ=",
            json!({}),
            (Some(22), "[EINVAL] Incorrect padding"),
        ),
    ] {
        let e = client
            .call(
                "filesystem.file_receive",
                vec![json!(path), json!(content), options],
            )
            .await
            .unwrap_err();
        assert_eq!(errno_of(e), (expect.0, expect.1.to_owned()), "{path}");
    }
    let e = client
        .call(
            "filesystem.file_receive",
            vec![json!("/mnt/tank/z"), json!("YQ=="), json!({"owner": 1})],
        )
        .await
        .unwrap_err();
    assert!(e.server().is_some_and(|s| s.is_validation), "{e}");

    // Datasets.
    let made = client
        .call("pool.dataset.create", vec![json!({"name": "tank/apps"})])
        .await
        .unwrap();
    assert_eq!(made["mountpoint"], "/mnt/tank/apps");
    let found = client
        .call(
            "pool.dataset.query",
            vec![json!([["id", "=", "tank/apps"]])],
        )
        .await
        .unwrap();
    assert_eq!(found[0]["name"], "tank/apps");
    let st = client
        .call("filesystem.stat", vec![json!("/mnt/tank/apps")])
        .await
        .unwrap();
    assert_eq!(st["is_mountpoint"], true);
    for (name, reason) in [
        ("tank", "You need a full name, e.g. pool/newdataset"),
        ("tank/a*b", "Invalid dataset name"),
        (
            "tank/nope/child",
            "Parent dataset (tank/nope) does not exist.",
        ),
        ("pool2/a", "zpool (pool2) does not exist."),
        ("tank/x", "Path /mnt/tank/x already exists"),
    ] {
        let e = client
            .call("pool.dataset.create", vec![json!({"name": name})])
            .await
            .unwrap_err();
        let s = e.server().expect("a server error");
        assert!(s.is_validation, "{name}: {e}");
        assert!(e.to_string().contains(reason), "{name}: {e}");
    }
    // File contents never reach the transcript.
    let t = server.transcript().to_string();
    assert!(!t.contains(&b64(&big)[..100]), "content leaked");
    client.close().await;
}

#[tokio::test]
async fn only_a_full_admin_may_upload_files_or_create_datasets() {
    let server = mock(|c| {
        c.users.push(midscript::mock::MockUser {
            id: 2,
            username: "viewer".into(),
            password: "viewer-pw".into(),
            otp_code: None,
            full_admin: false,
            api_access: true,
        })
    })
    .await;
    let viewer = midscript::client::Credentials::Password {
        username: "viewer".into(),
        password: midscript::client::Secret::new(String::from("viewer-pw")),
        otp: None,
        otp_prompt: None,
    };
    let client = in_process::connect(&server, Some(viewer))
        .await
        .expect("login");
    for (method, params) in [
        (
            "filesystem.file_receive",
            vec![json!("/mnt/tank/f"), json!("YQ=="), json!({})],
        ),
        ("pool.dataset.create", vec![json!({"name": "tank/a"})]),
    ] {
        let e = client.call(method, params).await.unwrap_err();
        let s = e.server().expect("a server error");
        assert_eq!(
            (s.errno, s.reason.as_deref()),
            (Some(13), Some("[EACCES] Not authorized")),
            "{method}"
        );
    }
    assert!(server.file_content("/mnt/tank/f").is_none());
    client.close().await;
}

#[tokio::test]
async fn rollback_puts_back_the_files_of_the_older_document() {
    let (_state, journal, server, client, o) = journaled().await;
    let (_tmp, dir) = copy_fixture("uploads");
    let v1 = compose::resolve(&secrets_options(&dir)).unwrap();
    deploy(&client, &v1, &o).await;
    std::fs::write(dir.join("secrets/db_password.txt"), "rotated-Passw0rd").unwrap();
    let v2 = compose::resolve(&secrets_options(&dir)).unwrap();
    assert_eq!(deploy(&client, &v2, &o).await.action, Action::Updated);
    let path = "/mnt/tank/apps/uploads/secrets/db_password.txt";
    assert_eq!(server.file_content(path).unwrap(), b"rotated-Passw0rd");

    let done = roll_back(&client, &journal, &server, "uploads")
        .await
        .unwrap();
    assert_eq!(done.outcome.action, Action::Updated);
    assert_eq!(done.outcome.uploaded, [path]);
    assert_eq!(
        server.file_content(path).unwrap(),
        format!("{DB_PASSWORD}\n").as_bytes()
    );
    let running = client
        .call("app.config", vec![json!("uploads")])
        .await
        .unwrap();
    assert_eq!(running, done.entry.document);
    assert_eq!(done.entry.files.len(), 3);
    // The rolled-back state is what the local files say again: `up` would change nothing.
    std::fs::write(
        dir.join("secrets/db_password.txt"),
        format!("{DB_PASSWORD}\n"),
    )
    .unwrap();
    let v1_again = compose::resolve(&secrets_options(&dir)).unwrap();
    let plan = deploy::plan(&client, &v1_again, false).await.unwrap();
    assert!(plan.unchanged(), "{}", plan.diff.render());
    assert_no_file_secrets(&server, &[DB_PASSWORD, "rotated-Passw0rd"]);
    client.close().await;
}

/// Every imitated release takes the uploads and the datasets the same way (24.10 over the
/// legacy `/websocket` dialect), and a second deploy uploads nothing.
#[tokio::test]
async fn uploads_and_datasets_work_on_every_release() {
    for version in midscript::mock::ServerVersion::ALL {
        let server = mock(|c| c.version = version).await;
        let url = if version == midscript::mock::ServerVersion::V24_10 {
            server.legacy_url()
        } else {
            server.url()
        };
        let client = in_process::connect_to(url, &server, Some(in_process::password(&server)))
            .await
            .expect("login");
        let (_tmp, dir) = copy_fixture("uploads");
        let p = compose::resolve(&secrets_options(&dir)).unwrap();
        let dirs = DeployOptions {
            create_dirs: true,
            ..fast()
        };
        let first = deploy(&client, &p, &dirs).await;
        assert_eq!(first.action, Action::Created, "{version}");
        assert_eq!(first.uploaded.len(), 3, "{version}");
        assert_eq!(
            server.datasets(),
            [
                "tank",
                "tank/apps",
                "tank/apps/uploads",
                "tank/apps/uploads/.secrets",
                "tank/apps/uploads/config",
                "tank/apps/uploads/data",
                "tank/apps/uploads/secrets"
            ],
            "{version}"
        );
        assert_eq!(
            server
                .file_content("/mnt/tank/apps/uploads/.secrets/api_key")
                .unwrap(),
            API_KEY.as_bytes(),
            "{version}"
        );
        let again = deploy(&client, &p, &dirs).await;
        assert_eq!(again.action, Action::Unchanged, "{version}");
        assert!(
            again.uploaded.is_empty() && again.dirs_created.is_empty(),
            "{version}"
        );
        assert_no_file_secrets(&server, &[DB_PASSWORD, API_KEY]);
        client.close().await;
    }
}
