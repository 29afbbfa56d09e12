//! `call`, `job`, `ping` and `subscribe`: one-off commands, midclt-compatible.

use std::io::Read;

use serde_json::Value;

use super::{CliError, ConnArgs, Exit};
use crate::catalog::{event_known, suggestions};
use crate::client::Error;
use crate::output::{self, Format, ProgressPrinter, ProgressStyle};

/// midclt's rule: each argument is JSON when it parses, else a plain string. A single `-` reads
/// one JSON array of arguments from stdin, so secrets stay out of the process list.
pub fn parse_args(
    args: &[String],
    stdin: impl FnOnce() -> std::io::Result<String>,
) -> Result<Vec<Value>, CliError> {
    if args.len() == 1 && args[0] == "-" {
        let text = stdin().map_err(|e| usage(format!("reading arguments from stdin: {e}")))?;
        return match serde_json::from_str::<Value>(&text) {
            Ok(Value::Array(items)) => Ok(items),
            Ok(_) => Err(usage(
                "stdin must hold one JSON array of arguments, e.g. [1, {\"password\": \"…\"}]"
                    .into(),
            )),
            Err(e) => Err(usage(format!("stdin is not valid JSON: {e}"))),
        };
    }
    Ok(args
        .iter()
        .map(|a| serde_json::from_str(a).unwrap_or_else(|_| Value::String(a.clone())))
        .collect())
}

fn usage(reason: String) -> CliError {
    CliError::Usage(reason)
}

fn read_stdin() -> std::io::Result<String> {
    let mut s = String::new();
    std::io::stdin().read_to_string(&mut s)?;
    Ok(s)
}

/// `midscript call METHOD ARGS…` (and `job`).
pub async fn call(
    conn: &ConnArgs,
    method: &str,
    args: &[String],
    job: bool,
    progress: ProgressStyle,
    format: Format,
    raw: bool,
) -> Result<Exit, CliError> {
    let params = parse_args(args, read_stdin)?;
    let session = conn.connect().await?;
    session.scoped(async |session| {
    let client = &session.client;
    let result = if job {
        let mut printer = ProgressPrinter::new(progress);
        let handle = client.start_job(method, params).await?;
        printer.started(handle.id, method);
        let outcome = tokio::select! {
            r = handle.wait(|p| printer.update(p)) => r,
            _ = tokio::signal::ctrl_c() => {
                printer.finish();
                output::warn(&format!("midscript: interrupted; aborting job {}", handle.id));
                let _ = handle.abort().await;
                return Err(Error::Cancelled.into());
            }
        };
        printer.finish();
        outcome?
    } else if output::prints_json_text(format) {
        // Printed as it came: a big result is never parsed (nor held twice).
        let text = hinted(session, method, client.call_text(method, params).await).await?;
        output::emit_json_text(&text, format, raw);
        return Ok(Exit::Ok);
    } else {
        hinted(session, method, client.call(method, params).await).await?
    };
    output::emit_value(&result, format, raw);
    Ok(Exit::Ok)
    }).await
}

/// `result`, its error with "did you mean" (from the session's catalog) when the server does
/// not know `method`.
async fn hinted<T>(
    session: &super::Session,
    method: &str,
    result: Result<T, Error>,
) -> Result<T, CliError> {
    match result {
        Err(error) if is_missing_method(&error) => {
            let catalog = super::methods::session_catalog(session).await;
            let near = suggestions(catalog.catalog(), method);
            if near.is_empty() {
                return Err(error.into());
            }
            Err(CliError::Hinted {
                error,
                hint: format!("did you mean: {}?", near.join(", ")),
            })
        }
        other => Ok(other?),
    }
}

/// Is `error` the server's "method does not exist" (-32601, or ENOMETHOD on 24.10)?
fn is_missing_method(error: &Error) -> bool {
    error
        .server()
        .is_some_and(|s| s.code == Some(crate::protocol::codes::METHOD_NOT_FOUND))
}

