//! The gateway's errors, and the one place where they become HTTP responses.
//!
//! Every variant maps to a status, a log level and an OpenAI-shaped body in `into_response`, with
//! an exhaustive match so that a new variant forces those decisions.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use gatehouse_llm::types::openai::ErrorBody;

/// Why a call failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("the request body is not valid JSON: {0}")]
    BadJson(String),
    #[error("{0}")]
    InvalidRequest(String),
    #[error("{feature} is not supported by {target} (model `{model}`)")]
    Unsupported {
        feature: String,
        target: String,
        model: String,
    },
    #[error("{0}")]
    ModelNotFound(String),
    #[error("missing API key: send it as `Authorization: Bearer <key>` or `x-api-key: <key>`")]
    MissingKey,
    #[error("invalid API key")]
    InvalidKey,
    #[error("this API key expired")]
    ExpiredKey,
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    #[error("{message}")]
    RateLimited {
        code: &'static str,
        message: String,
        /// Seconds, for `retry-after`.
        retry_after: u64,
        headers: Box<http::HeaderMap>,
    },
    #[error("provider {provider} is overloaded: {why}; the call was shed")]
    Overloaded { provider: String, why: String },
    #[error("limits cannot be checked ({0}); the call is refused (server.limits.on_redis_error: fail_closed)")]
    LimitsUnavailable(String),
    #[error("request body is larger than the limit of {limit} bytes")]
    PayloadTooLarge { limit: usize },
    #[error("no route for {method} {path}")]
    RouteNotFound { method: String, path: String },
    #[error("{provider} answered {status}")]
    Upstream {
        provider: String,
        status: u16,
        body: Box<ErrorBody>,
        retry_after: Option<HeaderValue>,
    },
    #[error("cannot reach provider {provider}: {message}")]
    UpstreamUnreachable { provider: String, message: String },
    #[error("the connection to provider {provider} broke: {message}")]
    UpstreamBroken { provider: String, message: String },
    #[error("provider {provider} timed out ({what})")]
    UpstreamTimeout {
        provider: String,
        what: &'static str,
    },
    #[error("provider {provider} sent a malformed response: {message}")]
    UpstreamMalformed { provider: String, message: String },
}

impl GatewayError {
    /// The status, error type and code this error is answered with.
    fn parts(&self) -> (StatusCode, &'static str, Option<&'static str>) {
        match self {
            Self::BadJson(_) => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("invalid_json"),
            ),
            Self::InvalidRequest(_) => (StatusCode::BAD_REQUEST, "invalid_request_error", None),
            Self::Unsupported { .. } => (
                StatusCode::BAD_REQUEST,
                "invalid_request_error",
                Some("unsupported_parameter"),
            ),
            Self::ModelNotFound(_) => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("model_not_found"),
            ),
            Self::MissingKey => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("missing_api_key"),
            ),
            Self::InvalidKey => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("invalid_api_key"),
            ),
            Self::ExpiredKey => (
                StatusCode::UNAUTHORIZED,
                "invalid_request_error",
                Some("expired_api_key"),
            ),
            Self::Forbidden { code, .. } => (StatusCode::FORBIDDEN, "permission_error", Some(code)),
            Self::RateLimited { code, .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "rate_limit_error",
                Some(code),
            ),
            Self::Overloaded { .. } => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("upstream_overloaded"),
            ),
            Self::LimitsUnavailable(_) => (
                StatusCode::SERVICE_UNAVAILABLE,
                "server_error",
                Some("limits_unavailable"),
            ),
            Self::PayloadTooLarge { .. } => (
                StatusCode::PAYLOAD_TOO_LARGE,
                "invalid_request_error",
                Some("request_too_large"),
            ),
            Self::RouteNotFound { .. } => (
                StatusCode::NOT_FOUND,
                "invalid_request_error",
                Some("unknown_url"),
            ),
            Self::Upstream { status, .. } => (
                StatusCode::from_u16(*status).unwrap_or(StatusCode::BAD_GATEWAY),
                "upstream_error",
                None,
            ),
            Self::UpstreamUnreachable { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                Some("upstream_unreachable"),
            ),
            Self::UpstreamBroken { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                Some("upstream_connection_broken"),
            ),
            Self::UpstreamTimeout { .. } => (
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_error",
                Some("upstream_timeout"),
            ),
            Self::UpstreamMalformed { .. } => (
                StatusCode::BAD_GATEWAY,
                "upstream_error",
                Some("upstream_malformed"),
            ),
        }
    }

    /// The OpenAI-shaped body, as sent in a response or a stream's error event.
    pub fn body(&self) -> ErrorBody {
        match self {
            Self::Upstream { body, .. } => (**body).clone(),
            other => {
                let (_, kind, code) = other.parts();
                let mut body = ErrorBody::new(other.to_string(), kind, code);
                if matches!(other, Self::ModelNotFound(_)) {
                    body.error.param = Some("model".into());
                }
                body
            }
        }
    }
}

