//! Bedrock Converse response, stream and errors → OpenAI chat.
//!
//! Text blocks become `content`, `toolUse` blocks `tool_calls` (streamed `toolUse.input` pieces
//! become argument deltas), reasoning `reasoning_content`, and stop reasons `finish_reason`. A
//! forced `response_format` tool is turned back into content. Stream frames arrive decoded by
//! `eventstream`; an exception frame ends the stream with an error.

use std::collections::HashMap;

use crate::convert::{delta_chunk, openai_error_kind, usage_chunk, ResponseContext, StreamOut};
use crate::eventstream::Frame;
use crate::types::bedrock as b;
use crate::types::openai as o;

/// Converse `stopReason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "guardrail_intervened" | "content_filtered" => "content_filter",
        _ => "stop",
    }
}

fn usage(u: &b::Usage) -> o::Usage {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    // Converse's inputTokens leave cache reads and writes out, as Anthropic's do.
    let prompt = u.input_tokens + cached + u.cache_write_input_tokens.unwrap_or(0);
    o::Usage::new(prompt, u.output_tokens, cached, 0)
}

/// Translates a complete Converse response.
pub fn response(resp: b::Response, id: &str, ctx: &ResponseContext) -> o::ChatResponse {
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut answered_by_json_tool = false;
    for block in resp.output.message.content {
        match block {
            b::ContentBlock::Known(b::Block::Text(t)) => content.push_str(&t),
            b::ContentBlock::Known(b::Block::ReasoningContent(r)) => {
                if let Some(t) = r.reasoning_text {
                    reasoning.push_str(&t.text);
                }
            }
            b::ContentBlock::Known(b::Block::ToolUse(t)) => {
                if ctx.json_tool.as_deref() == Some(t.name.as_str()) {
                    content.push_str(&t.input.to_string());
                    answered_by_json_tool = true;
                } else {
                    tool_calls.push(o::ToolCall {
                        id: t.tool_use_id,
                        kind: "function".into(),
                        function: o::FunctionCall {
                            name: t.name,
                            arguments: t.input.to_string(),
                        },
                    });
                }
            }
            _ => {}
        }
    }
    let finish = match resp.stop_reason.as_str() {
        "tool_use" if answered_by_json_tool => "stop",
        other => finish_reason(other),
    };
    o::ChatResponse {
        id: id.to_owned(),
        object: "chat.completion".into(),
        created: ctx.created,
        model: ctx.model.clone(),
        choices: vec![o::Choice {
            index: 0,
            message: o::ResponseMessage::assistant(content, reasoning, tool_calls),
            finish_reason: Some(finish.into()),
            logprobs: None,
        }],
        usage: resp.usage.as_ref().map(usage),
        system_fingerprint: None,
    }
}

/// The state of one ConverseStream being turned into OpenAI chunks.
#[derive(Debug)]
pub struct Stream {
    ctx: ResponseContext,
    id: String,
    /// Content block index → tool call index.
    tools: HashMap<u32, u32>,
    json_block: Option<u32>,
    stopped: bool,
    usage: Option<b::Usage>,
    finished: bool,
}

impl Stream {
    pub fn new(ctx: ResponseContext, id: &str) -> Self {
        Self {
            ctx,
            id: id.to_owned(),
            tools: HashMap::new(),
            json_block: None,
            stopped: false,
            usage: None,
            finished: false,
        }
    }

    fn delta(&self, d: o::Delta) -> StreamOut {
        StreamOut::Chunk(delta_chunk(&self.ctx, &self.id, 0, d, None))
    }