/// `midscript job --attach ID`: wait for a job started earlier and print its result, as
/// `call -j` would have. Ctrl-C stops waiting; the job runs on.
pub async fn attach(
    conn: &ConnArgs,
    id: i64,
    progress: ProgressStyle,
    format: Format,
    raw: bool,
) -> Result<Exit, CliError> {
    let session = conn.connect().await?;
    session
        .scoped(async |session| {
            let client = &session.client;
            let filters = serde_json::json!([["id", "=", id]]);
            let found = client.call("core.get_jobs", vec![filters]).await?;
            let Some(method) = found
                .as_array()
                .and_then(|jobs| jobs.first())
                .and_then(|job| job.get("method"))
                .and_then(Value::as_str)
                .map(str::to_owned)
            else {
                return Err(CliError::Refused(format!(
                    "job --attach {id}: the server has no job {id} (it keeps about the last 1000 jobs, and none across a reboot)"
                )));
            };
            let handle = client.attach_job(id, &method).await?;
            let mut printer = ProgressPrinter::new(progress);
            printer.attached(id, &method);
            let outcome = tokio::select! {
                r = handle.wait(|p| printer.update(p)) => r,
                _ = tokio::signal::ctrl_c() => {
                    printer.finish();
                    output::warn(&format!("midscript: interrupted; job {id} ({method}) runs on"));
                    return Err(Error::Cancelled.into());
                }
            };
            printer.finish();
            output::emit_value(&outcome?, format, raw);
            Ok(Exit::Ok)
        })
        .await
}

/// `midscript ping`: prints `pong`, exit 0; anything else is an error.
pub async fn ping(conn: &ConnArgs) -> Result<Exit, CliError> {
    let session = conn.connect().await?;
    let reply = session
        .scoped(async |s| Ok(s.client.call("core.ping", vec![]).await?))
        .await?;
    match reply.as_str() {
        Some("pong") => {
            output::emit_line("pong");
            Ok(Exit::Ok)
        }
        _ => Err(Error::Protocol(format!("core.ping answered {reply} instead of \"pong\"")).into()),
    }
}

/// `midscript subscribe EVENT`: one JSON line per event, as the server sent it.
pub async fn subscribe(
    conn: &ConnArgs,
    event: &str,
    count: Option<u64>,
    timeout: Option<f64>,
) -> Result<Exit, CliError> {
    let session = conn.connect().await?;
    session
        .scoped(async |session| {
            let catalog = super::methods::local_catalog(session);
            if !event_known(catalog.catalog(), event) {
                let base = event.split(':').next().unwrap_or(event);
                let near = suggestions(catalog.catalog(), base);
                let hint = if near.is_empty() {
                    String::new()
                } else {
                    format!(" (did you mean: {}?)", near.join(", "))
                };
                output::warn(&format!(
                    "midscript: warning: the catalog knows no event {base}{hint}; subscribed anyway, \
                     but events may never come"
                ));
            }
            let mut sub = session.client.subscribe(event).await?;
            let mut seen = 0;
            let wait = timeout.map(super::seconds::duration);
            while count.is_none_or(|n| seen < n) {
                let next = match wait {
                    Some(d) => match tokio::time::timeout(d, sub.recv()).await {
                        Ok(n) => n,
                        Err(_) => {
                            output::warn(&format!(
                                "midscript: no event on {event} within {}s",
                                d.as_secs_f64()
                            ));
                            return Ok(Exit::MethodError);
                        }
                    },
                    None => tokio::select! {
                        n = sub.recv() => n,
                        _ = tokio::signal::ctrl_c() => return Err(Error::Cancelled.into()),
                    },
                };
                match next {
                    Some(Ok(ev)) => {
                        output::emit_line(&serde_json::to_string(&ev).unwrap_or_default());
                        seen += 1;
                    }
                    Some(Err(e)) => return Err(e.into()),
                    None => break,
                }
            }
            let _ = sub.unsubscribe().await;
            Ok(Exit::Ok)
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn args_follow_midclt() {
        let args: Vec<String> = [
            "1",
            "\"x\"",
            "true",
            "{\"a\":1}",
            "[[\"name\",\"=\",\"x\"]]",
            "plain",
            "null",
        ]
        .map(String::from)
        .to_vec();
        let parsed = parse_args(&args, || unreachable!()).unwrap();
        assert_eq!(
            parsed,
            vec![
                json!(1),
                json!("x"),
                json!(true),
                json!({"a": 1}),
                json!([["name", "=", "x"]]),
                json!("plain"),
                Value::Null
            ]
        );
    }

    #[test]
    fn stdin_args_are_one_json_array() {
        let dash = vec!["-".to_owned()];
        assert_eq!(
            parse_args(&dash, || Ok("[1, {\"password\": \"s\"}]".into())).unwrap(),
            vec![json!(1), json!({"password": "s"})]
        );
        let err = parse_args(&dash, || Ok("{\"a\": 1}".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("one JSON array"), "{err}");
        let err = parse_args(&dash, || Ok("[1,".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("not valid JSON"), "{err}");
    }
}
