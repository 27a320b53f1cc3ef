//! The OpenAI dialect: chat completions, legacy completions, embeddings, models.

use axum::extract::State as AxState;
use axum::response::Response;
use base64::Engine;
use bytes::Bytes;
use http::HeaderMap;
use serde::Serialize;
use serde_json::{json, Value};

use crate::knobs::Knobs;
use crate::reply::{self, Plan};
use crate::State;

/// A chat completion, written without building a JSON tree.
#[derive(Serialize)]
struct Completion<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    choices: Vec<ChoiceOut<'a>>,
    usage: UsageOut,
    system_fingerprint: &'static str,
}

#[derive(Serialize)]
struct ChoiceOut<'a> {
    index: usize,
    message: MessageOut<'a>,
    logprobs: Option<()>,
    finish_reason: &'static str,
}

#[derive(Serialize)]
struct MessageOut<'a> {
    role: &'static str,
    content: Option<String>,
    refusal: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Vec<Value>>,
}

#[derive(Serialize)]
struct Chunk<'a> {
    id: &'a str,
    object: &'static str,
    created: u64,
    model: &'a str,
    system_fingerprint: &'static str,
    choices: Vec<ChunkChoice<'a>>,
    /// `null` on every chunk when the client asked for usage, the usage on the last.
    #[serde(skip_serializing_if = "Option::is_none")]
    usage: Option<Option<UsageOut>>,
}

#[derive(Serialize)]
struct ChunkChoice<'a> {
    index: usize,
    delta: DeltaOut<'a>,
    logprobs: Option<()>,
    finish_reason: Option<&'static str>,
}

#[derive(Serialize)]
struct DeltaOut<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    content: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    tool_calls: Option<Value>,
}

#[derive(Serialize)]
struct UsageOut {
    prompt_tokens: u64,
    completion_tokens: u64,
    total_tokens: u64,
    prompt_tokens_details: CachedOut,
    completion_tokens_details: ReasoningOut,
}

#[derive(Serialize)]
struct CachedOut {
    cached_tokens: u64,
}

#[derive(Serialize)]
struct ReasoningOut {
    reasoning_tokens: u64,
}

impl UsageOut {
    fn new(prompt: u64, completion: u64) -> Self {
        Self {
            prompt_tokens: prompt,
            completion_tokens: completion,
            total_tokens: prompt + completion,
            prompt_tokens_details: CachedOut { cached_tokens: 0 },
            completion_tokens_details: ReasoningOut {
                reasoning_tokens: 0,
            },
        }
    }
}

/// One chunk of a chat stream, for choice `index`.
fn stream_chunk<'a>(
    id: &'a str,
    created: u64,
    model: &'a str,
    include_usage: bool,
    index: usize,
    delta: DeltaOut<'a>,
    finish_reason: Option<&'static str>,
) -> Chunk<'a> {
    Chunk {
        id,
        object: "chat.completion.chunk",
        created,
        model,
        system_fingerprint: "fp_mock",
        choices: vec![ChunkChoice {
            index,
            delta,
            logprobs: None,
            finish_reason,
        }],
        usage: include_usage.then_some(None),
    }
}

fn error_body(status: u16, message: &str) -> Value {
    let (kind, code) = match status {
        400 if message.ends_with("content_filter") => {
            ("invalid_request_error", json!("content_filter"))
        }
        400 if message.ends_with("context_length_exceeded") => {
            ("invalid_request_error", json!("context_length_exceeded"))
        }
        400 => ("invalid_request_error", Value::Null),
        401 => ("invalid_request_error", json!("invalid_api_key")),
        404 => ("invalid_request_error", json!("model_not_found")),
        429 => ("requests", json!("rate_limit_exceeded")),
        _ => ("server_error", Value::Null),
    };
    json!({"error": {"message": message, "type": kind, "param": null, "code": code}})
}

fn fail(status: u16, message: &str, retry_after: u32) -> Response {
    reply::error(status, &error_body(status, message), retry_after)
}

