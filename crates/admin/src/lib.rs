//! Gatehouse control plane: the admin API over the store.
//!
//! `routes` maps `/admin/v1/…` to `handlers`, which check who is calling (`auth`), validate
//! changes against the whole configuration (`check`), write through the store (which keeps the
//! audit log and bumps the revision the data plane reloads on), and show resources with their
//! credentials masked (`view`). `apply` is the declarative path (`gatehouse apply`, and the
//! config file's resources at start); `openapi` describes the API.

pub mod apply;
pub mod auth;
mod check;
pub mod error;
mod handlers;
pub mod json;
pub mod openapi;
pub mod routes;
pub mod view;

use gatehouse_store::Store;

pub use error::ApiError;
pub use routes::router;

/// What every admin handler shares.
#[derive(Debug, Clone)]
pub struct AdminState {
    pub store: Store,
    /// The node's data plane, for what only it knows (limit counters); `None` in tools and tests
    /// that run the API alone.
    pub data: Option<gatehouse_gateway::Shared>,
}

/// Serves the admin API until `shutdown` resolves.
/// The admin listener of a node without a store (`--config` alone, `--demo`): `/metrics` only.
pub async fn serve_metrics(
    listener: tokio::net::TcpListener,
    data: gatehouse_gateway::snapshot::Shared,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes::metrics_only(data))
        .with_graceful_shutdown(shutdown)
        .await
}

pub async fn serve(
    listener: tokio::net::TcpListener,
    state: AdminState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, router(state))
        .with_graceful_shutdown(shutdown)
        .await
}
