//! The Anthropic Messages dialect, streaming included (the full event sequence).

use axum::extract::State as AxState;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::reply::{self, Plan};
use crate::State;

fn fail(status: u16, message: &str, retry_after: u32) -> Response {
    let kind = match status {
        400 => "invalid_request_error",
        401 => "authentication_error",
        403 => "permission_error",
        404 => "not_found_error",
        413 => "request_too_large",
        429 => "rate_limit_error",
        503 | 529 => "overloaded_error",
        _ => "api_error",
    };
    let body = json!({"type": "error", "error": {"type": kind, "message": message}, "request_id": "req_mock"});
    reply::error(status, &body, retry_after)
}

/// The tool to call, if tools are offered and the last turn is not a tool result.
fn tool_to_call(req: &Value) -> Option<(String, Value)> {
    let tools = req.get("tools")?.as_array()?;
    let choice = req.get("tool_choice");
    if choice.and_then(|c| c.get("type")).and_then(Value::as_str) == Some("none") {
        return None;
    }
    let last = req.get("messages")?.as_array()?.last()?;
    let answered = last
        .get("content")
        .and_then(Value::as_array)
        .is_some_and(|blocks| {
            blocks
                .iter()
                .any(|b| b.get("type").and_then(Value::as_str) == Some("tool_result"))
        });
    if answered {
        return None;
    }
    let wanted = choice
        .filter(|c| c.get("type").and_then(Value::as_str) == Some("tool"))
        .and_then(|c| c.get("name"))
        .and_then(Value::as_str);
    let tool = tools
        .iter()
        .find(|t| wanted.is_none_or(|w| t.get("name").and_then(Value::as_str) == Some(w)))?;
    Some((
        tool.get("name")?.as_str()?.to_owned(),
        tool.get("input_schema")
            .cloned()
            .unwrap_or(json!({"type": "object"})),
    ))
}

/// `POST /v1/messages/count_tokens`: the prompt's tokens, counted as `messages` counts them.
/// It echoes the `anthropic-beta` header it saw (`x-mock-anthropic-beta`) so tests can see
/// what reached it.
pub(crate) async fn count_tokens(
    AxState(state): State,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !reply::key_ok(
        state.expect_key.as_deref(),
        &headers,
        &["x-api-key", "authorization"],
        None,
    ) {
        return fail(401, "invalid x-api-key", 0);
    }
    if !headers.contains_key("anthropic-version") {
        return fail(400, "anthropic-version: header is required", 0);
    }
    let (req, _) = match reply::prepare(&state, &headers, &body, fail) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return fail(400, "messages: Field required", 0);
    };
    let mut prompt = reply::content_text(req.get("system"));
    for m in messages {
        prompt.push_str(&reply::content_text(m.get("content")));
    }
    reply::json(&json!({"input_tokens": crate::text::prompt_tokens(&prompt)}))
}

