//! Translations between dialects: `convert::<target>::from_<source>`.
//!
//! Requests go from the canonical OpenAI chat shape to the provider's dialect; responses, stream
//! events and errors come back the other way. Every pair offers the same verbs: `request`,
//! `response`, a stream state struct with `on_event`/`finish`, and `error`.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod responses;

/// Seconds since the Unix epoch, for the `created` field of OpenAI responses.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What a request translation did beyond the one-to-one mapping, for the gateway to act on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestNotes {
    /// Parameters the target dialect has no place for and that were left out (reported to the
    /// client in `x-gatehouse-dropped-params`).
    pub dropped: Vec<String>,
    /// `response_format` was expressed as a forced tool call; its input is the answer's content.
    pub json_tool: Option<String>,
}

/// Splits a `data:` URL into its media type and base64 payload.
pub(crate) fn parse_data_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("data:")?;
    let (meta, data) = rest.split_once(',')?;
    let media_type = meta.strip_suffix(";base64")?;
    Some((media_type, data))
}

/// Guesses an image's media type from the extension of its URL.
pub(crate) fn media_type_of(url: &str) -> &'static str {
    let path = url
        .split(['?', '#'])
        .next()
        .unwrap_or(url)
        .to_ascii_lowercase();
    match path.rsplit('.').next() {
        Some("png") => "image/png",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("pdf") => "application/pdf",
        _ => "image/jpeg",
    }
}

/// Parses a tool call's `arguments` string into JSON; the empty string is an empty object.
pub(crate) fn parse_arguments(
    name: &str,
    arguments: &str,
) -> Result<serde_json::Value, crate::LlmError> {
    if arguments.trim().is_empty() {
        return Ok(serde_json::Value::Object(types::Map::new()));
    }
    serde_json::from_str(arguments).map_err(|e| {
        crate::LlmError::Invalid(format!(
            "the arguments of tool call `{name}` are not valid JSON: {e}"
        ))
    })
}

use crate::types;

/// What the response side of a translation needs to know about the call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseContext {
    /// The model name to show in the response (the served upstream model).
    pub model: String,
    /// `created` of the response and of every chunk.
    pub created: u64,
    /// The forced tool that carries a `response_format` answer, if the request used one.
    pub json_tool: Option<String>,
    /// Whether the client asked for a final usage chunk.
    pub include_usage: bool,
    /// Prompt tokens counted by Gatehouse, reported (with counted output) when the upstream
    /// gives no usage.
    pub prompt_tokens: Option<u64>,
}

/// One thing a translated stream emits to an OpenAI client.
#[derive(Debug, Clone, PartialEq)]
pub enum StreamOut {
    Chunk(types::openai::ChatChunk),
    /// Ends the stream with an error event in the OpenAI shape.
    Error(types::openai::ErrorBody),
}

/// The OpenAI error `type` and `code` that go with an HTTP status.
pub fn openai_error_kind(status: u16) -> (&'static str, Option<&'static str>) {
    match status {
        400 | 413 | 422 => ("invalid_request_error", None),
        401 => ("authentication_error", Some("invalid_api_key")),
        403 => ("permission_error", None),
        404 => ("not_found_error", None),
        408 | 504 => ("timeout_error", None),
        429 => ("rate_limit_error", Some("rate_limit_exceeded")),
        _ => ("server_error", None),
    }
}

/// A chunk with the common fields filled in.
pub(crate) fn chunk(
    ctx: &ResponseContext,
    id: &str,
    choices: Vec<types::openai::ChunkChoice>,
) -> types::openai::ChatChunk {
    types::openai::ChatChunk {
        id: id.to_owned(),
        object: "chat.completion.chunk".into(),
        created: ctx.created,
        model: ctx.model.clone(),
        choices,
        usage: ctx.include_usage.then_some(None),
    }
}

/// A chunk carrying one delta for choice `index`.
pub(crate) fn delta_chunk(
    ctx: &ResponseContext,
    id: &str,
    index: u32,
    delta: types::openai::Delta,
    finish_reason: Option<String>,
) -> types::openai::ChatChunk {
    chunk(
        ctx,
        id,
        vec![types::openai::ChunkChoice {
            index,
            delta,
            finish_reason,
            logprobs: None,
        }],
    )
}

/// The last chunk of a stream whose client asked for usage: no choices, only usage.
pub(crate) fn usage_chunk(
    ctx: &ResponseContext,
    id: &str,
    usage: types::openai::Usage,
) -> types::openai::ChatChunk {
    let mut c = chunk(ctx, id, Vec::new());
    c.usage = Some(Some(usage));
    c
}

#[cfg(test)]
mod tests;
