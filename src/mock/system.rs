//! `core.*` housekeeping, `system.info`, `user.query` / `user.update` and `alert.list`.

use serde_json::{Map, Value, json};

use super::ServerVersion;
use super::dispatch::{Access, Ctx, MethodDef, args, handler};
use super::error::MockError;
use super::query;
use super::state::lock;
use crate::catalog::Catalog;
use crate::protocol::{CollectionUpdate, EventKind, errno};

pub(crate) fn methods() -> Vec<MethodDef> {
    vec![
        MethodDef::call("core.ping", handler!(ping)).access(Access::AnonymousFrom25_10),
        MethodDef::call("core.get_methods", handler!(get_methods))
            .access(Access::AnonymousUntil25_04),
        MethodDef::call("core.set_options", handler!(set_options))
            .access(Access::Anonymous)
            .not_rate_limited()
            .since(ServerVersion::V25_04),
        // Removed in 25.04 (`docs/middleware.md` §5.5).
        MethodDef::call("core.get_events", handler!(get_events)).until(ServerVersion::V24_10),
        MethodDef::call("system.info", handler!(system_info)),
        MethodDef::call("user.query", handler!(user_query)).filterable(),
        MethodDef::call("user.update", handler!(user_update)),
        MethodDef::call("alert.list", handler!(alert_list)),
    ]
}

/// `core.ping` → "pong".
async fn ping(_ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 0)?;
    Ok("pong".into())
}

/// `core.get_methods [service=null, target="WS"]` (`docs/middleware.md` §6.1): the bundled catalog's
/// full 25.04 entries keyed by name, filtered by auth (anonymous connections see only no-auth
/// methods) and by `service`. `target` is accepted and ignored. The same 25.04 dump is served
/// for every imitated version, less the methods of the mock's table that the version lacks.
async fn get_methods(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let service = match p.first() {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(MockError::invalid(
                Some("service"),
                "Input should be a valid string",
                errno::EINVAL,
            ));
        }
    };
    let anonymous = !ctx.conn.logged_in();
    let table = super::dispatch::table();
    let version = ctx.version();
    let out: Map<String, Value> = Catalog::bundled()
        .iter()
        .filter(|m| !anonymous || m.no_auth_required)
        // Not what this release lacks (e.g. `auth.login_ex` on 24.10).
        .filter(|m| {
            table
                .get(m.name.as_str())
                .is_none_or(|d| d.available(version))
        })
        .filter(|m| {
            service
                .as_deref()
                .is_none_or(|svc| m.name.rsplit_once('.').map(|(s, _)| s) == Some(svc))
        })
        .map(|m| (m.name.clone(), m.to_value()))
        .collect();
    Ok(Value::Object(out))
}

/// `core.set_options [options]`: 25.04 knows only `py_exceptions` and returns null; 25.10+
/// also `legacy_jobs` and `private_methods` and returns the options (§4.2). Unknown keys are
/// ignored.
async fn set_options(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 1)?;
    let opts = args::object(&p, 0, "options")?;
    let v = ctx.version();
    let mut o = lock(&ctx.conn.options);
    if let Some(b) = opts.get("py_exceptions").and_then(Value::as_bool) {
        o.py_exceptions = b;
    }
    if v == ServerVersion::V25_04 {
        return Ok(Value::Null);
    }
    if let Some(b) = opts.get("legacy_jobs").and_then(Value::as_bool) {
        o.legacy_jobs = b;
    }
    if let Some(b) = opts.get("private_methods").and_then(Value::as_bool) {
        o.private_methods = b;
    }
    Ok(json!({
        "legacy_jobs": o.legacy_jobs,
        "private_methods": o.private_methods,
        "py_exceptions": o.py_exceptions,
    }))
}

/// `core.get_events` (24.10 only, §5.5) → `{name: {description, wildcard_subscription,
/// accepts, returns}}` for the events and event sources the mock emits.
async fn get_events(_ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 0)?;
    let event = |description: &str, wildcard: bool| json!({"description": description, "wildcard_subscription": wildcard, "accepts": [], "returns": []});
    Ok(json!({
        "core.get_jobs": event("Updates on job changes.", true),
        "alert.list": event("Sent on alert changes.", true),
        "app.query": event("Sent on app changes.", true),
        "user.query": event("Sent on user changes.", true),
        "app.container_log_follow": event("Retrieve logs of a container/service in an app.", false),
        "app.stats": event("Retrieve statistics of apps.", false),
        "reporting.realtime": event("Retrieve real time statistics for CPU, network, virtual memory and zfs arc.", false),
    }))
}

/// `system.info`, shaped like the catalog's return schema (datetimes as `$date`).
async fn system_info(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 0)?;
    let s = &ctx.shared;
    let uptime = if s.config.deterministic {
        3600.0
    } else {
        s.started.elapsed().as_secs_f64()
    };
    let secs = uptime as u64;
    let now = s.ids.now_ms();
    Ok(json!({
        "version": s.config.version.release(),
        "buildtime": {"$date": 1_730_000_000_000_i64},
        "hostname": s.config.hostname,
        "physmem": 17_179_869_184_u64,
        "model": "AMD Ryzen 5 5600G with Radeon Graphics",
        "cores": 12,
        "physical_cores": 6,
        "loadavg": [0.12, 0.08, 0.05],
        "uptime": format!("{}:{:02}:{:02}", secs / 3600, secs / 60 % 60, secs % 60),
        "uptime_seconds": uptime,
        "system_serial": "MOCK0001",
        "system_product": "midscript mock",
        "system_product_version": "1.0",
        "license": null,
        "boottime": {"$date": s.started_ms},
        "datetime": {"$date": now},
        "timezone": "UTC",
        "system_manufacturer": "midscript",
        "ecc_memory": false,
    }))
}