pub(crate) async fn messages(AxState(state): State, headers: HeaderMap, body: Bytes) -> Response {
    // The API takes `x-api-key` or, as the 2.x SDKs send it, `Authorization: Bearer`.
    if !reply::key_ok(
        state.expect_key.as_deref(),
        &headers,
        &["x-api-key", "authorization"],
        None,
    ) {
        return fail(401, "invalid x-api-key", 0);
    }
    if !headers.contains_key("anthropic-version") {
        return fail(400, "anthropic-version: header is required", 0);
    }
    let (req, knobs) = match reply::prepare(&state, &headers, &body, fail) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(max_tokens) = req.get("max_tokens").and_then(Value::as_u64) else {
        return fail(400, "max_tokens: Field required", 0);
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return fail(400, "messages: Field required", 0);
    };
    for pair in messages.windows(2) {
        if pair[0].get("role") == pair[1].get("role") {
            return fail(
                400,
                "messages: roles must alternate between \"user\" and \"assistant\"",
                0,
            );
        }
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(r) = reply::fault(&knobs, stream, fail).await {
        return r;
    }

    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    let mut prompt = reply::content_text(req.get("system"));
    for m in messages {
        prompt.push_str(&reply::content_text(m.get("content")));
    }
    let plan = Plan::new(
        &prompt,
        &knobs,
        Some(max_tokens),
        tool_to_call(&req),
        None,
        0,
    );
    let thinking = req.pointer("/thinking/type").and_then(Value::as_str) == Some("enabled");
    let id = reply::id("msg_mock", &prompt);
    let stop_reason = if plan.tool.is_some() {
        "tool_use"
    } else if plan.truncated {
        "max_tokens"
    } else {
        "end_turn"
    };
    let usage = |output: u64| {
        json!({"input_tokens": plan.prompt_tokens, "output_tokens": output,
               "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0, "cache_creation": null,
               "inference_geo": null, "output_tokens_details": null, "server_tool_use": null,
               "service_tier": "standard"})
    };
    let thought = "Let me think about this.";

    if !stream {
        let mut content = Vec::new();
        if thinking {
            content.push(
                json!({"type": "thinking", "thinking": thought, "signature": "mock-signature"}),
            );
        }
        content.push(match &plan.tool {
            Some((name, args)) => json!({"type": "tool_use", "id": "toolu_mock0", "name": name,
                                         "input": args, "caller": {"type": "direct"}}),
            None => json!({"type": "text", "text": plan.text(), "citations": null}),
        });
        return reply::json(&json!({
            "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
            "stop_reason": stop_reason, "stop_sequence": null, "stop_details": null, "container": null,
            "usage": usage(plan.completion_tokens)
        }));
    }

    let mut frames = vec![
        reply::event(
            "message_start",
            &json!({"type": "message_start", "message": {
            "id": id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": null, "stop_sequence": null, "stop_details": null, "container": null,
            "usage": usage(1)}}),
        ),
        reply::event("ping", &json!({"type": "ping"})),
    ];
    let mut index = 0;
    if thinking {
        frames.push(reply::event(
            "content_block_start",
            &json!({"type": "content_block_start", "index": index,
            "content_block": {"type": "thinking", "thinking": "", "signature": ""}}),
        ));
        frames.push(reply::event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "thinking_delta", "thinking": thought}}),
        ));
        frames.push(reply::event(
            "content_block_delta",
            &json!({"type": "content_block_delta", "index": index,
            "delta": {"type": "signature_delta", "signature": "mock-signature"}}),
        ));
        frames.push(reply::event(
            "content_block_stop",
            &json!({"type": "content_block_stop", "index": index}),
        ));
        index += 1;
    }
    match &plan.tool {
        Some((name, _)) => {
            frames.push(reply::event("content_block_start", &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "tool_use", "id": "toolu_mock0", "name": name, "input": {},
                                  "caller": {"type": "direct"}}})));
            for piece in &plan.pieces {
                frames.push(reply::event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "input_json_delta", "partial_json": piece}}),
                ));
            }
        }
        None => {
            frames.push(reply::event(
                "content_block_start",
                &json!({"type": "content_block_start", "index": index,
                "content_block": {"type": "text", "text": "", "citations": null}}),
            ));
            for piece in &plan.pieces {
                frames.push(reply::event(
                    "content_block_delta",
                    &json!({"type": "content_block_delta", "index": index,
                    "delta": {"type": "text_delta", "text": piece}}),
                ));
            }
        }
    }
    frames.push(reply::event(
        "content_block_stop",
        &json!({"type": "content_block_stop", "index": index}),
    ));
    frames.push(reply::event(
        "message_delta",
        &json!({"type": "message_delta",
        "delta": {"stop_reason": stop_reason, "stop_sequence": null, "stop_details": null,
                  "container": null},
        "usage": {"input_tokens": plan.prompt_tokens, "output_tokens": plan.completion_tokens,
                  "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                  "output_tokens_details": null, "server_tool_use": null}}),
    ));
    frames.push(reply::event(
        "message_stop",
        &json!({"type": "message_stop"}),
    ));
    reply::sse(frames, &knobs, &state.stats)
}
