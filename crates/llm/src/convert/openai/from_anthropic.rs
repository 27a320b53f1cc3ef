//! Anthropic Messages → OpenAI chat: responses, streams and errors of Anthropic upstreams
//! (here), and the requests of clients that speak Anthropic's API (`request`).
//!
//! Text blocks become `content`, `tool_use` blocks become `tool_calls` (their streamed
//! `input_json_delta` pieces become argument deltas), thinking becomes `reasoning_content`, and
//! stop reasons map to `finish_reason`. A forced `response_format` tool is turned back into content.

use std::collections::HashMap;

mod request;

pub use request::request;

use crate::convert::{delta_chunk, openai_error_kind, usage_chunk, ResponseContext, StreamOut};
use crate::types::anthropic as a;
use crate::types::openai as o;
use crate::usage;

/// Anthropic `stop_reason` → OpenAI `finish_reason`.
pub fn finish_reason(stop_reason: &str) -> &'static str {
    match stop_reason {
        "max_tokens" | "model_context_window_exceeded" => "length",
        "tool_use" => "tool_calls",
        "refusal" => "content_filter",
        _ => "stop",
    }
}

/// Translates a complete Messages response.
pub fn response(resp: a::Response, ctx: &ResponseContext) -> o::ChatResponse {
    let mut content = String::new();
    let mut reasoning = String::new();
    let mut tool_calls = Vec::new();
    let mut answered_by_json_tool = false;
    for block in resp.content {
        match block {
            a::ContentBlock::Known(a::Block::Text { text }) => content.push_str(&text),
            a::ContentBlock::Known(a::Block::Thinking { thinking, .. }) => {
                reasoning.push_str(&thinking)
            }
            a::ContentBlock::Known(a::Block::ToolUse { id, name, input }) => {
                if ctx.json_tool.as_deref() == Some(name.as_str()) {
                    content.push_str(&input.to_string());
                    answered_by_json_tool = true;
                } else {
                    tool_calls.push(o::ToolCall {
                        id,
                        kind: "function".into(),
                        function: o::FunctionCall {
                            name,
                            arguments: input.to_string(),
                        },
                    });
                }
            }
            _ => {}
        }
    }
    let finish = match resp.stop_reason.as_deref() {
        Some("tool_use") if answered_by_json_tool => "stop",
        Some(reason) => finish_reason(reason),
        None => "stop",
    };
    o::ChatResponse {
        id: resp.id,
        object: "chat.completion".into(),
        created: ctx.created,
        model: ctx.model.clone(),
        choices: vec![o::Choice {
            index: 0,
            message: o::ResponseMessage::assistant(content, reasoning, tool_calls),
            finish_reason: Some(finish.into()),
            logprobs: None,
        }],
        usage: Some(usage::from_anthropic(&resp.usage)),
        system_fingerprint: None,
    }
}

/// The state of one Anthropic stream being turned into OpenAI chunks.
#[derive(Debug)]
pub struct Stream {
    ctx: ResponseContext,
    id: String,
    /// Content block index → tool call index among this message's tool calls.
    tools: HashMap<u32, u32>,
    /// Content block index of the forced `response_format` tool, whose input is content.
    json_block: Option<u32>,
    usage: a::Usage,
    finished: bool,
}

impl Stream {
    pub fn new(ctx: ResponseContext) -> Self {
        Self {
            ctx,
            id: String::new(),
            tools: HashMap::new(),
            json_block: None,
            usage: a::Usage::default(),
            finished: false,
        }
    }

