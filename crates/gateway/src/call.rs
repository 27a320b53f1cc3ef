//! One incoming call: its id, surface, headers and body, read within the size limit, and the
//! cheap first look at the body (model and stream flag) that routing needs.

use axum::body::Body;
use bytes::{Bytes, BytesMut};
use futures_util::StreamExt;
use http::HeaderMap;
use serde::Deserialize;
use serde_json::value::RawValue;

use crate::error::GatewayError;

/// Which client API a call came in on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Surface {
    Chat,
    Completions,
    Embeddings,
    /// Anthropic Messages (`/v1/messages`).
    Messages,
    /// OpenAI Responses (`/v1/responses`), stateless.
    Responses,
}

impl Surface {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Chat => "chat",
            Self::Completions => "completions",
            Self::Embeddings => "embeddings",
            Self::Messages => "messages",
            Self::Responses => "responses",
        }
    }

    /// The dialect the client speaks: its answers and errors are written in it.
    pub fn dialect(self) -> gatehouse_llm::Dialect {
        match self {
            Self::Messages => gatehouse_llm::Dialect::AnthropicMessages,
            // Responses errors are OpenAI's error body.
            Self::Chat | Self::Completions | Self::Embeddings | Self::Responses => {
                gatehouse_llm::Dialect::OpenAiChat
            }
        }
    }
}

/// A request id, set by the middleware and echoed in `x-request-id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestId(pub String);

impl RequestId {
    /// The client's own id when it is a sane token, else a fresh one.
    pub fn from_client(header: Option<&str>) -> Self {
        match header {
            Some(id)
                if !id.is_empty()
                    && id.len() <= 128
                    && id.bytes().all(|b| b.is_ascii_graphic()) =>
            {
                Self(id.to_owned())
            }
            _ => Self(format!(
                "req_{:016x}{:08x}",
                fastrand::u64(..),
                fastrand::u32(..)
            )),
        }
    }
}

#[derive(Debug)]
pub struct Call {
    pub id: RequestId,
    pub surface: Surface,
    pub headers: HeaderMap,
    pub body: Bytes,
}

/// Reads a request body, refusing it (413) as soon as it passes `limit`.
pub async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limit: usize,
) -> Result<Bytes, GatewayError> {
    let declared = headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(GatewayError::PayloadTooLarge { limit });
    }
    let mut buf = BytesMut::with_capacity(declared.unwrap_or(0));
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            GatewayError::InvalidRequest(format!("cannot read the request body: {e}"))
        })?;
        if buf.len() + chunk.len() > limit {
            return Err(GatewayError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(buf.freeze())
}

impl Call {
    /// Reads the body, refusing it as soon as it passes `limit` bytes.
    pub async fn read(
        id: RequestId,
        surface: Surface,
        headers: HeaderMap,
        body: Body,
        limit: usize,
    ) -> Result<Self, GatewayError> {
        let body = read_body(&headers, body, limit).await?;
        Ok(Self {
            id,
            surface,
            headers,
            body,
        })
    }
}

/// The fields routing reads, found without building the rest of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Envelope {
    pub model: String,
    pub stream: bool,
    /// OpenAI's `user`: the end user the client names, for call records.
    pub user: Option<String>,
    /// Byte range of the `model` value (quotes included) in the body, for the pass-through rewrite.
    model_span: (usize, usize),
}

#[derive(Deserialize)]
struct RawEnvelope<'a> {
    #[serde(borrow, default)]
    model: Option<&'a RawValue>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    user: Option<serde_json::Value>,
    /// Anthropic's `metadata.user_id`.
    #[serde(default)]
    metadata: Option<RawMetadata>,
}

#[derive(Deserialize)]
struct RawMetadata {
    #[serde(default)]
    user_id: Option<serde_json::Value>,
}