/// Checks auth, knobs and JSON; returns the parsed body and knobs, or the response to send.
fn prepare(
    state: &crate::MockConfig,
    headers: &HeaderMap,
    body: &Bytes,
) -> Result<(Value, Knobs), Box<Response>> {
    if !reply::key_ok(
        state.expect_key.as_deref(),
        headers,
        &["authorization", "api-key"],
        None,
    ) {
        return Err(Box::new(fail(401, "Incorrect API key provided", 0)));
    }
    let (req, knobs) = reply::prepare(state, headers, body, fail)?;
    if req
        .get("model")
        .and_then(Value::as_str)
        .is_none_or(str::is_empty)
    {
        return Err(Box::new(fail(400, "you must provide a model parameter", 0)));
    }
    Ok((req, knobs))
}

/// The tool to call, if the request offers tools and has not just had one answered.
fn tool_to_call(req: &Value) -> Option<(String, Value)> {
    let tools = req.get("tools")?.as_array()?;
    let choice = req.get("tool_choice");
    if choice.and_then(Value::as_str) == Some("none") {
        return None;
    }
    let last_role = req
        .get("messages")?
        .as_array()?
        .last()?
        .get("role")?
        .as_str()?;
    if last_role == "tool" {
        return None;
    }
    let wanted = choice
        .and_then(|c| c.pointer("/function/name"))
        .and_then(Value::as_str);
    let tool = tools.iter().find(|t| {
        wanted.is_none_or(|w| t.pointer("/function/name").and_then(Value::as_str) == Some(w))
    })?;
    let name = tool.pointer("/function/name")?.as_str()?.to_owned();
    let schema = tool
        .pointer("/function/parameters")
        .cloned()
        .unwrap_or(json!({"type": "object"}));
    Some((name, schema))
}

fn json_schema(req: &Value) -> Option<Value> {
    let format = req.get("response_format")?;
    match format.get("type")?.as_str()? {
        "json_object" => Some(json!({"type": "object"})),
        "json_schema" => Some(
            format
                .pointer("/json_schema/schema")
                .cloned()
                .unwrap_or(json!({"type": "object"})),
        ),
        _ => None,
    }
}

fn finish(plan: &Plan) -> &'static str {
    if plan.tool.is_some() {
        "tool_calls"
    } else if plan.truncated {
        "length"
    } else {
        "stop"
    }
}

