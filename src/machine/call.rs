//! The `call` action: one method, or a job waited for.
//!
//! `changed` is what the caller says (`params.changed`), else false for methods that only read
//! (`*.query`, `*.get_instance`, `*.config`, `core.*`, `system.info`, …) and true otherwise. In
//! check mode a method that reads is called; any other is not (`changed` tells that it would
//! have been).

use serde::Deserialize;
use serde_json::{Value, json};

use super::{Request, Response};
use crate::client::Client;

/// The parameters of `call`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallParams {
    /// The method, e.g. `pool.dataset.create`.
    pub method: String,
    /// Its positional arguments.
    #[serde(default)]
    pub args: Vec<Value>,
    /// The method starts a job: wait for it and return its result.
    #[serde(default)]
    pub job: bool,
    /// Whether the call changes something; default: false for methods that only read.
    pub changed: Option<bool>,
}

/// Method name endings (after the last dot) of methods that only read.
const READ_ONLY_SUFFIXES: &[&str] = &[
    "query",
    "get_instance",
    "config",
    "info",
    "ping",
    "get_methods",
    "choices",
    "status",
];

/// Does `method` only read (by its name)?
pub fn reads_only(method: &str) -> bool {
    if method.starts_with("core.") && !method.starts_with("core.job_") {
        return true;
    }
    let last = method.rsplit('.').next().unwrap_or(method);
    READ_ONLY_SUFFIXES.contains(&last) || last.ends_with("_choices")
}

/// Run the action.
pub async fn run(client: &Client, request: &Request, p: &CallParams) -> Response {
    let changes = p.changed.unwrap_or_else(|| !reads_only(&p.method));
    if request.check_mode && changes {
        return Response {
            changed: true,
            msg: format!("check mode: {} was not called", p.method),
            data: json!({"method": p.method, "called": false})
                .as_object()
                .cloned()
                .unwrap_or_default(),
            ..Response::default()
        };
    }
    let result = if p.job {
        match client.start_job(&p.method, p.args.clone()).await {
            Ok(handle) => {
                let id = handle.id;
                handle.wait(|_| {}).await.map(|r| (r, Some(id)))
            }
            Err(e) => Err(e),
        }
    } else {
        client
            .call(&p.method, p.args.clone())
            .await
            .map(|r| (r, None))
    };
    match result {
        Ok((value, job_id)) => {
            let mut data = json!({"method": p.method, "called": true, "result": value});
            if let Some(id) = job_id {
                data["job_id"] = json!(id);
            }
            Response {
                changed: changes,
                msg: format!("{} returned", p.method),
                data: data.as_object().cloned().unwrap_or_default(),
                ..Response::default()
            }
        }
        Err(e) => {
            let mut r = Response::client_failure(&p.method, &e);
            r.data.insert("method".into(), json!(p.method));
            if let Some(s) = e.server() {
                r.data.insert("errname".into(), json!(s.errname));
                r.data.insert("errno".into(), json!(s.errno));
            }
            r
        }
    }
}
