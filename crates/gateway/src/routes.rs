//! Paths to handlers, and the middleware around them. Nothing else.

use axum::extract::{DefaultBodyLimit, Request};
use axum::middleware::{self, Next};
use axum::response::Response;
use axum::routing::{any, get, post};
use axum::Router;
use http::HeaderValue;

use crate::call::RequestId;
use crate::handlers;
use crate::snapshot::Shared;

/// The data-plane router.
pub fn router(snap: Shared) -> Router {
    Router::new()
        .route("/v1/chat/completions", post(handlers::chat))
        .route("/v1/completions", post(handlers::completions))
        .route("/v1/embeddings", post(handlers::embeddings))
        .route("/v1/messages", post(handlers::messages))
        .route("/v1/responses", post(handlers::responses))
        .route("/v1/messages/count_tokens", post(handlers::count_tokens))
        .route("/v1/models", get(handlers::list_models))
        .route("/v1/models/{*id}", get(handlers::get_model))
        .route("/s/{service}", any(handlers::rest))
        .route("/s/{service}/{*rest}", any(handlers::rest))
        .route("/health", get(handlers::health))
        .fallback(handlers::not_found)
        .method_not_allowed_fallback(handlers::not_found)
        // Bodies are read by `Call::read`, which enforces `server.max_body` with an OpenAI-shaped
        // 413; axum's own 2 MB default would answer first, in plain text.
        .layer(DefaultBodyLimit::disable())
        // Outermost: every response, errors and 404s included, carries its request id and is logged.
        .layer(middleware::from_fn(request_id))
        .with_state(snap)
}

/// Gives the call an id (the client's `x-request-id` if sane), echoes it, and logs the call.
async fn request_id(mut req: Request, next: Next) -> Response {
    let id = RequestId::from_client(
        req.headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok()),
    );
    let started = std::time::Instant::now();
    let (method, path) = (req.method().clone(), req.uri().path().to_owned());
    req.extensions_mut().insert(id.clone());
    // Every event logged while the call runs carries its request id.
    let span = tracing::info_span!("call", request_id = %id.0);
    let mut resp = tracing::Instrument::instrument(next.run(req), span).await;
    if let Ok(v) = HeaderValue::from_str(&id.0) {
        resp.headers_mut().insert("x-request-id", v);
    }
    let provider = resp
        .headers()
        .get("x-gatehouse-provider")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("-");
    tracing::info!(
        request_id = %id.0,
        %method,
        path,
        status = resp.status().as_u16(),
        provider,
        ms = started.elapsed().as_millis() as u64,
        "call"
    );
    resp
}
