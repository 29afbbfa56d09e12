//! The demo state ([`MockConfig::demo`](super::MockConfig::demo)): what `midscript mock --demo`
//! and `midscript --mock` start with, so that there is something to look at: three custom apps
//! (`jellyfin` and `nextcloud` running, `vaultwarden` crashed), the pool `tank` at 62 % use, two
//! alerts (a WARNING and an INFO), and a scheduled cloud backup job that runs every 8
//! "seconds" (5 of them running), raising an INFO alert each time it finishes, while the pool
//! slowly fills.
//!
//! Time runs in "seconds" of one `job_step` in deterministic mode, as for event sources.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio_util::sync::CancellationToken;

use super::pools::{self, Pool};
use super::state::{Shared, lock};
use crate::protocol::{CollectionUpdate, EventKind};

const TIB: u64 = 1 << 40;

/// The demo pool's size and its allocated bytes at start (62 %).
const TANK_SIZE: u64 = 4 * TIB;
const TANK_ALLOCATED: u64 = TANK_SIZE / 100 * 62;

fn app_config(service: &str, image: &str, port: u16) -> Value {
    json!({
        "services": {service: {"image": image, "ports": [format!("{port}:{port}")],
                               "restart": "unless-stopped"}},
        "x-portals": [{"name": "Web UI", "scheme": "http", "port": port, "path": "/"}],
    })
}

/// Put the demo apps, pool and alerts in place (before the server accepts connections).
pub(crate) fn seed(shared: &Shared) {
    let now = shared.ids.now_ms();
    let apps = [
        ("jellyfin", "jellyfin/jellyfin:10.10.3", 8096, false),
        ("nextcloud", "nextcloud:30-apache", 8080, false),
        ("vaultwarden", "vaultwarden/server:1.32.5", 8222, true),
    ];
    for (name, image, port, crash) in apps {
        shared
            .apps
            .seed(name, app_config(name, image, port), crash, now);
    }
    shared.pools.add(Pool {
        id: 1,
        name: "tank".into(),
        status: "ONLINE".into(),
        size: TANK_SIZE,
        allocated: TANK_ALLOCATED,
    });
    let mut alerts = lock(&shared.alerts);
    alerts.push(alert(
        shared,
        "VolumeVersion",
        "WARNING",
        "New ZFS version or feature flags are available for pool 'tank'. Upgrading pools is a one-time process that can prevent rolling the system back to an earlier TrueNAS version.",
    ));
    alerts.push(alert(
        shared,
        "HasUpdate",
        "INFO",
        "A system update is available. Go to System Settings → Update to download and apply the update.",
    ));
}

/// An `alert.list` entry.
pub(crate) fn alert(shared: &Shared, klass: &str, level: &str, text: &str) -> Value {
    let uuid = shared.ids.uuid();
    let now = json!({"$date": shared.ids.now_ms()});
    json!({
        "uuid": uuid, "id": uuid, "source": "", "klass": klass, "args": null,
        "node": "Controller A", "key": format!("[\"{klass}\"]"), "datetime": now.clone(),
        "last_occurrence": now, "dismissed": false, "mail": null, "text": text,
        "level": level, "formatted": text, "one_shot": false,
    })
}

/// Add an alert and tell `alert.list` subscribers (`changed` with the uuid and the whole
/// alert, as the real server's alert runtime sends it).
pub(crate) fn raise(shared: &Shared, alert: Value) {
    lock(&shared.alerts).push(alert.clone());
    shared.publish(
        CollectionUpdate {
            msg: EventKind::Changed,
            collection: "alert.list".into(),
            id: alert.get("uuid").cloned(),
            fields: Some(alert),
            extra: None,
        },
        |c| c.logged_in(),
    );
}

/// Remove alert `uuid` (`removed` with the id only); false when there is no such alert.
pub(crate) fn clear(shared: &Shared, uuid: &str) -> bool {
    let removed = {
        let mut alerts = lock(&shared.alerts);
        let before = alerts.len();
        alerts.retain(|a| a.get("uuid").and_then(Value::as_str) != Some(uuid));
        alerts.len() != before
    };
    if removed {
        shared.publish(
            CollectionUpdate {
                msg: EventKind::Removed,
                collection: "alert.list".into(),
                id: Some(uuid.into()),
                fields: None,
                extra: None,
            },
            |c| c.logged_in(),
        );
    }
    removed
}

fn second(shared: &Shared) -> Duration {
    if shared.config.deterministic {
        shared.config.job_step.max(Duration::from_millis(1))
    } else {
        Duration::from_secs(1)
    }
}

/// The demo's life: a cloud backup every 8 "seconds" (5 of them running), an alert when each
/// one ends (replacing the previous one), and the pool growing by 64 MiB a "second". Ends
/// with `stop`.
pub(crate) async fn run(shared: Arc<Shared>, stop: CancellationToken) {
    let sec = second(&shared);
    let mut last_alert: Option<String> = None;
    let mut round = 0u64;
    let mut allocated = TANK_ALLOCATED;
    loop {
        round += 1;
        let (tx, mut rx) = tokio::sync::oneshot::channel();
        let job_shared = shared.clone();
        super::jobs::spawn_system_job(
            &shared,
            "cloud_backup.sync",
            vec![json!(1)],
            move |j| async move {
                for pct in (20..=100).step_by(20) {
                    tokio::time::sleep(second(&job_shared)).await;
                    j.progress(pct, &format!("Sending files to offsite: {pct}%"));
                }
                let _ = tx.send(());
                Ok(Value::Null)
            },
        );
        for _ in 0..8 {
            tokio::select! {
                _ = tokio::time::sleep(sec) => {}
                _ = stop.cancelled() => return,
            }
            allocated += 64 << 20;
            if let Some(entry) = shared.pools.set_allocated("tank", allocated) {
                pools::announce(&shared, entry);
            }
            if rx.try_recv().is_ok() {
                if let Some(old) = last_alert.take() {
                    clear(&shared, &old);
                }
                let a = alert(
                    &shared,
                    "CloudBackupTaskSucceeded",
                    "INFO",
                    &format!("Cloud backup task \"offsite\" succeeded (run {round})."),
                );
                last_alert = a.get("uuid").and_then(Value::as_str).map(str::to_owned);
                raise(&shared, a);
            }
        }
    }
}
