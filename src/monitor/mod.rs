//! Live monitoring: what `midscript top` draws and `midscript check` judges.
//!
//! Data flows one way: event subscriptions and queries ([`feed`]) → one [`Model`] of metrics,
//! pools, apps, alerts and jobs (pure, testable without a terminal) → the dashboard ([`view`],
//! ratatui) or the verdict ([`check`], monitoring-plugin format).

pub mod check;
pub mod feed;
mod model;
pub mod top;
pub mod view;

#[cfg(test)]
mod tests;

pub use model::{
    Alert, App, Core, DiskIo, HISTORY, Interface, Job, Link, Memory, Metrics, Model, Pane,
    PaneState, Pool, Update,
};
