//! The Gemini dialect: `generateContent`, `streamGenerateContent` (SSE or JSON array),
//! `batchEmbedContents` and `embedContent`.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State as AxState};
use axum::response::Response;
use bytes::Bytes;
use http::HeaderMap;
use serde_json::{json, Value};

use crate::knobs::Knobs;
use crate::reply::{self, Plan};
use crate::State;

fn fail(status: u16, message: &str, retry_after: u32) -> Response {
    let code = match status {
        400 => "INVALID_ARGUMENT",
        401 => "UNAUTHENTICATED",
        403 => "PERMISSION_DENIED",
        404 => "NOT_FOUND",
        429 => "RESOURCE_EXHAUSTED",
        503 => "UNAVAILABLE",
        504 => "DEADLINE_EXCEEDED",
        _ => "INTERNAL",
    };
    let body = json!({"error": {"code": status, "message": message, "status": code}});
    reply::error(status, &body, retry_after)
}

pub(crate) async fn dispatch(
    AxState(state): State,
    Path(model_action): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some((model, action)) = model_action.split_once(':') else {
        return fail(404, &format!("unknown method models/{model_action}"), 0);
    };
    if !reply::key_ok(
        state.expect_key.as_deref(),
        &headers,
        &["x-goog-api-key"],
        query.get("key").map(String::as_str),
    ) {
        return fail(401, "API key not valid. Please pass a valid API key.", 0);
    }
    let (req, knobs) = match reply::prepare(&state, &headers, &body, fail) {
        Ok(v) => v,
        Err(r) => return *r,
    };
    let stream = action == "streamGenerateContent";
    if let Some(r) = reply::fault(&knobs, stream, fail).await {
        return r;
    }
    match action {
        "generateContent" | "streamGenerateContent" => {
            let sse = query.get("alt").map(String::as_str) == Some("sse");
            generate(model, &req, &knobs, stream, sse, &state.stats)
        }
        "batchEmbedContents" => {
            let Some(requests) = req.get("requests").and_then(Value::as_array) else {
                return fail(400, "requests: expected an array", 0);
            };
            let embeddings: Vec<Value> = requests.iter().map(embed_one).collect();
            reply::json(&json!({"embeddings": embeddings}))
        }
        "embedContent" => reply::json(&json!({"embedding": embed_one(&req)})),
        other => fail(404, &format!("unknown method {other}"), 0),
    }
}

fn embed_one(req: &Value) -> Value {
    let text: String = req
        .pointer("/content/parts")
        .and_then(Value::as_array)
        .map(|parts| {
            parts
                .iter()
                .filter_map(|p| p.get("text").and_then(Value::as_str))
                .collect()
        })
        .unwrap_or_default();
    let dims = req
        .get("outputDimensionality")
        .and_then(Value::as_u64)
        .unwrap_or(32) as usize;
    json!({"values": crate::text::embedding(&text, dims)})
}

/// The function to call, if declared, allowed and not just answered.
fn tool_to_call(req: &Value) -> Option<(String, Value)> {
    let decls = req
        .get("tools")?
        .as_array()?
        .iter()
        .filter_map(|t| t.get("functionDeclarations").and_then(Value::as_array))
        .flatten()
        .collect::<Vec<_>>();
    let config = req.pointer("/toolConfig/functionCallingConfig");
    if config.and_then(|c| c.get("mode")).and_then(Value::as_str) == Some("NONE") {
        return None;
    }
    let last = req.get("contents")?.as_array()?.last()?;
    let answered = last
        .get("parts")
        .and_then(Value::as_array)
        .is_some_and(|parts| parts.iter().any(|p| p.get("functionResponse").is_some()));
    if answered {
        return None;
    }
    let wanted = config
        .and_then(|c| c.pointer("/allowedFunctionNames/0"))
        .and_then(Value::as_str);
    let decl = decls
        .into_iter()
        .find(|d| wanted.is_none_or(|w| d.get("name").and_then(Value::as_str) == Some(w)))?;
    let schema = decl
        .get("parametersJsonSchema")
        .or_else(|| decl.get("parameters"))
        .cloned()
        .unwrap_or(json!({"type": "object"}));
    Some((decl.get("name")?.as_str()?.to_owned(), schema))
}