    /// Turns one upstream event into the chunks the client should see.
    pub fn on_event(&mut self, event: a::StreamEvent) -> Vec<StreamOut> {
        let delta =
            |s: &Self, d: o::Delta| StreamOut::Chunk(delta_chunk(&s.ctx, &s.id, 0, d, None));
        match event {
            a::StreamEvent::MessageStart { message } => {
                self.id = message.id;
                self.usage = message.usage;
                let d = o::Delta {
                    role: Some("assistant".into()),
                    content: Some(String::new()),
                    ..o::Delta::default()
                };
                vec![delta(self, d)]
            }
            a::StreamEvent::ContentBlockStart {
                index,
                content_block: a::ContentBlock::Known(a::Block::ToolUse { id, name, .. }),
            } => {
                if self.ctx.json_tool.as_deref() == Some(name.as_str()) {
                    self.json_block = Some(index);
                    return Vec::new();
                }
                let tool_index = u32::try_from(self.tools.len()).unwrap_or(u32::MAX);
                self.tools.insert(index, tool_index);
                let d = o::Delta {
                    tool_calls: Some(vec![o::ToolCallDelta {
                        index: tool_index,
                        id: Some(id),
                        kind: Some("function".into()),
                        function: o::FunctionCallDelta {
                            name: Some(name),
                            arguments: Some(String::new()),
                        },
                    }]),
                    ..o::Delta::default()
                };
                vec![delta(self, d)]
            }
            a::StreamEvent::ContentBlockStart {
                content_block: a::ContentBlock::Known(a::Block::Text { text }),
                ..
            } if !text.is_empty() => vec![delta(self, content(text))],
            a::StreamEvent::ContentBlockStart { .. } => Vec::new(),
            a::StreamEvent::ContentBlockDelta { index, delta: d } => match d {
                a::BlockDelta::TextDelta { text } => vec![delta(self, content(text))],
                a::BlockDelta::ThinkingDelta { thinking } => vec![delta(
                    self,
                    o::Delta {
                        reasoning_content: Some(thinking),
                        ..o::Delta::default()
                    },
                )],
                a::BlockDelta::InputJsonDelta { partial_json } if partial_json.is_empty() => {
                    Vec::new()
                }
                a::BlockDelta::InputJsonDelta { partial_json } => {
                    if self.json_block == Some(index) {
                        return vec![delta(self, content(partial_json))];
                    }
                    let Some(&tool_index) = self.tools.get(&index) else {
                        return Vec::new();
                    };
                    let d = o::Delta {
                        tool_calls: Some(vec![o::ToolCallDelta {
                            index: tool_index,
                            id: None,
                            kind: None,
                            function: o::FunctionCallDelta {
                                name: None,
                                arguments: Some(partial_json),
                            },
                        }]),
                        ..o::Delta::default()
                    };
                    vec![delta(self, d)]
                }
                a::BlockDelta::SignatureDelta { .. } | a::BlockDelta::CitationsDelta { .. } => {
                    Vec::new()
                }
            },
            a::StreamEvent::ContentBlockStop { .. } | a::StreamEvent::Ping => Vec::new(),
            a::StreamEvent::MessageDelta { delta: d, usage } => {
                // message_delta usage is cumulative; fields it leaves out keep message_start's values.
                if let Some(u) = usage {
                    self.usage.output_tokens = u.output_tokens;
                    if u.input_tokens > 0 {
                        self.usage.input_tokens = u.input_tokens;
                    }
                    self.usage.cache_read_input_tokens = u
                        .cache_read_input_tokens
                        .or(self.usage.cache_read_input_tokens);
                    self.usage.cache_creation_input_tokens = u
                        .cache_creation_input_tokens
                        .or(self.usage.cache_creation_input_tokens);
                }
                let reason = match d.stop_reason.as_deref() {
                    Some("tool_use") if self.json_block.is_some() && self.tools.is_empty() => {
                        "stop"
                    }
                    Some(r) => finish_reason(r),
                    None => return Vec::new(),
                };
                vec![StreamOut::Chunk(delta_chunk(
                    &self.ctx,
                    &self.id,
                    0,
                    o::Delta::default(),
                    Some(reason.into()),
                ))]
            }
            a::StreamEvent::MessageStop => {
                self.finished = true;
                if self.ctx.include_usage {
                    let u = usage::from_anthropic(&self.usage);
                    vec![StreamOut::Chunk(usage_chunk(&self.ctx, &self.id, u))]
                } else {
                    Vec::new()
                }
            }
            a::StreamEvent::Error { error } => {
                self.finished = true;
                let status = status_of(&error.kind);
                vec![StreamOut::Error(openai_error(
                    status,
                    &error.kind,
                    error.message,
                ))]
            }
        }
    }

    /// Called when the upstream stream ends; a stream cut before `message_stop` ends in an error.
    pub fn finish(&mut self) -> Vec<StreamOut> {
        if self.finished {
            return Vec::new();
        }
        self.finished = true;
        vec![StreamOut::Error(o::ErrorBody::new(
            "upstream stream ended before message_stop",
            "server_error",
            Some("upstream_stream_truncated"),
        ))]
    }
}

fn content(text: String) -> o::Delta {
    o::Delta {
        content: Some(text),
        ..o::Delta::default()
    }
}

/// The HTTP status Anthropic uses for an error type.
fn status_of(kind: &str) -> u16 {
    match kind {
        "invalid_request_error" => 400,
        "authentication_error" => 401,
        "permission_error" => 403,
        "not_found_error" => 404,
        "request_too_large" => 413,
        "rate_limit_error" => 429,
        "overloaded_error" => 529,
        _ => 500,
    }
}

fn openai_error(status: u16, upstream_kind: &str, message: String) -> o::ErrorBody {
    let (kind, code) = openai_error_kind(status);
    let code = code.or(match upstream_kind {
        "overloaded_error" => Some("overloaded"),
        _ => None,
    });
    o::ErrorBody::new(message, kind, code)
}

/// Translates an Anthropic error body; `None` when the body is not Anthropic's error shape.
pub fn error(status: u16, body: &[u8]) -> Option<o::ErrorBody> {
    let e = serde_json::from_slice::<a::ErrorBody>(body).ok()?;
    Some(openai_error(status, &e.error.kind, e.error.message))
}
