//! Gateway integration tests: the real listener and pipeline against the mock upstream.
//!
//! - `harness`: starts a mock and a gateway on ephemeral ports with a config written in YAML.
//! - `bedrock`: Bedrock's Converse API, signed, streamed as binary frames.
//! - `dialects`: the same OpenAI shapes whichever dialect serves the model; tools, JSON, streams.
//! - `key_pool`: refused and rate-limited provider keys set aside, calls resent.
//! - `kinds`: Azure OpenAI deployments and the named OpenAI-compatible services.
//! - `messages`: the Anthropic Messages ingress over every upstream dialect.
//! - `passthrough`: same-dialect calls change only the model, byte for byte.
//! - `errors`: every bad input and upstream failure gets its status and a named error.
//! - `streaming`: stream endings, cut streams, stalls and client aborts.
//! - `failover`: tiers, fallback models, bounded attempts, and what a retry is charged.
//! - `responses`: the OpenAI Responses ingress, passed through or translated.
//! - `rest`: the REST gateway's routes, rewrites, header rules and failover.
//! - `limits`: 429s and their headers, token reservations, budgets, concurrency leases.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

mod bedrock;
mod dialects;
mod errors;
mod failover;
mod harness;
mod key_pool;
mod kinds;
mod limits;
mod messages;
mod passthrough;
mod responses;
mod rest;
mod streaming;