impl Envelope {
    pub fn parse(body: &[u8]) -> Result<Self, GatewayError> {
        match body.iter().find(|b| !b.is_ascii_whitespace()) {
            None => return Err(GatewayError::BadJson("the body is empty".into())),
            Some(b'{') => {}
            Some(_) => {
                return Err(GatewayError::InvalidRequest(
                    "the body must be a JSON object".into(),
                ))
            }
        }
        let raw: RawEnvelope<'_> = match serde_json::from_slice(body) {
            Ok(r) => r,
            Err(e) if e.is_data() => return Err(GatewayError::InvalidRequest(e.to_string())),
            Err(e) => return Err(GatewayError::BadJson(e.to_string())),
        };
        let Some(model_raw) = raw.model else {
            return Err(GatewayError::ModelNotFound(
                "no model given: set `model` to a name from GET /v1/models".into(),
            ));
        };
        let model: String = serde_json::from_str(model_raw.get())
            .map_err(|_| GatewayError::InvalidRequest("model: expected a string".into()))?;
        if model.is_empty() {
            return Err(GatewayError::ModelNotFound(
                "no model given: set `model` to a name from GET /v1/models".into(),
            ));
        }
        // The raw value borrows from `body`, so its offset is a pointer difference.
        let start = (model_raw.get().as_ptr() as usize).saturating_sub(body.as_ptr() as usize);
        let end = start + model_raw.get().len();
        Ok(Self {
            model,
            stream: raw.stream.unwrap_or(false),
            user: match raw.user.or_else(|| raw.metadata.and_then(|m| m.user_id)) {
                Some(serde_json::Value::String(u)) if !u.is_empty() => Some(u),
                _ => None,
            },
            model_span: (start, end),
        })
    }

    /// The body with only the model replaced; every other byte is kept as sent.
    pub fn with_model(&self, body: &Bytes, model: &str) -> Bytes {
        let (start, end) = self.model_span;
        let quoted = serde_json::Value::String(model.to_owned()).to_string();
        let mut out = BytesMut::with_capacity(body.len() - (end - start) + quoted.len());
        out.extend_from_slice(&body[..start]);
        out.extend_from_slice(quoted.as_bytes());
        out.extend_from_slice(&body[end..]);
        out.freeze()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn model_rewrite_keeps_every_other_byte() {
        let body = Bytes::from_static(
            br#"{ "x-vendor": {"a" : [1,2]},"model" :  "demo/gpt" , "stream":true, "z": 1.50 }"#,
        );
        let env = Envelope::parse(&body).unwrap();
        assert_eq!(env.model, "demo/gpt");
        assert!(env.stream);
        let out = env.with_model(&body, "gpt-4o-\"x\"");
        assert_eq!(
            &out[..],
            br#"{ "x-vendor": {"a" : [1,2]},"model" :  "gpt-4o-\"x\"" , "stream":true, "z": 1.50 }"#
        );
    }

    #[test]
    fn escaped_model_names_are_decoded() {
        let env = Envelope::parse(br#"{"model": "a\/b"}"#).unwrap();
        assert_eq!(env.model, "a/b");
    }

    #[test]
    fn bad_bodies_get_named_errors() {
        assert!(matches!(
            Envelope::parse(b"{\"model\": "),
            Err(GatewayError::BadJson(_))
        ));
        assert!(matches!(
            Envelope::parse(b""),
            Err(GatewayError::BadJson(_))
        ));
        assert!(matches!(
            Envelope::parse(b"{}"),
            Err(GatewayError::ModelNotFound(_))
        ));
        assert!(matches!(
            Envelope::parse(b"{\"model\": 3}"),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            Envelope::parse(b"{\"model\": \"m\", \"stream\": \"yes\"}"),
            Err(GatewayError::InvalidRequest(_))
        ));
        assert!(matches!(
            Envelope::parse(b"[1]"),
            Err(GatewayError::InvalidRequest(_))
        ));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// Any bytes at all get an answer (an envelope or a named error), never a panic, and a
        /// rewrite of any envelope found keeps the body valid JSON with the new model.
        #[test]
        fn any_body_is_parsed_or_refused(prefix in proptest::collection::vec(any::<u8>(), 0..64), model in "\\PC{0,12}") {
            let _ = Envelope::parse(&prefix);
            let body = serde_json::json!({"model": model, "x": String::from_utf8_lossy(&prefix)}).to_string();
            let bytes = Bytes::from(body);
            if let Ok(env) = Envelope::parse(&bytes) {
                let out = env.with_model(&bytes, "new/model \"q\"");
                let v: serde_json::Value = serde_json::from_slice(&out).unwrap();
                prop_assert_eq!(&v["model"], "new/model \"q\"");
                prop_assert_eq!(&v["x"], &serde_json::Value::from(String::from_utf8_lossy(&prefix).into_owned()));
            }
        }
    }
}
