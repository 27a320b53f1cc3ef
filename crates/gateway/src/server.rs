//! The gateway listener and its graceful shutdown.
//!
//! On the shutdown signal the listener stops accepting, idle keep-alive connections close, and
//! in-flight requests and streams run to completion, bounded by `server.drain_timeout`.

use std::future::Future;
use std::time::Duration;

use axum::serve::ListenerExt;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

use crate::routes;
use crate::snapshot::Shared;

/// How a server run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stopped {
    /// Every in-flight call finished.
    Drained,
    /// The drain timeout passed with calls still running; they were cut.
    DrainTimedOut,
}

/// Serves until `shutdown` resolves, then drains for at most `drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    snap: Shared,
    drain_timeout: Duration,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<Stopped> {
    let (draining_tx, draining_rx) = oneshot::channel::<()>();
    let app = routes::router(snap);
    // TCP_NODELAY on every client connection: a stream is many small writes, and with Nagle's
    // algorithm each one after the first waits for the client's delayed ACK (~40 ms on Linux).
    let listener = listener.tap_io(|tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::debug!(error = %e, "cannot set TCP_NODELAY");
        }
    });
    // Connection info gives REST routes the client's address (IP lists, x-forwarded-for).
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: no new connections, draining in-flight calls");
        let _ = draining_tx.send(());
    });
    let timer = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(drain_timeout).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        res = server => res.map(|()| Stopped::Drained),
        () = timer => {
            tracing::warn!(?drain_timeout, "drain timeout passed: cutting the calls still running");
            Ok(Stopped::DrainTimedOut)
        }
    }
}
