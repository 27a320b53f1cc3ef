//! Gemini response, stream, embeddings and error → OpenAI.
//!
//! Candidates become choices; `functionCall` parts become `tool_calls` (Gemini sends each call
//! whole, so a stream carries its arguments in one delta); thought parts become
//! `reasoning_content`; `finishReason` maps to `finish_reason`. Gemini has no end-of-stream event:
//! a stream is complete once every candidate has a finish reason.

use std::collections::BTreeMap;

use base64::Engine;

use crate::convert::{delta_chunk, openai_error_kind, usage_chunk, ResponseContext, StreamOut};
use crate::types::gemini as g;
use crate::types::openai as o;
use crate::usage;

/// Gemini `finishReason` → OpenAI `finish_reason`.
pub fn finish_reason(reason: &str, has_tool_calls: bool) -> &'static str {
    match reason {
        "MAX_TOKENS" => "length",
        "SAFETY"
        | "RECITATION"
        | "BLOCKLIST"
        | "PROHIBITED_CONTENT"
        | "SPII"
        | "IMAGE_SAFETY"
        | "IMAGE_PROHIBITED_CONTENT" => "content_filter",
        _ if has_tool_calls => "tool_calls",
        _ => "stop",
    }
}

/// Gemini `logprobsResult` → OpenAI `logprobs` (`{"content": [{token, logprob, bytes, top_logprobs}]}`).
pub fn logprobs(r: &g::LogprobsResult) -> serde_json::Value {
    let entry = |c: &g::LogprobsCandidate| serde_json::json!({"token": c.token, "logprob": c.log_probability, "bytes": c.token.as_bytes()});
    let content: Vec<serde_json::Value> = r
        .chosen_candidates
        .iter()
        .enumerate()
        .map(|(i, chosen)| {
            let top: Vec<serde_json::Value> = r
                .top_candidates
                .get(i)
                .map(|t| t.candidates.iter().map(entry).collect())
                .unwrap_or_default();
            let mut e = entry(chosen);
            e["top_logprobs"] = serde_json::Value::from(top);
            e
        })
        .collect();
    serde_json::json!({"content": content, "refusal": null})
}

/// A tool call id for Gemini calls, which often carry none: stable within one response.
fn call_id(response_id: &str, choice: u32, n: usize) -> String {
    format!("call_{response_id}_{choice}_{n}")
}

/// Translates a complete `generateContent` response.
pub fn response(resp: g::Response, ctx: &ResponseContext) -> o::ChatResponse {
    let id = resp.response_id.clone().unwrap_or_else(|| "gemini".into());
    let choices = resp
        .candidates
        .into_iter()
        .enumerate()
        .map(|(i, cand)| {
            let index = cand.index.unwrap_or(u32::try_from(i).unwrap_or(0));
            let choice_logprobs = cand.logprobs_result.as_ref().map(logprobs);
            let mut content = String::new();
            let mut reasoning = String::new();
            let mut tool_calls = Vec::new();
            for part in cand.content.map(|c| c.parts).unwrap_or_default() {
                if let Some(call) = part.function_call {
                    tool_calls.push(o::ToolCall {
                        id: call
                            .id
                            .unwrap_or_else(|| call_id(&id, index, tool_calls.len())),
                        kind: "function".into(),
                        function: o::FunctionCall {
                            name: call.name,
                            arguments: call.args.to_string(),
                        },
                    });
                } else if let Some(text) = part.text {
                    if part.thought == Some(true) {
                        reasoning.push_str(&text);
                    } else {
                        content.push_str(&text);
                    }
                }
            }
            let reason = cand.finish_reason.as_deref().unwrap_or("STOP");
            o::Choice {
                index,
                finish_reason: Some(finish_reason(reason, !tool_calls.is_empty()).into()),
                message: o::ResponseMessage::assistant(content, reasoning, tool_calls),
                logprobs: choice_logprobs,
            }
        })
        .collect();
    let mut out = o::ChatResponse {
        id,
        object: "chat.completion".into(),
        created: ctx.created,
        model: ctx.model.clone(),
        choices,
        usage: resp.usage_metadata.as_ref().map(usage::from_gemini),
        system_fingerprint: None,
    };
    if out.usage.is_none() {
        if let Some(prompt) = ctx.prompt_tokens {
            out.usage = Some(usage::estimate(&ctx.model, prompt, &out));
        }
    }
    out
}

/// Per-choice progress of a Gemini stream.
#[derive(Debug, Default)]
struct ChoiceState {
    started: bool,
    tool_calls: usize,
    finished: bool,
}

/// The state of one Gemini stream being turned into OpenAI chunks.
#[derive(Debug)]
pub struct Stream {
    ctx: ResponseContext,
    id: Option<String>,
    choices: BTreeMap<u32, ChoiceState>,
    usage: Option<g::UsageMetadata>,
    /// Output so far, kept only when a usage estimate may be needed (`ctx.prompt_tokens`).
    generated: String,
    done: bool,
}

impl Stream {
    pub fn new(ctx: ResponseContext) -> Self {
        Self {
            ctx,
            id: None,
            choices: BTreeMap::new(),
            usage: None,
            generated: String::new(),
            done: false,
        }
    }