pub(crate) async fn chat(AxState(state): State, headers: HeaderMap, body: Bytes) -> Response {
    let (req, knobs) = match prepare(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let Some(messages) = req.get("messages").and_then(Value::as_array) else {
        return fail(400, "messages: expected an array", 0);
    };
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(r) = reply::fault(&knobs, stream, fail).await {
        return r;
    }
    let model = req["model"].as_str().unwrap_or_default();
    let prompt: String = messages
        .iter()
        .map(|m| reply::content_text(m.get("content")))
        .collect();
    let max_tokens = req
        .get("max_completion_tokens")
        .or_else(|| req.get("max_tokens"))
        .and_then(Value::as_u64);
    let n = req.get("n").and_then(Value::as_u64).unwrap_or(1).max(1);
    let tool = tool_to_call(&req);
    let schema = json_schema(&req);
    let plans: Vec<Plan> = (0..n)
        .map(|i| {
            Plan::new(
                &prompt,
                &knobs,
                max_tokens,
                tool.clone(),
                schema.as_ref(),
                i,
            )
        })
        .collect();
    let id = reply::id("chatcmpl-mock", &prompt);
    let created = reply::now();

    if !stream {
        let choices: Vec<ChoiceOut<'_>> = plans
            .iter()
            .enumerate()
            .map(|(i, p)| ChoiceOut {
                index: i,
                message: match &p.tool {
                    Some((name, args)) => MessageOut {
                        role: "assistant",
                        content: None,
                        refusal: None,
                        tool_calls: Some(vec![
                            json!({"id": format!("call_mock{i}"), "type": "function",
                            "function": {"name": name, "arguments": args.to_string()}}),
                        ]),
                    },
                    None => MessageOut {
                        role: "assistant",
                        content: Some(p.text()),
                        refusal: None,
                        tool_calls: None,
                    },
                },
                logprobs: None,
                finish_reason: finish(p),
            })
            .collect();
        let completion_tokens = plans.iter().map(|p| p.completion_tokens).max().unwrap_or(0);
        return reply::json(&Completion {
            id: &id,
            object: "chat.completion",
            created,
            model,
            choices,
            usage: UsageOut::new(plans[0].prompt_tokens, completion_tokens),
            system_fingerprint: "fp_mock",
        });
    }

    let include_usage = req
        .pointer("/stream_options/include_usage")
        .and_then(Value::as_bool)
        == Some(true);
    let chunk = |index, delta, finish_reason| {
        stream_chunk(
            &id,
            created,
            model,
            include_usage,
            index,
            delta,
            finish_reason,
        )
    };
    let mut frames = reply::Frames::with_capacity(plans.iter().map(|p| p.pieces.len() + 4).sum());
    for (i, p) in plans.iter().enumerate() {
        frames.data(&chunk(
            i,
            DeltaOut {
                role: Some("assistant"),
                content: Some(""),
                tool_calls: None,
            },
            None,
        ));
        match &p.tool {
            Some((name, _)) => {
                let start = json!([{"index": 0, "id": format!("call_mock{i}"), "type": "function",
                                    "function": {"name": name, "arguments": ""}}]);
                frames.data(&chunk(
                    i,
                    DeltaOut {
                        role: None,
                        content: None,
                        tool_calls: Some(start),
                    },
                    None,
                ));
                for piece in &p.pieces {
                    let args = json!([{"index": 0, "function": {"arguments": piece}}]);
                    frames.data(&chunk(
                        i,
                        DeltaOut {
                            role: None,
                            content: None,
                            tool_calls: Some(args),
                        },
                        None,
                    ));
                }
            }
            None => {
                for piece in &p.pieces {
                    frames.data(&chunk(
                        i,
                        DeltaOut {
                            role: None,
                            content: Some(piece),
                            tool_calls: None,
                        },
                        None,
                    ));
                }
            }
        }
        frames.data(&chunk(
            i,
            DeltaOut {
                role: None,
                content: None,
                tool_calls: None,
            },
            Some(finish(p)),
        ));
    }
    if include_usage {
        let mut last = chunk(
            0,
            DeltaOut {
                role: None,
                content: None,
                tool_calls: None,
            },
            None,
        );
        last.choices.clear();
        last.usage = Some(Some(UsageOut::new(
            plans[0].prompt_tokens,
            plans[0].completion_tokens,
        )));
        frames.data(&last);
    }
    frames.raw(b"data: [DONE]\n\n");
    let frames = frames.frames;
    reply::sse(frames, &knobs, &state.stats)
}

pub(crate) async fn completions(
    AxState(state): State,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (req, knobs) = match prepare(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let prompt = match req.get("prompt") {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(items)) => items.iter().filter_map(Value::as_str).collect(),
        _ => return fail(400, "prompt: expected a string or an array of strings", 0),
    };
    let stream = req.get("stream").and_then(Value::as_bool).unwrap_or(false);
    if let Some(r) = reply::fault(&knobs, stream, fail).await {
        return r;
    }
    let model = req["model"].as_str().unwrap_or_default().to_owned();
    let plan = Plan::new(
        &prompt,
        &knobs,
        req.get("max_tokens").and_then(Value::as_u64),
        None,
        None,
        0,
    );
    let id = reply::id("cmpl-mock", &prompt);
    let created = reply::now();
    if !stream {
        return reply::json(&json!({
            "id": id, "object": "text_completion", "created": created, "model": model,
            "choices": [{"text": plan.text(), "index": 0, "logprobs": null, "finish_reason": finish(&plan)}],
            "usage": {"prompt_tokens": plan.prompt_tokens, "completion_tokens": plan.completion_tokens,
                      "total_tokens": plan.prompt_tokens + plan.completion_tokens}
        }));
    }
    let mut frames: Vec<Bytes> = plan
        .pieces
        .iter()
        .map(|p| {
            reply::data(
                &json!({"id": id, "object": "text_completion", "created": created, "model": model,
                "choices": [{"text": p, "index": 0, "logprobs": null, "finish_reason": null}]}),
            )
        })
        .collect();
    frames.push(reply::data(
        &json!({"id": id, "object": "text_completion", "created": created, "model": model,
        "choices": [{"text": "", "index": 0, "logprobs": null, "finish_reason": finish(&plan)}]}),
    ));
    frames.push(Bytes::from_static(b"data: [DONE]\n\n"));
    reply::sse(frames, &knobs, &state.stats)
}

pub(crate) async fn embeddings(AxState(state): State, headers: HeaderMap, body: Bytes) -> Response {
    let (req, knobs) = match prepare(&state, &headers, &body) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let inputs: Vec<String> = match req.get("input") {
        Some(Value::String(s)) => vec![s.clone()],
        Some(Value::Array(items)) if items.iter().all(Value::is_string) => items
            .iter()
            .filter_map(Value::as_str)
            .map(str::to_owned)
            .collect(),
        Some(Value::Array(items)) => items.iter().map(Value::to_string).collect(),
        _ => return fail(400, "input: expected a string or an array", 0),
    };
    if let Some(r) = reply::fault(&knobs, false, fail).await {
        return r;
    }
    let dims = req.get("dimensions").and_then(Value::as_u64).unwrap_or(32) as usize;
    let base64 = req.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let data: Vec<Value> = inputs
        .iter()
        .enumerate()
        .map(|(i, text)| {
            let v = crate::text::embedding(text, dims);
            let embedding = if base64 {
                let bytes: Vec<u8> = v.iter().flat_map(|f| f.to_le_bytes()).collect();
                json!(base64::engine::general_purpose::STANDARD.encode(bytes))
            } else {
                json!(v)
            };
            json!({"object": "embedding", "index": i, "embedding": embedding})
        })
        .collect();
    let tokens: u64 = inputs.iter().map(|t| crate::text::prompt_tokens(t)).sum();
    reply::json(&json!({
        "object": "list", "data": data, "model": req["model"],
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens}
    }))
}

