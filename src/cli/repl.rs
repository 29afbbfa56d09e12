//! `midscript repl` (and `midscript` alone on a terminal): connect, load the server's method
//! catalog (cached per version; the bundled one with `--mock` or when the server won't say),
//! and run [`crate::repl`] on a thread of its own.

use std::process::ExitCode;
use std::sync::Arc;

use tokio::runtime::Handle;

use super::methods;
use super::{CliError, ConnArgs, Session, Settings};
use crate::catalog::Source;
use crate::output;
use crate::repl::{self, Connected, Connector, MethodCatalog, ReplOptions};

/// The history file: `$XDG_STATE_HOME/midscript/history`.
fn history_path() -> Option<std::path::PathBuf> {
    crate::dirs::Dirs::from_env().history()
}

/// The catalog for a connected session, and a banner label.
async fn catalog_for(args: &ConnArgs, session: &Session) -> (MethodCatalog, String) {
    let url = session.client.url().to_owned();
    if args.settings.mock {
        // The mock plays a release (25.10 by default) but serves the 25.04 catalog for all.
        let version = session
            .client
            .call("system.info", vec![])
            .await
            .ok()
            .and_then(|i| i.get("version").and_then(|v| v.as_str()).map(str::to_owned))
            .unwrap_or_else(|| "unknown".into());
        return (
            MethodCatalog::Bundled,
            format!(
                "the built-in mock at {url}, playing TrueNAS {version} (catalog: {}, which the mock serves for every version it plays)",
                Source::Bundled
            ),
        );
    }
    match methods::fetch(&session.client).await {
        Ok((catalog, source)) => (
            MethodCatalog::Server(Arc::new(catalog)),
            format!("{url} (catalog: {source})"),
        ),
        Err(e) => {
            output::warn(&format!(
                "midscript: note: cannot read the server's catalog ({}); completion and .doc use {}",
                e.describe(false),
                Source::Bundled
            ));
            (
                MethodCatalog::Bundled,
                format!("{url} (catalog: {})", Source::Bundled),
            )
        }
    }
}

/// Opens `.connect PROFILE` sessions and keeps the current one.
struct ProfileConnector {
    base: ConnArgs,
    session: Option<Session>,
}

impl Connector for ProfileConnector {
    fn connect(&mut self, rt: &Handle, profile: &str) -> Result<Connected, String> {
        let args = ConnArgs {
            settings: Settings {
                profile: Some(profile.to_owned()),
                timeout: self.base.settings.timeout,
                trace: self.base.settings.trace.clone(),
                no_reconnect: self.base.settings.no_reconnect,
                no_channel_binding: self.base.settings.no_channel_binding,
                send_key_unverified: self.base.settings.send_key_unverified,
                ..Settings::default()
            },
            verbose: self.base.verbose,
        };
        let (session, catalog, label) = rt
            .block_on(async {
                let resolved = args.resolve()?;
                let session = resolved.connect_resolved().await?;
                let (catalog, label) = catalog_for(&resolved, &session).await;
                Ok::<_, CliError>((session, catalog, label))
            })
            .map_err(|e| e.describe(self.base.verbose))?;
        let client = session.client.clone();
        if let Some(old) = self.session.replace(session) {
            rt.block_on(old.finish());
        }
        Ok(Connected {
            client,
            catalog,
            label: format!("profile {profile}: {label}"),
        })
    }

    fn finish(&mut self, rt: &Handle) {
        if let Some(s) = self.session.take() {
            rt.block_on(s.finish());
        }
    }
}

/// `midscript repl`: the REPL's exit status (`exit(n)` in it ends with `n`).
pub async fn repl(conn: &ConnArgs) -> Result<ExitCode, CliError> {
    let status = start(conn).await?;
    Ok(ExitCode::from(u8::try_from(status).unwrap_or(1)))
}

/// Connect, then run the REPL on its own thread until it ends.
async fn start(conn: &ConnArgs) -> Result<i32, CliError> {
    let args = conn.resolve()?;
    if !args.names_a_server() {
        return Err(CliError::Usage(
            "no server given: pass --host HOST, --url URL, --profile NAME (or set MIDSCRIPT_URL), \
             or --mock to try the REPL on the built-in mock"
                .into(),
        ));
    }
    let session = args.connect_resolved().await?;
    let (catalog, label) = catalog_for(&args, &session).await;
    let first = Connected {
        client: session.client.clone(),
        catalog,
        label,
    };
    let connector = Box::new(ProfileConnector {
        base: args.clone(),
        session: Some(session),
    });
    let options = ReplOptions {
        verbose: args.verbose,
        history: history_path(),
    };
    let rt = Handle::current();
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("midscript-repl".into())
        .spawn(move || {
            let status = repl::run(rt, first, connector, options);
            let _ = tx.send(status);
        })
        .map_err(|e| CliError::Startup(format!("cannot start the REPL thread: {e}")))?;
    Ok(rx.await.unwrap_or(1))
}
