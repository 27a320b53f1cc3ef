//! Gatehouse traffic control: request, token, concurrency and spend limits.
//!
//! The gateway turns the policies that apply to a call into `Check`s (one counter and one rule
//! each) and a `Demand` (one request, the reserved tokens, the estimated cost, a concurrency
//! lease), asks a `Limiter` to admit them all or none, and later settles the reservation with what
//! the call really used. Windows are rolling (GCRA, `gcra`) or calendar periods in a time zone
//! (`period`). The `memory` backend serves one node; the `redis` backend runs the same rules as
//! one Lua script per call, so any number of nodes share exact counters. This crate knows nothing
//! of HTTP, tenants or models: counters are named by the caller.

mod error;
pub mod gcra;
mod limiter;
pub mod memory;
pub mod period;
pub mod redis;
#[cfg(any(test, feature = "testing"))]
pub mod testing;

#[cfg(test)]
mod tests;

pub use error::LimitError;
pub use limiter::*;