impl IntoResponse for GatewayError {
    fn into_response(self) -> Response {
        let (status, _, _) = self.parts();
        if status.is_server_error() {
            tracing::warn!(error = %self, "call failed");
        } else {
            tracing::debug!(error = %self, "call refused");
        }
        let body = serde_json::to_vec(&self.body()).unwrap_or_default();
        let mut resp = (status, [(header::CONTENT_TYPE, "application/json")], body).into_response();
        match self {
            Self::Upstream {
                retry_after: Some(v),
                ..
            } => {
                resp.headers_mut().insert(header::RETRY_AFTER, v);
            }
            Self::Overloaded { .. } => {
                resp.headers_mut()
                    .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
            }
            Self::RateLimited {
                retry_after,
                headers,
                ..
            } => {
                resp.headers_mut().extend(*headers);
                if let Ok(v) = HeaderValue::from_str(&retry_after.to_string()) {
                    resp.headers_mut().insert(header::RETRY_AFTER, v);
                }
            }
            _ => {}
        }
        resp
    }
}

impl GatewayError {
    /// The HTTP status this error is answered with.
    pub fn status(&self) -> u16 {
        self.parts().0.as_u16()
    }

    /// The error's code, as answered (`model_not_found`, `upstream_timeout`…).
    pub fn code(&self) -> Option<String> {
        match self {
            Self::Upstream { body, .. } => body.error.code.clone(),
            other => other.parts().2.map(str::to_owned),
        }
    }

    /// The response for this error (for code that builds responses by hand).
    pub fn into_response_inner(self) -> Response {
        self.into_response()
    }

    /// The response for this error in the client's dialect: the same status and headers, the
    /// body in OpenAI's shape or in Anthropic's (`{"type": "error", "error": {...}}`, with the
    /// request's id).
    pub fn respond(self, dialect: gatehouse_llm::Dialect, request_id: &str) -> Response {
        if dialect != gatehouse_llm::Dialect::AnthropicMessages {
            return self.into_response();
        }
        let body = gatehouse_llm::convert::anthropic::from_openai::error(
            self.status(),
            self.body().error.message,
            Some(request_id),
        );
        let mut resp = self.into_response();
        *resp.body_mut() = axum::body::Body::from(serde_json::to_vec(&body).unwrap_or_default());
        resp
    }

    /// A translation error, told with the model the client asked for and the provider serving it.
    pub fn from_llm(e: gatehouse_llm::LlmError, model: &str, provider: &str) -> Self {
        use gatehouse_llm::LlmError as L;
        match e {
            L::Invalid(m) => Self::InvalidRequest(m),
            L::Unsupported { feature, target } => Self::Unsupported {
                feature,
                target,
                model: model.to_owned(),
            },
            L::MalformedUpstream { what, source } => Self::UpstreamMalformed {
                provider: provider.to_owned(),
                message: format!("{what}: {source}"),
            },
            L::Stream(message) => Self::UpstreamMalformed {
                provider: provider.to_owned(),
                message,
            },
            L::Catalog { file, message } => {
                Self::InvalidRequest(format!("model catalog {file}: {message}"))
            }
        }
    }
}

/// Everything wrong with a config file, each problem with its path in the file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}", render(.problems))]
pub struct ConfigError {
    pub problems: Vec<(String, String)>,
}

impl ConfigError {
    pub(crate) fn one(path: &str, message: String) -> Self {
        Self {
            problems: vec![(path.to_owned(), message)],
        }
    }
}

fn render(problems: &[(String, String)]) -> String {
    problems
        .iter()
        .map(|(path, msg)| {
            if path.is_empty() {
                msg.clone()
            } else {
                format!("{path}: {msg}")
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
