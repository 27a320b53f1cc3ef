//! Gatehouse store: the control plane's state in SQLite (embedded) or PostgreSQL (cluster).
//!
//! `Store` is the one repository: users and memberships, the declarative resources (tenants,
//! providers, models, services, apps), API keys, subscriptions, admin tokens, sessions and the
//! audit log. Both back ends run the same SQL (written once, in `on!` blocks that the compiler
//! instantiates per driver) over their own migration history. Every write bumps one revision
//! and lands in the audit log in the same transaction; nodes watch the revision to rebuild their
//! snapshot. Secrets are sealed with the node's master key (`secrets`) before they are stored.
//! The store knows nothing of HTTP or of what a provider spec means.

mod alerts;
mod analytics;
mod anomalies;
mod audit;
mod calls;
mod db;
mod error;
pub mod ids;
pub mod insights;
mod keys;
mod query;
mod records;
mod resources;
pub mod rollups;
pub mod secrets;
mod subscriptions;
#[cfg(any(test, feature = "testing"))]
pub mod testing;
mod users;

pub use alerts::{AlertFilter, AlertRecord};
pub use analytics::{AggRow, Aggregate, Dim, Rank};
pub use anomalies::{Anomaly, AnomalyFilter};
pub use audit::AuditFilter;
pub use calls::{Attempt, CallFilter, CallRecord, StatusFilter};
pub use db::{Backend, Store};
pub use error::StoreError;
pub use keys::KEY_PREFIX;
pub use records::*;
pub use resources::ListFilter;
pub use subscriptions::SubscriptionFilter;

#[cfg(test)]
mod tests;