pub(crate) async fn models() -> Response {
    let created = reply::now();
    let data: Vec<Value> = ["mock-gpt", "mock-gpt-mini", "mock-embedding"]
        .iter()
        .map(|m| json!({"id": m, "object": "model", "created": created, "owned_by": "gatehouse-mock"}))
        .collect();
    reply::json(&json!({"object": "list", "data": data}))
}

/// Azure OpenAI's deployment routes (`/openai/deployments/{deployment}/…?api-version=…`): the
/// OpenAI answers, behind Azure's required `api-version` and its `api-key` header.
pub(crate) async fn azure(
    state: State,
    axum::extract::Path((_deployment, op)): axum::extract::Path<(String, String)>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let versioned = query.as_deref().is_some_and(|q| {
        q.split('&')
            .any(|kv| kv.starts_with("api-version=") && kv.len() > 12)
    });
    if !versioned {
        let body = serde_json::json!({"error": {"code": "404", "message": "Resource not found"}});
        return reply::error(404, &body, 0);
    }
    match op.as_str() {
        "chat/completions" => chat(state, headers, body).await,
        "completions" => completions(state, headers, body).await,
        "embeddings" => embeddings(state, headers, body).await,
        _ => reply::error(
            404,
            &serde_json::json!({"error": {"code": "404", "message": "Resource not found"}}),
            0,
        ),
    }
}
