//! Amazon Bedrock's Converse API: `POST /model/{modelId}/converse` and `converse-stream` (the
//! binary AWS event stream). Calls must be signed with SigV4 by the expected access key
//! (`Credential=<key>/…/bedrock/aws4_request`) or carry it as a Bedrock API key (bearer).

use aws_smithy_types::event_stream::{Header, HeaderValue, Message};
use axum::extract::{Path, State as AxState};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::reply::{self, Plan};
use crate::State;

fn fail(status: u16, message: &str, retry_after: u32) -> Response {
    let kind = match status {
        400 => "ValidationException",
        401 | 403 => "AccessDeniedException",
        404 => "ResourceNotFoundException",
        429 => "ThrottlingException",
        503 => "ServiceUnavailableException",
        _ => "InternalServerException",
    };
    let mut r = reply::error(status, &json!({"message": message}), retry_after);
    if let Ok(v) = http::HeaderValue::from_str(kind) {
        r.headers_mut().insert("x-amzn-errortype", v);
    }
    r
}

fn authorised(expect: Option<&str>, headers: &HeaderMap) -> bool {
    let Some(key) = expect else { return true };
    let auth = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if auth == format!("Bearer {key}") {
        return true;
    }
    auth.starts_with(&format!("AWS4-HMAC-SHA256 Credential={key}/"))
        && auth.contains("/bedrock/aws4_request")
        && auth.contains("Signature=")
        && headers.contains_key("x-amz-date")
}

fn frame(event_type: &str, payload: &Value) -> Bytes {
    let message = Message::new(Bytes::from(payload.to_string()))
        .add_header(Header::new(
            ":event-type",
            HeaderValue::String(event_type.to_owned().into()),
        ))
        .add_header(Header::new(
            ":content-type",
            HeaderValue::String("application/json".to_owned().into()),
        ))
        .add_header(Header::new(
            ":message-type",
            HeaderValue::String("event".to_owned().into()),
        ));
    let mut out = Vec::new();
    let _ = aws_smithy_eventstream::frame::write_message_to(&message, &mut out);
    Bytes::from(out)
}

/// The tool to call, if tools are offered and the last turn is not a tool result.
fn tool_to_call(req: &Value) -> Option<(String, Value)> {
    let config = req.get("toolConfig")?;
    let tools = config.get("tools")?.as_array()?;
    let answered = req
        .get("messages")
        .and_then(Value::as_array)
        .and_then(|m| m.last())
        .and_then(|m| m.get("content"))
        .and_then(Value::as_array)
        .is_some_and(|blocks| blocks.iter().any(|b| b.get("toolResult").is_some()));
    if answered {
        return None;
    }
    let wanted = config
        .pointer("/toolChoice/tool/name")
        .and_then(Value::as_str);
    let spec = tools
        .iter()
        .filter_map(|t| t.get("toolSpec"))
        .find(|s| wanted.is_none_or(|w| s.get("name").and_then(Value::as_str) == Some(w)))?;
    Some((
        spec.get("name")?.as_str()?.to_owned(),
        spec.pointer("/inputSchema/json")
            .cloned()
            .unwrap_or(json!({"type": "object"})),
    ))
}

pub(crate) async fn converse(
    AxState(state): State,
    Path((_model, action)): Path<(String, String)>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !authorised(state.expect_key.as_deref(), &headers) {
        return fail(
            403,
            "The security token included in the request is invalid.",
            0,
        );
    }
    let stream = match action.as_str() {
        "converse" => false,
        "converse-stream" => true,
        _ => return fail(404, "Unknown operation", 0),
    };
    let (req, knobs) = match reply::prepare(&state, &headers, &body, fail) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return fail(
            400,
            "1 validation error detected: messages must not be null",
            0,
        );
    };
    for pair in messages.windows(2) {
        if pair[0].get("role") == pair[1].get("role") {
            return fail(
                400,
                "A conversation must alternate between user and assistant roles.",
                0,
            );
        }
    }
    if let Some(r) = reply::fault(&knobs, stream, fail).await {
        return r;
    }
    let mut prompt = String::new();
    for block in req
        .get("system")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        prompt.push_str(
            block
                .get("text")
                .and_then(Value::as_str)
                .unwrap_or_default(),
        );
    }
    for m in messages {
        for block in m
            .get("content")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            prompt.push_str(
                block
                    .get("text")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
            );
        }
    }
    let max_tokens = req
        .pointer("/inferenceConfig/maxTokens")
        .and_then(Value::as_u64);
    let plan = Plan::new(&prompt, &knobs, max_tokens, tool_to_call(&req), None, 0);
    let stop = if plan.tool.is_some() {
        "tool_use"
    } else if plan.truncated {
        "max_tokens"
    } else {
        "end_turn"
    };
    let usage = json!({"inputTokens": plan.prompt_tokens, "outputTokens": plan.completion_tokens,
                       "totalTokens": plan.prompt_tokens + plan.completion_tokens});
    if !stream {
        let content = match &plan.tool {
            Some((name, args)) => {
                json!([{"toolUse": {"toolUseId": "tooluse_mock0", "name": name, "input": args}}])
            }
            None => json!([{"text": plan.text()}]),
        };
        return reply::json(&json!({
            "output": {"message": {"role": "assistant", "content": content}},
            "stopReason": stop, "usage": usage, "metrics": {"latencyMs": 1}
        }));
    }
    let mut frames = vec![frame("messageStart", &json!({"role": "assistant"}))];
    match &plan.tool {
        Some((name, _)) => {
            frames.push(frame("contentBlockStart", &json!({"start": {"toolUse": {"toolUseId": "tooluse_mock0", "name": name}}, "contentBlockIndex": 0})));
            for piece in &plan.pieces {
                frames.push(frame(
                    "contentBlockDelta",
                    &json!({"delta": {"toolUse": {"input": piece}}, "contentBlockIndex": 0}),
                ));
            }
        }
        None => {
            for piece in &plan.pieces {
                frames.push(frame(
                    "contentBlockDelta",
                    &json!({"delta": {"text": piece}, "contentBlockIndex": 0}),
                ));
            }
        }
    }
    frames.push(frame("contentBlockStop", &json!({"contentBlockIndex": 0})));
    frames.push(frame("messageStop", &json!({"stopReason": stop})));
    frames.push(frame(
        "metadata",
        &json!({"usage": usage, "metrics": {"latencyMs": 1}}),
    ));
    reply::paced(
        frames,
        &knobs,
        "application/vnd.amazon.eventstream",
        &state.stats,
    )
    .into_response()
}
