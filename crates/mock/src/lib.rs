//! A deterministic mock of the OpenAI, Anthropic and Gemini APIs.
//!
//! It serves the demo, the tests and the benchmarks: the same request always gets the same answer,
//! and every behaviour a gateway must cope with can be asked for, per request by `x-mock-*` headers
//! or for the whole server by start flags (latency, time to first token, delay between chunks,
//! output length, tool calls, injected faults). It shares no types with Gatehouse on purpose: its
//! shapes come from the providers' specs, so a bug in Gatehouse's types cannot hide behind the same
//! bug here. Handlers are cheap (no locks, no I/O besides the socket) so that it is never the
//! bottleneck of a benchmark.

mod anthropic;
mod bedrock;
mod gemini;
mod knobs;
mod openai;
mod reply;
mod responses;
mod text;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

pub use knobs::{Fault, Knobs};

/// Server-wide settings of a mock.
#[derive(Debug, Clone, Default)]
pub struct MockConfig {
    /// Defaults for every request; `x-mock-*` headers override them.
    pub knobs: Knobs,
    /// When set, requests must carry this key in their dialect's auth header, else 401.
    pub expect_key: Option<String>,
    /// Counters a test reads to see what reached the mock (shared by clones).
    pub stats: Arc<Stats>,
}

/// What the mock has seen, for tests: `GET /mock/stats` returns it as JSON.
#[derive(Debug, Default)]
pub struct Stats {
    pub requests: AtomicU64,
    pub streams_started: AtomicU64,
    pub streams_finished: AtomicU64,
    /// Streams whose client went away before the last frame was sent.
    pub streams_aborted: AtomicU64,
    /// Requests whose client went away before the answer's headers were sent.
    pub requests_cancelled: AtomicU64,
}

impl Stats {
    fn json(&self) -> serde_json::Value {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        serde_json::json!({
            "requests": get(&self.requests),
            "streams_started": get(&self.streams_started),
            "streams_finished": get(&self.streams_finished),
            "streams_aborted": get(&self.streams_aborted),
            "requests_cancelled": get(&self.requests_cancelled),
        })
    }
}

/// The mock's routes for all three dialects.
pub fn router(config: MockConfig) -> Router {
    let state = Arc::new(config);
    Router::new()
        .route("/v1/chat/completions", post(openai::chat))
        .route("/v1/completions", post(openai::completions))
        .route("/v1/embeddings", post(openai::embeddings))
        .route("/v1/models", get(openai::models))
        .route(
            "/openai/deployments/{deployment}/{*op}",
            post(openai::azure),
        )
        .route("/v1/responses", post(responses::create))
        .route("/model/{model}/{action}", post(bedrock::converse))
        .route("/v1/messages", post(anthropic::messages))
        .route("/v1/messages/count_tokens", post(anthropic::count_tokens))
        .route("/v1beta/models/{model_action}", post(gemini::dispatch))
        .route("/health", get(|| async { "ok" }))
        .route(
            "/mock/stats",
            get(|s: State| async move { axum::Json(s.0.stats.json()) }),
        )
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            count,
        ))
        .with_state(state)
}

async fn count(
    axum::extract::State(state): axum::extract::State<Arc<MockConfig>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    if req.uri().path() == "/mock/stats" {
        return next.run(req).await;
    }
    state.stats.requests.fetch_add(1, Ordering::Relaxed);
    let mut pending = Pending {
        stats: Arc::clone(&state.stats),
        answered: false,
    };
    let resp = next.run(req).await;
    pending.answered = true;
    resp
}

/// Counts a request as cancelled if its handler is dropped before it answers.
struct Pending {
    stats: Arc<Stats>,
    answered: bool,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if !self.answered {
            self.stats
                .requests_cancelled
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Serves the mock on `listener` until `shutdown` resolves.
pub async fn serve(
    listener: tokio::net::TcpListener,
    config: MockConfig,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    // TCP_NODELAY, as real providers' front ends do: without it every streamed chunk after the
    // first waits for the peer's delayed ACK, and streams measure Nagle's algorithm, not servers.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    axum::serve(listener, router(config))
        .with_graceful_shutdown(shutdown)
        .await
}

/// Binds `addr` and serves the mock in a background task; returns the bound address.
pub async fn spawn(addr: SocketAddr, config: MockConfig) -> std::io::Result<SocketAddr> {
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    tokio::spawn(async move {
        if let Err(e) = serve(listener, config, std::future::pending()).await {
            tracing::error!(error = %e, "mock server stopped");
        }
    });
    Ok(local)
}

type State = axum::extract::State<Arc<MockConfig>>;
