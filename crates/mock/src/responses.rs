//! OpenAI's Responses API (`POST /v1/responses`), stateless: a `response` object with `message`
//! or `function_call` output items, and the typed stream events in OpenAI's order.

use axum::extract::State as AxState;
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::reply::{self, Plan};
use crate::State;

fn fail(status: u16, message: &str, retry_after: u32) -> Response {
    let kind = match status {
        400 | 404 | 422 => "invalid_request_error",
        401 => "authentication_error",
        429 => "rate_limit_error",
        _ => "server_error",
    };
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": null}});
    reply::error(status, &body, retry_after)
}

/// The text of `input` (a string, or the text of its items).
fn input_text(input: Option<&Value>) -> String {
    match input {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items
            .iter()
            .map(|i| {
                let mut t = reply::content_text(i.get("content"));
                if let Some(o) = i.get("output").and_then(Value::as_str) {
                    t.push_str(o);
                }
                t
            })
            .collect(),
        _ => String::new(),
    }
}

/// The function to call, if tools are offered and the last input item is not a call's output.
fn tool_to_call(req: &Value) -> Option<(String, Value)> {
    let tools = req.get("tools")?.as_array()?;
    let choice = req.get("tool_choice");
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let answered = req
        .get("input")
        .and_then(Value::as_array)
        .and_then(|items| items.last())
        .and_then(|i| i.get("type"))
        .and_then(Value::as_str)
        == Some("function_call_output");
    if answered {
        return None;
    }
    let wanted = choice.and_then(|c| c.get("name")).and_then(Value::as_str);
    let tool = tools.iter().find(|t| {
        t.get("type").and_then(Value::as_str) == Some("function")
            && wanted.is_none_or(|w| t.get("name").and_then(Value::as_str) == Some(w))
    })?;
    Some((
        tool.get("name")?.as_str()?.to_owned(),
        tool.get("parameters")
            .cloned()
            .unwrap_or(json!({"type": "object"})),
    ))
}

pub(crate) async fn create(AxState(state): State, headers: HeaderMap, body: Bytes) -> Response {
    if !reply::key_ok(
        state.expect_key.as_deref(),
        &headers,
        &["authorization"],
        None,
    ) {
        return fail(401, "Incorrect API key provided", 0);
    }
    let (req, knobs) = match reply::prepare(&state, &headers, &body, fail) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let model = req
        .get("model")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    if model.is_empty() {
        return fail(400, "Missing required parameter: 'model'.", 0);
    }
    if req.get("input").is_none() {
        return fail(400, "Missing required parameter: 'input'.", 0);
    }
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(r) = reply::fault(&knobs, stream, fail).await {
        return r;
    }
    let mut prompt = req
        .get("instructions")
        .and_then(Value::as_str)
        .unwrap_or_default()
        .to_owned();
    prompt.push_str(&input_text(req.get("input")));
    let max_tokens = req.get("max_output_tokens").and_then(Value::as_u64);
    let plan = Plan::new(&prompt, &knobs, max_tokens, tool_to_call(&req), None, 0);
    let id = reply::id("resp_mock", &prompt);
    let created = reply::now();
    let item_id = format!("{}_0", id.replacen("resp_", "msg_", 1));
    let usage = json!({"input_tokens": plan.prompt_tokens, "input_tokens_details": {"cached_tokens": 0},
                       "output_tokens": plan.completion_tokens, "output_tokens_details": {"reasoning_tokens": 0},
                       "total_tokens": plan.prompt_tokens + plan.completion_tokens});
    let item = |done: bool| match &plan.tool {
        Some((name, args)) => {
            json!({"type": "function_call", "id": item_id, "call_id": "call_mock0",
            "name": name, "arguments": if done { args.to_string() } else { String::new() },
            "status": if done { "completed" } else { "in_progress" }})
        }
        None => json!({"type": "message", "id": item_id, "role": "assistant",
            "status": if done { "completed" } else { "in_progress" },
            "content": if done { json!([{"type": "output_text", "text": plan.text(), "annotations": [], "logprobs": []}]) } else { json!([]) }}),
    };
    // Function tools are repeated with every field the schema lists.
    let tools: Vec<Value> = req
        .get("tools")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .map(|t| {
            let mut t = t.clone();
            for k in ["strict", "parameters", "description"] {
                if t.get(k).is_none() {
                    t[k] = Value::Null;
                }
            }
            t
        })
        .collect();
    let response = |status: &str, output: Vec<Value>, usage: Option<Value>| {
        let (status, incomplete) = if status == "completed" && plan.truncated {
            ("incomplete", json!({"reason": "max_output_tokens"}))
        } else {
            (status, Value::Null)
        };
        let mut r = json!({"id": id, "object": "response", "created_at": created, "status": status,
               "error": null, "incomplete_details": incomplete, "instructions": req.get("instructions"),
               "max_output_tokens": max_tokens, "model": model, "output": output,
               "parallel_tool_calls": true, "previous_response_id": null,
               "reasoning": {"effort": null, "summary": null}, "store": false, "temperature": 1.0,
               "text": {"format": {"type": "text"}}, "tool_choice": req.get("tool_choice").cloned().unwrap_or(json!("auto")),
               "tools": tools, "top_p": 1.0, "truncation": "disabled",
               "metadata": {}});
        if let Some(u) = usage {
            r["usage"] = u;
        }
        r
    };
    if !stream {
        return reply::json(&response("completed", vec![item(true)], Some(usage)));
    }

    let mut seq = 0u64;
    let mut frames = Vec::with_capacity(plan.pieces.len() + 8);
    let mut push = |kind: &str, mut v: Value| {
        v["type"] = json!(kind);
        v["sequence_number"] = json!(seq);
        seq += 1;
        frames.push(reply::event(kind, &v));
    };
    push(
        "response.created",
        json!({"response": response("in_progress", vec![], None)}),
    );
    push(
        "response.in_progress",
        json!({"response": response("in_progress", vec![], None)}),
    );
    push(
        "response.output_item.added",
        json!({"output_index": 0, "item": item(false)}),
    );
    match &plan.tool {
        Some((name, args)) => {
            for piece in &plan.pieces {
                push(
                    "response.function_call_arguments.delta",
                    json!({"item_id": item_id, "output_index": 0, "delta": piece}),
                );
            }
            push(
                "response.function_call_arguments.done",
                json!({"item_id": item_id, "output_index": 0, "name": name, "arguments": args.to_string()}),
            );
        }
        None => {
            let part = |text: &str| json!({"type": "output_text", "text": text, "annotations": [], "logprobs": []});
            push(
                "response.content_part.added",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part("")}),
            );
            for piece in &plan.pieces {
                push(
                    "response.output_text.delta",
                    json!({"item_id": item_id, "output_index": 0, "content_index": 0, "delta": piece, "logprobs": []}),
                );
            }
            let text = plan.text();
            push(
                "response.output_text.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "text": text, "logprobs": []}),
            );
            push(
                "response.content_part.done",
                json!({"item_id": item_id, "output_index": 0, "content_index": 0, "part": part(&text)}),
            );
        }
    }
    push(
        "response.output_item.done",
        json!({"output_index": 0, "item": item(true)}),
    );
    let done = response("completed", vec![item(true)], Some(usage));
    let kind = if done["status"] == "completed" {
        "response.completed"
    } else {
        "response.incomplete"
    };
    push(kind, json!({"response": done}));
    reply::sse(frames, &knobs, &state.stats)
}
