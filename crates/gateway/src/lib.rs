//! Gatehouse data plane: the gateway listener and the request pipeline.
//!
//! A call comes in on `routes`, is read by `call`, and runs through `pipeline` (authenticate,
//! authorise, route, admit, translate, dispatch, respond) against an immutable `snapshot` of the
//! configuration, which `reload` rebuilds from the store (`stored`) when it changes. `access`
//! decides who may call what, `limits` admits and settles calls against policies (with `alerts`
//! for budgets and `metrics` for Prometheus), and `adaptive` keeps each provider's concurrency.
//! `providers` knows each upstream's URLs and auth, `upstream` owns the HTTP clients and timeouts,
//! `stream` drives server-sent events, and `error` is the one place errors become responses.

pub mod access;
pub mod adaptive;
pub mod alerts;
pub mod aws;
pub mod call;
pub mod config;
pub mod error;
mod handlers;
pub mod health;
pub mod insights;
pub mod key_pool;
pub mod limits;
pub mod metrics;
pub mod models;
pub mod pipeline;
pub mod providers;
pub mod record;
pub mod redact;
pub mod reload;
pub mod rest;
pub mod routes;
pub mod server;
pub mod snapshot;
pub mod stored;
pub mod stream;
pub mod trace;
pub mod upstream;

pub use config::{Config, RawConfig};
pub use error::{ConfigError, GatewayError};
pub use snapshot::{Shared, Snapshot};
