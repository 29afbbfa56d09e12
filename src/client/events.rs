//! Event subscriptions (`docs/middleware.md` §5): `core.subscribe` / `core.unsubscribe`, routing of
//! `collection_update` by the exact collection string, and `notify_unsubscribed`. On the legacy
//! dialect the same happens with `sub` / `unsub`, `added` / `changed` / `removed` and `nosub`
//! (§1.4, §5.6); the connection translates, this module does not notice.
//!
//! Notifications carry no subscription id, so they are routed by `params.collection`, which the
//! server echoes exactly as subscribed (`name:{json}` arguments included). Several local
//! subscriptions to one name share one server subscription, so each event arrives once and is
//! handed to every local subscriber.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::sync::mpsc;

use super::Client;
use super::error::{Error, Result};
use super::jobs::JobTable;
use crate::protocol::{CollectionUpdate, Notification};

/// One event: the `collection_update` params exactly as the server sent them.
pub type Event = CollectionUpdate;

/// Events a subscriber has not read yet, beyond which new ones are dropped (and reported).
const BUFFER: usize = 4096;

type Item = std::result::Result<Event, Error>;

struct Listener {
    id: u64,
    tx: mpsc::Sender<Item>,
    dropped: Arc<AtomicU64>,
}

#[derive(Default)]
struct Entry {
    server_id: Option<String>,
    listeners: Vec<Listener>,
    /// Held by the job tracker, which needs `core.get_jobs` for the whole connection.
    internal: bool,
}

/// Routes notifications to subscribers and to the job tracker.
#[derive(Default)]
pub(crate) struct Router {
    entries: HashMap<String, Entry>,
    next_listener: u64,
    pub(crate) jobs: JobTable,
}

