//! Upstream requests per provider kind: the URL, the auth header and the configured headers.
//!
//! Bodies arrive here already in the provider's dialect (passed through or translated by the
//! pipeline); this module only knows where and how each kind is called.

use bytes::Bytes;
use http::header::{AUTHORIZATION, CONTENT_TYPE};

use crate::config::{KeyAuth, ProviderKind};
use crate::upstream::Upstream;

/// The Anthropic API version sent unless the provider's `headers` say otherwise.
pub const ANTHROPIC_VERSION: &str = "2023-06-01";

/// Which upstream operation a call maps to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Chat {
        stream: bool,
    },
    Completions,
    Embeddings,
    /// Anthropic's `/messages/count_tokens` (Anthropic upstreams only).
    CountTokens,
    /// OpenAI's `/responses` (OpenAI upstreams only).
    Responses,
}

/// Where a provider's operations are sent, worked out once when the snapshot is built.
#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "one value per provider, built once"
)]
pub enum Endpoints {
    /// One URL per operation, parsed once rather than on every call. Anthropic serves all three
    /// through `/messages`; the pipeline refuses what Messages cannot serve before it gets here.
    Fixed {
        chat: reqwest::Url,
        completions: reqwest::Url,
        embeddings: reqwest::Url,
    },
    /// Gemini: the model is part of the path, so the URL is built per call.
    PerModel,
    /// Azure OpenAI: `{resource}/openai/deployments/{deployment}/{op}?api-version=…`, the
    /// deployment being the target's model.
    Azure { resource: String },
    /// Bedrock: `{base}/model/{modelId}/converse[-stream]`, signed per call.
    Bedrock,
}

impl Endpoints {
    pub fn new(kind: ProviderKind, base: &str) -> Result<Self, url::ParseError> {
        let url = |path: &str| reqwest::Url::parse(&format!("{base}{path}"));
        Ok(match kind {
            ProviderKind::AzureOpenai => {
                let resource = base.trim_end_matches("/openai").to_owned();
                reqwest::Url::parse(&resource)?;
                Self::Azure { resource }
            }
            ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Named(_) => {
                Self::Fixed {
                    chat: url("/chat/completions")?,
                    completions: url("/completions")?,
                    embeddings: url("/embeddings")?,
                }
            }
            ProviderKind::Anthropic => {
                let messages = url("/messages")?;
                Self::Fixed {
                    chat: messages.clone(),
                    completions: messages.clone(),
                    embeddings: messages,
                }
            }
            ProviderKind::Gemini => {
                url("/models")?;
                Self::PerModel
            }
            ProviderKind::Bedrock => {
                url("/model")?;
                Self::Bedrock
            }
        })
    }
}

