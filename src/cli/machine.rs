//! `midscript machine`: the machine interface ([`crate::machine`]) on stdin and stdout. One
//! JSON request in, one JSON result out, always (a request that cannot be read gets a result
//! with `failed: true` too). Exit status: 0 when the action succeeded, 1 when it failed, 2 when
//! the request was not valid. Never asks anything: there is no terminal behind it.

use std::io::Read as _;
use std::path::PathBuf;
use std::sync::Arc;

use super::prompt::NoTerminal;
use super::{CliError, ConnArgs, Exit, Settings};
use crate::machine::{self, Connection, Request, Response};
use crate::output;

/// The most a request may hold (it carries parameters, not files).
const MAX_REQUEST: u64 = 16 << 20;

/// The command line's connection options for the request's settings.
fn conn_args(c: &Connection) -> ConnArgs {
    ConnArgs {
        settings: Settings {
            url: c.url.clone(),
            host: c.host.clone(),
            mock: c.mock,
            username: c.username.clone(),
            password: c.password.clone(),
            api_key: c.api_key.clone(),
            api_key_file: c.api_key_file.as_ref().map(PathBuf::from),
            fingerprint: c.fingerprint.clone(),
            insecure: c.insecure,
            profile: c.profile.clone(),
            timeout: c.timeout,
            ..Settings::default()
        },
        ..ConnArgs::default()
    }
}

fn print(response: &Response) {
    output::emit_line(&response.to_json().to_string());
}

/// Read the request from stdin, run it, print the result.
pub async fn run() -> Exit {
    let mut text = String::new();
    if let Err(e) = std::io::stdin()
        .take(MAX_REQUEST + 1)
        .read_to_string(&mut text)
    {
        print(&Response::failure(format!(
            "cannot read the request from stdin: {e}"
        )));
        return Exit::Usage;
    }
    if text.len() as u64 > MAX_REQUEST {
        print(&Response::failure(format!(
            "the request is larger than {} MiB: it carries parameters, not files",
            MAX_REQUEST >> 20
        )));
        return Exit::Usage;
    }
    let (request, action) = match Request::parse(&text).and_then(|r| {
        let a = r.validate()?;
        Ok((r, a))
    }) {
        Ok(ra) => ra,
        Err(e) => {
            // The text may hold a secret: the message names fields and positions, and no string
            // value but an unknown `action` or `state` word.
            print(&Response::failure(e.to_string()));
            return Exit::Usage;
        }
    };
    let secrets = request.connection.secrets();
    let conn = conn_args(&request.connection);
    let opened = machine::retry_rate_limited(
        machine::RATE_LIMIT_PATIENCE,
        machine::RATE_LIMIT_PAUSE,
        async || conn.connect_with(Arc::new(NoTerminal)).await,
        |e| matches!(e, CliError::Client(c) if machine::is_rate_limited(c)),
    )
    .await;
    let mut response = match opened {
        Ok(session) => session
            .scoped(async |s| {
                Ok::<_, CliError>(machine::execute(&s.client, &request, &action).await)
            })
            .await
            .unwrap_or_else(|e| Response::failure(e.describe(false))),
        Err(e) => Response::failure(format!("cannot connect: {}", e.describe(false))),
    };
    response.scrub(&secrets);
    print(&response);
    if response.failed {
        Exit::MethodError
    } else {
        Exit::Ok
    }
}
