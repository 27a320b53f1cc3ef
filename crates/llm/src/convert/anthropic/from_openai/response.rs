//! OpenAI chat response and errors → Anthropic Messages, for a client speaking Anthropic's API to
//! a model served in another dialect.
//!
//! Reasoning becomes a `thinking` block (with an empty signature: only Anthropic signs thinking),
//! text a `text` block, tool calls `tool_use` blocks, and `finish_reason` the `stop_reason`.
//!
//! Answers are written as JSON values in the shape of Anthropic's published schema, which lists
//! every field (`stop_details`, `container`, `citations`, the usage breakdown…) as present, null
//! when it does not apply; the request-side types in `types::anthropic` leave those out.

use serde_json::{json, Value};

use crate::types::anthropic as a;
use crate::types::openai as o;
use crate::{usage, LlmError};

/// OpenAI `finish_reason` → Anthropic `stop_reason`.
pub fn stop_reason(finish_reason: &str) -> &'static str {
    match finish_reason {
        "length" => "max_tokens",
        "tool_calls" | "function_call" => "tool_use",
        "content_filter" => "refusal",
        _ => "end_turn",
    }
}

/// An Anthropic message id for an upstream response id.
pub fn message_id(upstream: &str) -> String {
    let bare = upstream.strip_prefix("chatcmpl-").unwrap_or(upstream);
    if bare.starts_with("msg_") {
        bare.to_owned()
    } else {
        format!("msg_{bare}")
    }
}

/// Translates a complete chat response (its first choice: Anthropic has one) into a `Message`.
pub fn response(resp: o::ChatResponse, model: &str) -> Result<Value, LlmError> {
    let choice = resp.choices.into_iter().next();
    let mut content = Vec::new();
    let mut finish = None;
    if let Some(c) = choice {
        finish = c.finish_reason;
        let m = c.message;
        if let Some(r) = m.reasoning_content.filter(|r| !r.is_empty()) {
            content.push(thinking_block(&r));
        }
        if let Some(t) = m.content.filter(|t| !t.is_empty()) {
            content.push(text_block(&t));
        }
        if let Some(r) = m.refusal.filter(|r| !r.is_empty()) {
            content.push(text_block(&r));
            finish = Some("content_filter".into());
        }
        for call in m.tool_calls.unwrap_or_default() {
            let input = tool_input(&call.function.name, &call.function.arguments)?;
            content.push(tool_use_block(&call.id, &call.function.name, input));
        }
    }
    let usage = resp
        .usage
        .as_ref()
        .map(usage::to_anthropic)
        .unwrap_or_default();
    Ok(message(
        &message_id(&resp.id),
        model,
        content,
        Some(stop_reason(finish.as_deref().unwrap_or("stop"))),
        &usage,
    ))
}

/// A `Message` with every field the schema lists.
pub(crate) fn message(
    id: &str,
    model: &str,
    content: Vec<Value>,
    stop_reason: Option<&str>,
    usage: &a::Usage,
) -> Value {
    json!({
        "id": id, "type": "message", "role": "assistant", "content": content, "model": model,
        "stop_reason": stop_reason, "stop_sequence": null, "stop_details": null, "container": null,
        "usage": {
            "input_tokens": usage.input_tokens,
            "output_tokens": usage.output_tokens,
            "cache_creation_input_tokens": usage.cache_creation_input_tokens.unwrap_or(0),
            "cache_read_input_tokens": usage.cache_read_input_tokens.unwrap_or(0),
            "cache_creation": null, "inference_geo": null, "output_tokens_details": null,
            "server_tool_use": null, "service_tier": null
        }
    })
}

pub(crate) fn text_block(text: &str) -> Value {
    json!({"type": "text", "text": text, "citations": null})
}

pub(crate) fn thinking_block(thinking: &str) -> Value {
    json!({"type": "thinking", "thinking": thinking, "signature": ""})
}

pub(crate) fn tool_use_block(id: &str, name: &str, input: Value) -> Value {
    json!({"type": "tool_use", "id": id, "name": name, "input": input, "caller": {"type": "direct"}})
}

/// A tool call's arguments as the JSON object Anthropic's `input` is.
pub(crate) fn tool_input(name: &str, arguments: &str) -> Result<Value, LlmError> {
    if arguments.trim().is_empty() {
        return Ok(Value::Object(crate::types::Map::new()));
    }
    serde_json::from_str(arguments).map_err(|source| LlmError::MalformedUpstream {
        what: if name.is_empty() {
            "tool call"
        } else {
            "tool call's arguments"
        },
        source,
    })
}

/// The Anthropic error `type` for an HTTP status.
pub fn error_kind(status: u16) -> &'static str {
    match status {
        400 | 422 => "invalid_request_error",
        401 => "authentication_error",
        402 => "billing_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        408 | 504 => "timeout_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    }
}

/// An error in Anthropic's envelope.
pub fn error(status: u16, message: impl Into<String>, request_id: Option<&str>) -> a::ErrorBody {
    a::ErrorBody {
        kind: "error".into(),
        error: a::ErrorDetail {
            kind: error_kind(status).into(),
            message: message.into(),
        },
        request_id: request_id.map(str::to_owned),
    }
}