/// A `user.query` entry.
fn user_entry(u: &super::MockUser, keys: &[i64]) -> Value {
    let uid = 949 + u.id;
    json!({
        "id": u.id, "uid": uid, "username": u.username, "unixhash": "*", "smbhash": "*",
        "home": format!("/home/{}", u.username), "shell": "/usr/bin/zsh",
        "full_name": if u.full_admin { "Local Administrator" } else { "Local User" },
        "builtin": false, "smb": false, "userns_idmap": null,
        "group": {"id": 40 + u.id, "bsdgrp_gid": uid, "bsdgrp_group": u.username},
        "groups": [44], "password_disabled": false, "ssh_password_enabled": false,
        "sshpubkey": null, "locked": false, "sudo_commands": [], "sudo_commands_nopasswd": [],
        "email": null, "id_type_both": false, "local": true, "immutable": false,
        "twofactor_auth_configured": u.otp_code.is_some(), "sid": null,
        "last_password_change": null, "password_age": null, "password_history": null,
        "password_change_required": false,
        "roles": if u.full_admin { json!(["FULL_ADMIN"]) } else { json!([]) },
        "api_keys": keys,
    })
}

fn user_entries(ctx: &Ctx) -> Vec<Value> {
    let keys = lock(&ctx.shared.keys).clone();
    lock(&ctx.shared.users)
        .iter()
        .map(|u| {
            let ids: Vec<i64> = keys
                .iter()
                .filter(|k| k.owner == u.username)
                .map(|k| k.id)
                .collect();
            user_entry(u, &ids)
        })
        .collect()
}

/// `user.query [filters, options]`.
async fn user_query(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    query::query(user_entries(&ctx), &p)
}

/// `user.update [id, {password, full_name, …}]`: a new password changes what PASSWORD_PLAIN
/// accepts. Unknown id → InstanceNotFound "User N does not exist" (-32602, §3.2).
async fn user_update(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    let id = args::int(&p, 0, "id")?;
    let data = args::object(&p, 1, "data")?;
    let password = match data.get("password") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.clone()),
        Some(_) => {
            return Err(MockError::invalid(
                Some("user_update.password"),
                "Input should be a valid string",
                errno::EINVAL,
            ));
        }
    };
    {
        let mut users = lock(&ctx.shared.users);
        let u = users
            .iter_mut()
            .find(|u| u.id == id)
            .ok_or_else(|| MockError::not_found(format!("User {id} does not exist")))?;
        if let Some(pw) = password {
            u.password = pw;
        }
    }
    let entry = user_entries(&ctx)
        .into_iter()
        .find(|e| e["id"] == id)
        .unwrap_or(Value::Null);
    ctx.shared.publish(
        CollectionUpdate {
            msg: EventKind::Changed,
            collection: "user.query".into(),
            id: Some(id.into()),
            fields: Some(entry.clone()),
            extra: None,
        },
        |c| c.logged_in(),
    );
    Ok(entry)
}

/// `alert.list` → the current alerts (e.g. `ApiKeyRevoked`).
/// Synthetic alerts adding up to about `bytes` of JSON (none for 0): a NAS with a long
/// backlog, whose `alert.list` is a big reply. Deterministic: the same alerts every time.
pub(crate) fn alert_backlog(bytes: usize, now_ms: i64) -> Vec<Value> {
    let mut alerts = Vec::new();
    let mut size = 0;
    let mut n: u64 = 0;
    while size < bytes {
        n += 1;
        let uuid = format!("00000000-0000-4000-8000-{n:012x}");
        let text = format!(
            "Device /dev/sd{} is causing slow I/O on pool \"tank\": {} ms on average over the last hour (sector {}).",
            (b'a' + (n % 26) as u8) as char,
            200 + n % 800,
            n * 4096
        );
        let date = json!({"$date": now_ms - (n as i64) * 60_000});
        let alert = json!({
            "uuid": uuid, "source": "ZpoolDiskIo", "klass": "SlowDiskIo",
            "args": {"pool": "tank", "disk": format!("sd{}", (b'a' + (n % 26) as u8) as char), "n": n},
            "node": "Controller A", "key": format!("[\"tank\", {n}]"), "datetime": date.clone(),
            "last_occurrence": date, "dismissed": false, "mail": null, "text": text.clone(),
            "id": uuid, "level": "WARNING", "formatted": text, "one_shot": false,
        });
        size += alert.to_string().len() + 1;
        alerts.push(alert);
    }
    alerts
}

async fn alert_list(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 0)?;
    Ok(Value::Array(lock(&ctx.shared.alerts).clone()))
}
