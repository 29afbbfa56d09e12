//! Storage pools: `pool.query` over the mock's pools, and `pool.query` `changed` events when a
//! pool's health or usage changes ([`MockServer::set_pool_status`](super::MockServer::set_pool_status)).
//!
//! The mock starts without pools; the demo state ([`MockConfig::demo`](super::MockConfig::demo))
//! has one, `tank`. Entries carry the fields monitoring reads: `name`, `status`, `healthy`,
//! `warning`, `status_detail`, `size`, `allocated`, `free`, `path` and a `scan` summary.

use std::sync::Mutex;

use serde_json::{Value, json};

use super::dispatch::{Ctx, MethodDef, args, handler};
use super::error::MockError;
use super::query;
use super::state::{Shared, lock};
use crate::protocol::{CollectionUpdate, EventKind};

/// One pool of the mock.
#[derive(Debug, Clone)]
pub(crate) struct Pool {
    pub id: i64,
    pub name: String,
    /// `ONLINE`, `DEGRADED`, `FAULTED`, `OFFLINE`, …
    pub status: String,
    pub size: u64,
    pub allocated: u64,
}

impl Pool {
    fn entry(&self) -> Value {
        let healthy = self.status == "ONLINE";
        json!({
            "id": self.id,
            "name": self.name,
            "guid": format!("{}", 1_234_567_890_123_456_789_u64 + self.id as u64),
            "path": format!("/mnt/{}", self.name),
            "status": self.status,
            "status_code": if healthy { "HEALTHY" } else { "DEGRADED" },
            "status_detail": if healthy { Value::Null } else {
                Value::from("One or more devices has been removed by the administrator.")
            },
            "healthy": healthy,
            "warning": !healthy,
            "size": self.size,
            "allocated": self.allocated,
            "free": self.size.saturating_sub(self.allocated),
            "freeing": 0,
            "fragmentation": "7",
            "autotrim": {"value": "off"},
            "is_upgraded": true,
            "scan": {"function": "SCRUB", "state": "FINISHED", "errors": 0, "percentage": 100.0},
            "topology": {"data": [{"type": "MIRROR", "status": self.status, "children": []}],
                         "log": [], "cache": [], "spare": [], "special": [], "dedup": []},
        })
    }
}

/// Every pool of the server.
#[derive(Debug, Default)]
pub(crate) struct PoolStore {
    pools: Mutex<Vec<Pool>>,
}

impl PoolStore {
    /// Add a pool (demo state).
    pub fn add(&self, pool: Pool) {
        lock(&self.pools).push(pool);
    }

    /// Change a pool's status; returns its new entry, `None` for an unknown pool.
    pub fn set_status(&self, name: &str, status: &str) -> Option<Value> {
        let mut pools = lock(&self.pools);
        let p = pools.iter_mut().find(|p| p.name == name)?;
        p.status = status.to_owned();
        Some(p.entry())
    }

    /// Change a pool's allocated bytes; returns its new entry, `None` for an unknown pool.
    pub fn set_allocated(&self, name: &str, allocated: u64) -> Option<Value> {
        let mut pools = lock(&self.pools);
        let p = pools.iter_mut().find(|p| p.name == name)?;
        p.allocated = allocated.min(p.size);
        Some(p.entry())
    }

    fn entries(&self) -> Vec<Value> {
        lock(&self.pools).iter().map(Pool::entry).collect()
    }
}

/// Send `pool.query` `changed` for a pool entry to every logged-in subscriber.
pub(crate) fn announce(shared: &Shared, entry: Value) {
    shared.publish(
        CollectionUpdate {
            msg: EventKind::Changed,
            collection: "pool.query".into(),
            id: entry.get("id").cloned(),
            fields: Some(entry),
            extra: None,
        },
        |c| c.logged_in(),
    );
}

pub(crate) fn methods() -> Vec<MethodDef> {
    vec![MethodDef::call("pool.query", handler!(pool_query)).filterable()]
}

/// `pool.query [filters, options]`.
async fn pool_query(ctx: Ctx, p: Vec<Value>) -> Result<Value, MockError> {
    args::at_most(&p, 2)?;
    query::query(ctx.shared.pools.entries(), &p)
}