impl Router {
    /// Hand a notification to whoever waits for it. Never blocks.
    pub(crate) fn dispatch(&mut self, note: Notification) {
        match note {
            Notification::CollectionUpdate(update) => {
                if update.collection == "core.get_jobs"
                    && let Some(job) = &update.fields
                {
                    self.jobs.record(job.clone());
                }
                // A `*` subscription receives every event as well (`docs/middleware.md` §5.1).
                let wildcard = self.entries.get("*").filter(|_| update.collection != "*");
                for entry in self
                    .entries
                    .get(&update.collection)
                    .into_iter()
                    .chain(wildcard)
                {
                    for l in &entry.listeners {
                        if l.tx.try_send(Ok(update.clone())).is_err() {
                            l.dropped.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
            Notification::NotifyUnsubscribed { collection, error } => {
                if let Some(entry) = self.entries.remove(&collection) {
                    if let Some(error) = error {
                        for l in &entry.listeners {
                            let _ = l.tx.try_send(Err(Error::SubscriptionEnded {
                                name: collection.clone(),
                                error: Box::new(error.clone()),
                            }));
                        }
                    }
                    if entry.internal {
                        self.jobs.subscription_lost();
                    }
                }
            }
            Notification::Other { .. } => {}
        }
    }

    /// The connection ended: tell every subscriber and job waiter.
    pub(crate) fn close_all(&mut self, err: impl Fn() -> Error) {
        for (_, entry) in self.entries.drain() {
            for l in entry.listeners {
                let _ = l.tx.try_send(Err(err()));
            }
        }
        self.jobs.connection_lost();
    }

    /// Add a listener; returns its id, its channel, and whether a server subscription must be made.
    fn add_listener(&mut self, name: &str) -> (u64, mpsc::Receiver<Item>, Arc<AtomicU64>, bool) {
        self.next_listener += 1;
        let id = self.next_listener;
        let (tx, rx) = mpsc::channel(BUFFER);
        let dropped = Arc::new(AtomicU64::new(0));
        let is_new = !self.entries.contains_key(name);
        let entry = self.entries.entry(name.to_owned()).or_default();
        entry.listeners.push(Listener {
            id,
            tx,
            dropped: dropped.clone(),
        });
        (id, rx, dropped, is_new)
    }

    /// Mark the internal (job tracker) interest; true when a server subscription must be made.
    pub(crate) fn add_internal(&mut self, name: &str) -> bool {
        let is_new = !self.entries.contains_key(name);
        self.entries.entry(name.to_owned()).or_default().internal = true;
        is_new
    }

    pub(crate) fn set_server_id(&mut self, name: &str, server_id: String) {
        if let Some(e) = self.entries.get_mut(name) {
            e.server_id = Some(server_id);
        }
    }

    /// Every subscribed name, the job tracker's included (to subscribe again after a reconnect).
    pub(crate) fn all_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.entries.keys().cloned().collect();
        v.sort();
        v
    }

    /// `name` could not be subscribed again after a reconnect: its subscribers get `error`.
    pub(crate) fn end(&mut self, name: &str, error: Error) {
        let Some(entry) = self.entries.remove(name) else {
            return;
        };
        let text = error.to_string();
        for l in &entry.listeners {
            let _ = l.tx.try_send(Err(Error::Protocol(format!(
                "subscription {name} could not be renewed after a reconnect: {text}"
            ))));
        }
        if entry.internal {
            self.jobs.subscription_lost();
        }
    }

    /// Forget `name` entirely (its `core.subscribe` failed).
    pub(crate) fn remove(&mut self, name: &str) {
        self.entries.remove(name);
    }

    /// The name subscribed under server id `server_id` (a legacy `nosub` may name only the id).
    pub(crate) fn name_of(&self, server_id: &str) -> Option<String> {
        self.entries
            .iter()
            .find(|(_, e)| e.server_id.as_deref() == Some(server_id))
            .map(|(k, _)| k.clone())
    }

    /// Remove one listener; returns the server id to unsubscribe when it was the last interest.
    fn remove_listener(&mut self, name: &str, id: u64) -> Option<String> {
        let entry = self.entries.get_mut(name)?;
        entry.listeners.retain(|l| l.id != id);
        if entry.listeners.is_empty() && !entry.internal {
            return self.entries.remove(name).and_then(|e| e.server_id);
        }
        None
    }

    /// The names with live subscriptions, for `.events` in the REPL.
    pub(crate) fn names(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .entries
            .iter()
            .filter(|(_, e)| !e.listeners.is_empty())
            .map(|(k, _)| k.clone())
            .collect();
        v.sort();
        v
    }
}

/// A live subscription. Read events with [`Subscription::recv`]; end it with
/// [`Subscription::unsubscribe`] (dropping it also ends it).
pub struct Subscription {
    client: Client,
    name: String,
    id: u64,
    rx: mpsc::Receiver<Item>,
    dropped: Arc<AtomicU64>,
    done: bool,
}

impl std::fmt::Debug for Subscription {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Subscription")
            .field("name", &self.name)
            .finish()
    }
}

impl Subscription {
    /// The subscribed name, exactly as sent.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The next event. `None` when the subscription ended normally (an event source finished or
    /// was unsubscribed); `Some(Err)` when it ended with an error, the connection closed, or
    /// events were dropped because they were not read in time.
    pub async fn recv(&mut self) -> Option<Result<Event>> {
        if self.done {
            return None;
        }
        let dropped = self.dropped.swap(0, Ordering::Relaxed);
        if dropped > 0 {
            return Some(Err(Error::Lagged {
                name: self.name.clone(),
                dropped,
            }));
        }
        match self.rx.recv().await {
            Some(Ok(ev)) => Some(Ok(ev)),
            Some(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            None => {
                self.done = true;
                None
            }
        }
    }

    /// An event if one is waiting, without blocking.
    pub fn try_recv(&mut self) -> Option<Result<Event>> {
        if self.done {
            return None;
        }
        match self.rx.try_recv() {
            Ok(Ok(ev)) => Some(Ok(ev)),
            Ok(Err(e)) => {
                self.done = true;
                Some(Err(e))
            }
            Err(mpsc::error::TryRecvError::Empty) => None,
            Err(mpsc::error::TryRecvError::Disconnected) => {
                self.done = true;
                None
            }
        }
    }

    /// End the subscription (`core.unsubscribe` once no local subscriber is left).
    pub async fn unsubscribe(mut self) -> Result<()> {
        self.done = true;
        let server_id = self
            .client
            .link
            .router()
            .remove_listener(&self.name, self.id);
        self.id = 0;
        if let Some(sid) = server_id {
            self.client.link.unsubscribe(&sid).await?;
        }
        Ok(())
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        if self.id == 0 {
            return;
        }
        let server_id = self
            .client
            .link
            .router()
            .remove_listener(&self.name, self.id);
        if let (Some(sid), Ok(handle)) = (server_id, tokio::runtime::Handle::try_current()) {
            let client = self.client.clone();
            handle.spawn(async move {
                let _ = client.link.unsubscribe(&sid).await;
            });
        }
    }
}

impl Client {
    /// Subscribe to an event (`core.subscribe`, or `sub` on the legacy dialect), e.g. `app.query`, `core.get_jobs`, or an event
    /// source with arguments such as `reporting.realtime:{"interval":2}`.
    ///
    /// The listener is registered before `core.subscribe` is sent, so nothing is missed,
    /// including the `notify_unsubscribed` that reports bad source arguments *before* the
    /// subscribe reply (`docs/middleware.md` §5.3).
    pub async fn subscribe(&self, name: &str) -> Result<Subscription> {
        let (id, rx, dropped, is_new) = self.link.router().add_listener(name);
        let mut sub = Subscription {
            client: self.clone(),
            name: name.to_owned(),
            id,
            rx,
            dropped,
            done: false,
        };
        if is_new && let Err(e) = self.link.subscribe(name).await {
            sub.id = 0;
            return Err(e);
        }
        Ok(sub)
    }

    /// The names this connection is subscribed to.
    pub fn subscriptions(&self) -> Vec<String> {
        self.link.router().names()
    }
}