/// Builds the HTTP request for `op` on `model` with a body in the provider's dialect, sent with
/// `key` (from the provider's pool). `forward` holds client headers the upstream must see; the
/// provider's own `headers` win.
pub fn request(
    up: &Upstream,
    (op, model): (Op, &str),
    body: Bytes,
    (request_id, key): (&str, Option<&str>),
    forward: &[(&'static str, http::HeaderValue)],
) -> Result<reqwest::RequestBuilder, crate::error::GatewayError> {
    if let Endpoints::Bedrock = up.endpoints {
        return bedrock(up, (op, model), body, (request_id, key));
    }
    let base = &up.cfg.base_url;
    let builder = match (&up.endpoints, op) {
        (_, Op::CountTokens) => up.client.post(format!("{base}/messages/count_tokens")),
        (_, Op::Responses) => up.client.post(format!("{base}/responses")),
        (Endpoints::Fixed { chat, .. }, Op::Chat { .. }) => up.client.post(chat.clone()),
        (Endpoints::Fixed { completions, .. }, Op::Completions) => {
            up.client.post(completions.clone())
        }
        (Endpoints::Fixed { embeddings, .. }, Op::Embeddings) => up.client.post(embeddings.clone()),
        (Endpoints::PerModel, Op::Chat { stream: true }) => up.client.post(format!(
            "{base}/models/{model}:streamGenerateContent?alt=sse"
        )),
        (Endpoints::PerModel, Op::Embeddings) => up
            .client
            .post(format!("{base}/models/{model}:batchEmbedContents")),
        (Endpoints::PerModel, Op::Chat { stream: false } | Op::Completions) => up
            .client
            .post(format!("{base}/models/{model}:generateContent")),
        (Endpoints::Bedrock, _) => up.client.post(base.as_str()),
        (Endpoints::Azure { resource }, op) => {
            let path = match op {
                Op::Completions => "completions",
                Op::Embeddings => "embeddings",
                _ => "chat/completions",
            };
            up.client.post(format!(
                "{resource}/openai/deployments/{model}/{path}?api-version={}",
                up.cfg.api_version
            ))
        }
    };
    let mut req = builder
        .header(CONTENT_TYPE, "application/json")
        .header("x-request-id", request_id);
    // The key: as a bearer token, or in the kind's own header.
    if let Some(k) = key {
        req = match (up.cfg.auth, up.cfg.kind) {
            (KeyAuth::Bearer, _)
            | (
                KeyAuth::Header,
                ProviderKind::Openai | ProviderKind::OpenaiCompatible | ProviderKind::Named(_),
            ) => req.header(AUTHORIZATION, format!("Bearer {k}")),
            (KeyAuth::Header, ProviderKind::AzureOpenai) => req.header("api-key", k),
            (KeyAuth::Header, ProviderKind::Anthropic) => req.header("x-api-key", k),
            (KeyAuth::Header, ProviderKind::Gemini) => req.header("x-goog-api-key", k),
            // A Bedrock API key is a bearer token.
            (KeyAuth::Header, ProviderKind::Bedrock) => {
                req.header(AUTHORIZATION, format!("Bearer {k}"))
            }
        };
    }
    if up.cfg.kind == ProviderKind::Anthropic
        && !up.cfg.headers.contains_key("anthropic-version")
        && !forward.iter().any(|(n, _)| *n == "anthropic-version")
    {
        req = req.header("anthropic-version", ANTHROPIC_VERSION);
    }
    for (name, value) in forward {
        if !up.cfg.headers.contains_key(*name) {
            req = req.header(*name, value.clone());
        }
    }
    for (name, value) in &up.cfg.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    Ok(req.body(body))
}

/// A Bedrock Converse call: with a Bedrock API key as a bearer token, else signed with SigV4
/// (the configured headers are sent unsigned).
fn bedrock(
    up: &Upstream,
    (op, model): (Op, &str),
    body: Bytes,
    (request_id, key): (&str, Option<&str>),
) -> Result<reqwest::RequestBuilder, crate::error::GatewayError> {
    let action = match op {
        Op::Chat { stream: true } => "converse-stream",
        _ => "converse",
    };
    let url = format!(
        "{}/model/{}/{action}",
        up.cfg.base_url,
        encode_segment(model)
    );
    let mut req = up
        .client
        .post(&url)
        .header(CONTENT_TYPE, "application/json")
        .header("x-request-id", request_id);
    match (key, &up.cfg.aws) {
        (Some(k), _) => req = req.header(AUTHORIZATION, format!("Bearer {k}")),
        (None, Some(aws)) => {
            let creds =
                crate::aws::Credentials::resolve(aws, &|k| std::env::var(k).ok()).map_err(|e| {
                    match e {
                        crate::error::GatewayError::UpstreamUnreachable { message, .. } => {
                            crate::error::GatewayError::UpstreamUnreachable {
                                provider: up.cfg.name.clone(),
                                message,
                            }
                        }
                        other => other,
                    }
                })?;
            let signed = crate::aws::sign(
                &creds,
                (&aws.region, "bedrock"),
                ("POST", &url, &[("content-type", "application/json")]),
                &body,
                std::time::SystemTime::now(),
            )?;
            for (name, value) in signed {
                req = req.header(name, value);
            }
        }
        (None, None) => {}
    }
    for (name, value) in &up.cfg.headers {
        req = req.header(name.as_str(), value.as_str());
    }
    Ok(req.body(body))
}

/// A model id as one URL path segment (ARNs and versioned ids hold `:` and `/`).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