    /// Turns one decoded frame into the chunks the client should see.
    pub fn on_frame(&mut self, frame: &Frame) -> Vec<StreamOut> {
        if frame.message_type != "event" {
            self.finished = true;
            let message = serde_json::from_slice::<b::ErrorBody>(&frame.payload)
                .map(|e| e.message)
                .unwrap_or_else(|_| String::from_utf8_lossy(&frame.payload).into_owned());
            return vec![StreamOut::Error(exception(&frame.name, message))];
        }
        let parse_err = |e: serde_json::Error| {
            vec![StreamOut::Error(o::ErrorBody::new(
                format!("upstream sent a malformed {} event: {e}", frame.name),
                "server_error",
                Some("upstream_malformed"),
            ))]
        };
        match frame.name.as_str() {
            "messageStart" => vec![self.delta(o::Delta {
                role: Some("assistant".into()),
                content: Some(String::new()),
                ..o::Delta::default()
            })],
            "contentBlockStart" => {
                let start: b::BlockStart = match serde_json::from_slice(&frame.payload) {
                    Ok(s) => s,
                    Err(e) => return parse_err(e),
                };
                let Some(tool) = start.start.and_then(|s| s.tool_use) else {
                    return Vec::new();
                };
                if self.ctx.json_tool.as_deref() == Some(tool.name.as_str()) {
                    self.json_block = Some(start.content_block_index);
                    return Vec::new();
                }
                let index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.insert(start.content_block_index, index);
                vec![self.delta(o::Delta {
                    tool_calls: Some(vec![o::ToolCallDelta {
                        index,
                        id: Some(tool.tool_use_id),
                        kind: Some("function".into()),
                        function: o::FunctionCallDelta {
                            name: Some(tool.name),
                            arguments: Some(String::new()),
                        },
                    }]),
                    ..o::Delta::default()
                })]
            }
            "contentBlockDelta" => {
                let d: b::BlockDelta = match serde_json::from_slice(&frame.payload) {
                    Ok(d) => d,
                    Err(e) => return parse_err(e),
                };
                let block = d.content_block_index;
                let mut out = Vec::new();
                if let Some(t) = d.delta.text {
                    out.push(self.delta(o::Delta {
                        content: Some(t),
                        ..o::Delta::default()
                    }));
                }
                if let Some(r) = d.delta.reasoning_content.and_then(|r| r.text) {
                    out.push(self.delta(o::Delta {
                        reasoning_content: Some(r),
                        ..o::Delta::default()
                    }));
                }
                if let Some(t) = d.delta.tool_use.filter(|t| !t.input.is_empty()) {
                    if self.json_block == Some(block) {
                        out.push(self.delta(o::Delta {
                            content: Some(t.input),
                            ..o::Delta::default()
                        }));
                    } else if let Some(&index) = self.tools.get(&block) {
                        out.push(self.delta(o::Delta {
                            tool_calls: Some(vec![o::ToolCallDelta {
                                index,
                                id: None,
                                kind: None,
                                function: o::FunctionCallDelta {
                                    name: None,
                                    arguments: Some(t.input),
                                },
                            }]),
                            ..o::Delta::default()
                        }));
                    }
                }
                out
            }
            "messageStop" => {
                let stop: b::MessageStop = match serde_json::from_slice(&frame.payload) {
                    Ok(s) => s,
                    Err(e) => return parse_err(e),
                };
                self.stopped = true;
                let reason = match stop.stop_reason.as_str() {
                    "tool_use" if self.json_block.is_some() && self.tools.is_empty() => "stop",
                    other => finish_reason(other),
                };
                vec![StreamOut::Chunk(delta_chunk(
                    &self.ctx,
                    &self.id,
                    0,
                    o::Delta::default(),
                    Some(reason.into()),
                ))]
            }
            "metadata" => {
                if let Ok(m) = serde_json::from_slice::<b::Metadata>(&frame.payload) {
                    self.usage = m.usage;
                }
                self.usage_chunk()
            }
            // contentBlockStop and events this build does not know.
            _ => Vec::new(),
        }
    }

    fn usage_chunk(&mut self) -> Vec<StreamOut> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        match (&self.usage, self.ctx.include_usage) {
            (Some(u), true) => vec![StreamOut::Chunk(usage_chunk(&self.ctx, &self.id, usage(u)))],
            _ => Vec::new(),
        }
    }

    /// Called when the upstream stream ends; a stream cut before `messageStop` ends in an error.
    pub fn finish(&mut self) -> Vec<StreamOut> {
        if !self.stopped {
            if self.finished {
                return Vec::new();
            }
            self.finished = true;
            return vec![StreamOut::Error(o::ErrorBody::new(
                "upstream stream ended before messageStop",
                "server_error",
                Some("upstream_stream_truncated"),
            ))];
        }
        self.usage_chunk()
    }
}

/// The HTTP status Bedrock answers an exception type with.
fn status_of(kind: &str) -> u16 {
    match kind {
        "validationException" => 400,
        "accessDeniedException" => 403,
        "resourceNotFoundException" => 404,
        "throttlingException" | "serviceQuotaExceededException" => 429,
        "modelTimeoutException" => 408,
        "serviceUnavailableException" | "modelNotReadyException" => 503,
        _ => 500,
    }
}

fn exception(kind: &str, message: String) -> o::ErrorBody {
    let (k, code) = openai_error_kind(status_of(kind));
    o::ErrorBody::new(message, k, code)
}

/// Translates a Bedrock error body; `None` when the body is not Bedrock's error shape.
pub fn error(status: u16, body: &[u8]) -> Option<o::ErrorBody> {
    let e = serde_json::from_slice::<b::ErrorBody>(body).ok()?;
    let (kind, code) = openai_error_kind(status);
    Some(o::ErrorBody::new(e.message, kind, code))
}
