//! Upstream requests per provider kind: the URL, the auth header and the configured headers.
//!
//! Bodies arrive here already in the provider's dialect (passed through or translated by the
//! pipeline); this module only knows where and how each kind is called.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::config::ProviderKind;
use crate::upstream::Upstream;

/// The Anthropic API version sent unless the provider's `headers` say otherwise.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which upstream operation a call maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Chat { stream: bool },
    Completions,
    Embeddings,
}

/// Builds the HTTP request for `op` on `model` with a body in the provider's dialect.
pub fn request(
    up: &Upstream,
    op: Op,
    model: &str,
    body: Bytes,
    request_id: &str,
) -> reqwest::RequestBuilder {
    let base = &up.cfg.base_url;
    let url = match (up.cfg.kind, op) {
        (ProviderKind::Openai | ProviderKind::OpenaiCompatible, Op::Chat { .. }) => {
            format!("{base}/chat/completions")
        }
        (ProviderKind::Openai | ProviderKind::OpenaiCompatible, Op::Completions) => {
            format!("{base}/completions")
        }
        (ProviderKind::Openai | ProviderKind::OpenaiCompatible, Op::Embeddings) => {
            format!("{base}/embeddings")
        }
        (ProviderKind::Anthropic, _) => format!("{base}/messages"),
        (ProviderKind::Gemini, Op::Chat { stream: false } | Op::Completions) => {
            format!("{base}/models/{model}:generateContent")
        }
        (ProviderKind::Gemini, Op::Chat { stream: true }) => {
            format!("{base}/models/{model}:streamGenerateContent?alt=sse")
        }
        (ProviderKind::Gemini, Op::Embeddings) => {
            format!("{base}/models/{model}:batchEmbedContents")
        }
    };
    let mut req = up
        .client
        .post(url)
        .header(CONTENT_TYPE, "application/json")
        .header("x-request-id", request_id);
    let key = up.key();
    req = match up.cfg.kind {
        ProviderKind::Openai | ProviderKind::OpenaiCompatible => match key {
            Some(k) => req.header(AUTHORIZATION, format!("Bearer {k}")),
            None => req,
        },
        ProviderKind::Anthropic => {
            let req = match key {
                Some(k) => req.header("x-api-key", k),
                None => req,
            };
            if up.cfg.headers.contains_key("anthropic-version") {
                req
            } else {
                req.header("anthropic-version", ANTHROPIC_VERSION)
            }
        }
        ProviderKind::Gemini => match key {
            Some(k) => req.header("x-goog-api-key", k),
            None => req,
        },
    };
    for (name, value) in &up.cfg.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    req.body(body)
}