    /// Turns one `streamGenerateContent` chunk into the chunks the client should see.
    pub fn on_event(&mut self, event: g::Response) -> Vec<StreamOut> {
        let id = self
            .id
            .get_or_insert_with(|| event.response_id.clone().unwrap_or_else(|| "gemini".into()))
            .clone();
        if let Some(u) = event.usage_metadata {
            self.usage = Some(u);
        }
        let mut out = Vec::new();
        for (i, cand) in event.candidates.into_iter().enumerate() {
            let index = cand.index.unwrap_or(u32::try_from(i).unwrap_or(0));
            let chunk_logprobs = cand.logprobs_result.as_ref().map(logprobs);
            let state = self.choices.entry(index).or_default();
            let mut delta = o::Delta::default();
            if !state.started {
                state.started = true;
                delta.role = Some("assistant".into());
            }
            let mut calls = Vec::new();
            for part in cand.content.map(|c| c.parts).unwrap_or_default() {
                if self.ctx.prompt_tokens.is_some() {
                    self.generated
                        .push_str(part.text.as_deref().unwrap_or_default());
                    if let Some(call) = &part.function_call {
                        self.generated.push_str(&call.args.to_string());
                    }
                }
                if let Some(call) = part.function_call {
                    let n = state.tool_calls;
                    state.tool_calls += 1;
                    calls.push(o::ToolCallDelta {
                        index: u32::try_from(n).unwrap_or(u32::MAX),
                        id: Some(call.id.unwrap_or_else(|| call_id(&id, index, n))),
                        kind: Some("function".into()),
                        function: o::FunctionCallDelta {
                            name: Some(call.name),
                            arguments: Some(call.args.to_string()),
                        },
                    });
                } else if let Some(text) = part.text {
                    let slot = if part.thought == Some(true) {
                        &mut delta.reasoning_content
                    } else {
                        &mut delta.content
                    };
                    slot.get_or_insert_with(String::new).push_str(&text);
                }
            }
            if !calls.is_empty() {
                delta.tool_calls = Some(calls);
            }
            let finish = cand.finish_reason.as_deref().map(|r| {
                state.finished = true;
                finish_reason(r, state.tool_calls > 0).to_owned()
            });
            if delta != o::Delta::default() || finish.is_some() {
                let mut chunk = delta_chunk(&self.ctx, &id, index, delta, finish);
                if let Some(choice) = chunk.choices.first_mut() {
                    choice.logprobs = chunk_logprobs;
                }
                out.push(StreamOut::Chunk(chunk));
            }
        }
        out
    }

    /// Called when the upstream stream ends: the usage chunk, or an error if it was cut short.
    pub fn finish(&mut self) -> Vec<StreamOut> {
        if self.done {
            return Vec::new();
        }
        self.done = true;
        let id = self.id.clone().unwrap_or_else(|| "gemini".into());
        if self.choices.is_empty() || self.choices.values().any(|c| !c.finished) {
            return vec![StreamOut::Error(o::ErrorBody::new(
                "upstream stream ended before every candidate had a finish reason",
                "server_error",
                Some("upstream_stream_truncated"),
            ))];
        }
        if !self.ctx.include_usage {
            return Vec::new();
        }
        vec![StreamOut::Chunk(usage_chunk(&self.ctx, &id, self.usage()))]
    }

    /// Usage so far: the upstream's, else counted when `ctx.prompt_tokens` is set, else zero.
    pub fn usage(&self) -> o::Usage {
        match (&self.usage, self.ctx.prompt_tokens) {
            (Some(u), _) => usage::from_gemini(u),
            (None, Some(prompt)) => {
                let completion = crate::tokens::count_text(&self.ctx.model, &self.generated).0;
                o::Usage::new(prompt, completion, 0, 0)
            }
            (None, None) => o::Usage::default(),
        }
    }
}

/// Translates a `batchEmbedContents` response; Gemini reports no usage, so the gateway counts it.
/// With `base64` each vector is sent as little-endian f32 bytes in base64, as OpenAI does for
/// `encoding_format: "base64"` (the OpenAI SDKs' default).
pub fn embeddings(
    resp: g::BatchEmbedResponse,
    model: &str,
    prompt_tokens: u64,
    base64: bool,
) -> o::EmbeddingsResponse {
    o::EmbeddingsResponse {
        object: "list".into(),
        data: resp
            .embeddings
            .into_iter()
            .enumerate()
            .map(|(i, e)| o::Embedding {
                object: "embedding".into(),
                index: u32::try_from(i).unwrap_or(u32::MAX),
                embedding: if base64 {
                    let bytes: Vec<u8> = e.values.iter().flat_map(|f| f.to_le_bytes()).collect();
                    serde_json::Value::String(
                        base64::engine::general_purpose::STANDARD.encode(bytes),
                    )
                } else {
                    serde_json::Value::from(e.values)
                },
            })
            .collect(),
        model: model.to_owned(),
        usage: o::EmbeddingsUsage {
            prompt_tokens,
            total_tokens: prompt_tokens,
        },
    }
}

/// Translates a Google error body; `None` when the body is not Google's error shape.
pub fn error(status: u16, body: &[u8]) -> Option<o::ErrorBody> {
    let (kind, code) = openai_error_kind(status);
    // Gemini streams sometimes wrap the error in a one-element array.
    let e = serde_json::from_slice::<g::ErrorBody>(body)
        .ok()
        .or_else(|| {
            serde_json::from_slice::<Vec<g::ErrorBody>>(body)
                .ok()
                .and_then(|v| v.into_iter().next())
        })?;
    let code = code.or(match e.error.status.as_str() {
        "RESOURCE_EXHAUSTED" => Some("rate_limit_exceeded"),
        _ => None,
    });
    Some(o::ErrorBody::new(e.error.message, kind, code))
}
