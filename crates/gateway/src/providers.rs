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

/// The fixed upstream URLs of a provider, parsed once when the snapshot is built rather than on
/// every call. Gemini puts the model in the path, so its URLs are made per call.
#[derive(Debug, Clone)]
pub struct Endpoints {
    chat: Option<reqwest::Url>,
    completions: Option<reqwest::Url>,
    embeddings: Option<reqwest::Url>,
}

impl Endpoints {
    pub fn new(kind: ProviderKind, base: &str) -> Result<Self, url::ParseError> {
        let url = |path: &str| reqwest::Url::parse(&format!("{base}{path}")).map(Some);
        Ok(match kind {
            ProviderKind::Openai | ProviderKind::OpenaiCompatible => Self {
                chat: url("/chat/completions")?,
                completions: url("/completions")?,
                embeddings: url("/embeddings")?,
            },
            // One endpoint for everything; the pipeline refuses what Messages cannot serve.
            ProviderKind::Anthropic => Self {
                chat: url("/messages")?,
                completions: url("/messages")?,
                embeddings: url("/messages")?,
            },
            ProviderKind::Gemini => Self {
                // Checks the base once; the per-model URLs are built from it per call.
                chat: url("/models").map(|_| None)?,
                completions: None,
                embeddings: None,
            },
        })
    }
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
    let fixed = match op {
        Op::Chat { .. } => up.endpoints.chat.as_ref(),
        Op::Completions => up.endpoints.completions.as_ref(),
        Op::Embeddings => up.endpoints.embeddings.as_ref(),
    };
    // Only Gemini has no fixed URLs: its model is part of the path.
    let builder = match (fixed, op) {
        (Some(url), _) => up.client.post(url.clone()),
        (None, Op::Chat { stream: true }) => up.client.post(format!(
            "{base}/models/{model}:streamGenerateContent?alt=sse"
        )),
        (None, Op::Embeddings) => up
            .client
            .post(format!("{base}/models/{model}:batchEmbedContents")),
        (None, _) => up
            .client
            .post(format!("{base}/models/{model}:generateContent")),
    };
    let mut req = builder
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