fn generate(
    model: &str,
    req: &Value,
    knobs: &Knobs,
    stream: bool,
    sse: bool,
    stats: &Arc<crate::Stats>,
) -> Response {
    let Some(contents) = req.get("contents").and_then(Value::as_array) else {
        return fail(400, "contents: required", 0);
    };
    let mut prompt = String::new();
    for c in req
        .get("systemInstruction")
        .into_iter()
        .chain(contents.iter())
    {
        for p in c
            .get("parts")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            if let Some(t) = p.get("text").and_then(Value::as_str) {
                prompt.push_str(t);
            }
        }
    }
    let config = req.get("generationConfig");
    let max_tokens = config
        .and_then(|c| c.get("maxOutputTokens"))
        .and_then(Value::as_u64);
    let schema = match config
        .and_then(|c| c.get("responseMimeType"))
        .and_then(Value::as_str)
    {
        Some("application/json") => Some(
            config
                .and_then(|c| {
                    c.get("responseJsonSchema")
                        .or_else(|| c.get("responseSchema"))
                })
                .cloned()
                .unwrap_or(json!({"type": "object"})),
        ),
        _ => None,
    };
    let n = config
        .and_then(|c| c.get("candidateCount"))
        .and_then(Value::as_u64)
        .unwrap_or(1)
        .max(1);
    let tool = tool_to_call(req);
    let plans: Vec<Plan> = (0..n)
        .map(|i| Plan::new(&prompt, knobs, max_tokens, tool.clone(), schema.as_ref(), i))
        .collect();
    let response_id = reply::id("mock", &prompt);
    let finish = |p: &Plan| if p.truncated { "MAX_TOKENS" } else { "STOP" };
    let usage = |p: &Plan| {
        json!({"promptTokenCount": p.prompt_tokens, "candidatesTokenCount": p.completion_tokens,
                                  "totalTokenCount": p.prompt_tokens + p.completion_tokens})
    };
    let part = |p: &Plan, text: &str| match &p.tool {
        Some((name, args)) => json!({"functionCall": {"name": name, "args": args}}),
        None => json!({"text": text}),
    };

    if !stream {
        let candidates: Vec<Value> = plans
            .iter()
            .enumerate()
            .map(|(i, p)| {
                json!({"content": {"role": "model", "parts": [part(p, &p.text())]},
                                 "finishReason": finish(p), "index": i})
            })
            .collect();
        return reply::json(
            &json!({"candidates": candidates, "usageMetadata": usage(&plans[0]),
                                   "modelVersion": model, "responseId": response_id}),
        );
    }

    let mut chunks = Vec::new();
    for (i, p) in plans.iter().enumerate() {
        // Gemini sends a function call whole, in one chunk.
        let pieces: Vec<Cow<'static, str>> = if p.tool.is_some() {
            vec![Cow::Borrowed("")]
        } else {
            p.pieces.clone()
        };
        let last = pieces.len().saturating_sub(1);
        for (j, piece) in pieces.iter().enumerate() {
            let mut cand =
                json!({"content": {"role": "model", "parts": [part(p, piece)]}, "index": i});
            let mut chunk = json!({"modelVersion": model, "responseId": response_id});
            if j == last {
                cand["finishReason"] = json!(finish(p));
                chunk["usageMetadata"] = usage(p);
            }
            chunk["candidates"] = json!([cand]);
            chunks.push(chunk);
        }
    }
    if sse {
        let frames = chunks.iter().map(reply::data).collect();
        return reply::sse(frames, knobs, stats);
    }
    // Without `alt=sse` Gemini streams one JSON array; the mock sends it in one piece.
    let mut frames = vec![Bytes::from_static(b"[")];
    for (i, c) in chunks.iter().enumerate() {
        if i > 0 {
            frames.push(Bytes::from_static(b",\n"));
        }
        frames.push(Bytes::from(serde_json::to_vec(c).unwrap_or_default()));
    }
    frames.push(Bytes::from_static(b"]"));
    reply::paced(frames, knobs, "application/json", stats)
}
