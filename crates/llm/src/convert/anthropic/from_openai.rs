//! OpenAI chat → Anthropic Messages: requests to Anthropic upstreams (here), and responses,
//! streams and errors to clients that speak Anthropic's API (`response`, `stream`).
//!
//! Maps roles (system/developer → `system`, tool → `tool_result` blocks in a user turn), merges
//! consecutive turns of one role as Anthropic requires, and expresses `response_format` as a forced
//! tool whose input is the JSON answer. Parameters Anthropic cannot honour are refused when they
//! change the answer (`n`, `logprobs`, penalties) and reported as dropped when they are hints
//! (`seed`, unknown fields).

use serde_json::{json, Value};

mod response;
mod stream;

pub use response::{error, error_kind, message_id, response, stop_reason};
pub use stream::Stream;

use crate::convert::{parse_arguments, parse_data_url, RequestNotes};
use crate::types::anthropic as a;
use crate::types::openai as o;
use crate::LlmError;

const TARGET: &str = "Anthropic models";
/// The tool that carries a `response_format` answer.
pub const JSON_TOOL: &str = "json_response";
/// Request fields outside OpenAI's schema that Anthropic understands natively.
const NATIVE_EXTRAS: &[&str] = &["top_k", "thinking", "service_tier"];

/// Translates a chat request; `upstream_model` replaces the client's model name and
/// `default_max_tokens` fills Anthropic's required `max_tokens` when the client set none.
pub fn request(
    req: o::ChatRequest,
    upstream_model: &str,
    default_max_tokens: u32,
) -> Result<(a::Request, RequestNotes), LlmError> {
    let mut notes = RequestNotes::default();
    refuse_unsupported(&req)?;
    if req.seed.is_some() {
        notes.dropped.push("seed".into());
    }
    if req.metadata.is_some() {
        notes.dropped.push("metadata".into());
    }

    let mut system: Vec<a::ContentBlock> = Vec::new();
    let mut messages: Vec<a::Message> = Vec::new();
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role {
            o::Role::System | o::Role::Developer => {
                let text = m.content.map(|c| c.text()).unwrap_or_default();
                system.push(text_block(text));
            }
            o::Role::User => {
                let blocks = user_blocks(m.content, i)?;
                push(&mut messages, a::Role::User, blocks);
            }
            o::Role::Assistant => {
                let mut blocks = match m.content {
                    Some(o::Content::Text(t)) if !t.is_empty() => vec![text_block(t)],
                    Some(o::Content::Parts(parts)) => parts
                        .into_iter()
                        .filter_map(|p| match p {
                            o::ContentPart::Known(o::Part::Text { text }) => Some(text_block(text)),
                            _ => None,
                        })
                        .collect(),
                    _ => Vec::new(),
                };
                for call in m.tool_calls.unwrap_or_default() {
                    let input = parse_arguments(&call.function.name, &call.function.arguments)?;
                    blocks.push(a::ContentBlock::Known(a::Block::ToolUse {
                        id: call.id,
                        name: call.function.name,
                        input,
                    }));
                }
                push(&mut messages, a::Role::Assistant, blocks);
            }
            o::Role::Tool | o::Role::Function => {
                let tool_use_id = m.tool_call_id.or(m.name).ok_or_else(|| {
                    LlmError::Invalid(format!("messages[{i}]: a tool message needs tool_call_id"))
                })?;
                let content = m.content.map(|c| a::ToolResultContent::Text(c.text()));
                let block = a::ContentBlock::Known(a::Block::ToolResult {
                    tool_use_id,
                    content,
                    is_error: None,
                });
                push(&mut messages, a::Role::User, vec![block]);
            }
        }
    }

    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(default_max_tokens);
    let disable_parallel = req.parallel_tool_calls.map(|p| !p);
    let mut tools: Vec<a::Tool> = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| a::Tool {
            kind: None,
            name: t.function.name,
            description: t.function.description,
            input_schema: t
                .function
                .parameters
                .unwrap_or_else(|| json!({"type": "object"})),
        })
        .collect();
    let mut tool_choice = match req.tool_choice {
        None => disable_parallel.map(|d| a::ToolChoice::Auto {
            disable_parallel_tool_use: Some(d),
        }),
        Some(o::ToolChoice::Mode(mode)) => Some(match mode.as_str() {
            "none" => a::ToolChoice::None,
            "auto" => a::ToolChoice::Auto {
                disable_parallel_tool_use: disable_parallel,
            },
            "required" => a::ToolChoice::Any {
                disable_parallel_tool_use: disable_parallel,
            },
            other => {
                return Err(LlmError::Invalid(format!(
                    "tool_choice: unknown value {other:?} (expected none, auto, required or a function)"
                )))
            }
        }),
        Some(o::ToolChoice::Named(named)) => Some(a::ToolChoice::Tool {
            name: named.function.name,
            disable_parallel_tool_use: disable_parallel,
        }),
    };

    match req.response_format {
        None | Some(o::ResponseFormat::Text) => {}
        Some(format) => {
            if !tools.is_empty() {
                return Err(LlmError::unsupported(
                    "response_format together with tools",
                    TARGET,
                ));
            }
            let (description, schema) = match format {
                o::ResponseFormat::JsonSchema { json_schema } => (
                    json_schema.description.unwrap_or_else(|| {
                        format!("Answer with a JSON value named {}", json_schema.name)
                    }),
                    json_schema
                        .schema
                        .unwrap_or_else(|| json!({"type": "object"})),
                ),
                _ => (
                    "Answer with a JSON object".to_owned(),
                    json!({"type": "object"}),
                ),
            };
            tools.push(a::Tool {
                kind: None,
                name: JSON_TOOL.into(),
                description: Some(description),
                input_schema: schema,
            });
            tool_choice = Some(a::ToolChoice::Tool {
                name: JSON_TOOL.into(),
                disable_parallel_tool_use: None,
            });
            notes.json_tool = Some(JSON_TOOL.into());
        }
    }

    let mut extra = crate::types::Map::new();
    let mut top_k = None;
    let mut thinking = thinking_for(req.reasoning_effort.as_deref(), max_tokens)?;
    for (key, value) in req.extra {
        match key.as_str() {
            "top_k" => top_k = value.as_u64().and_then(|k| u32::try_from(k).ok()),
            "thinking" => thinking = Some(value),
            k if NATIVE_EXTRAS.contains(&k) => {
                extra.insert(key, value);
            }
            _ => notes.dropped.push(key),
        }
    }

    if notes.json_tool.is_some() && thinking.is_some() {
        // Anthropic refuses extended thinking when tool_choice forces a tool, which is how
        // response_format is expressed; say so rather than send a request it will reject.
        return Err(LlmError::unsupported(
            "response_format together with reasoning_effort or thinking",
            TARGET,
        ));
    }

    let body = a::Request {
        model: upstream_model.to_owned(),
        messages,
        max_tokens,
        system: (!system.is_empty()).then_some(a::System::Blocks(system)),
        stop_sequences: req.stop.map(o::Stop::into_vec),
        stream: req.stream,
        temperature: req.temperature,
        top_p: req.top_p,
        top_k,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        metadata: req.user.map(|u| a::Metadata { user_id: Some(u) }),
        thinking,
        extra,
    };
    Ok((body, notes))
}

fn refuse_unsupported(req: &o::ChatRequest) -> Result<(), LlmError> {
    if req.n.is_some_and(|n| n > 1) {
        return Err(LlmError::unsupported("n > 1 (several choices)", TARGET));
    }
    if req.logprobs == Some(true) || req.top_logprobs.is_some() {
        return Err(LlmError::unsupported("logprobs", TARGET));
    }
    if req.presence_penalty.is_some_and(|p| p != 0.0) {
        return Err(LlmError::unsupported("presence_penalty", TARGET));
    }
    if req.frequency_penalty.is_some_and(|p| p != 0.0) {
        return Err(LlmError::unsupported("frequency_penalty", TARGET));
    }
    if req.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(LlmError::unsupported("logit_bias", TARGET));
    }
    Ok(())
}

/// `reasoning_effort` → an extended-thinking budget that fits under `max_tokens`.
fn thinking_for(effort: Option<&str>, max_tokens: u32) -> Result<Option<Value>, LlmError> {
    let wanted: u32 = match effort {
        None | Some("none") | Some("minimal") => return Ok(None),
        Some("low") => 1024,
        Some("medium") => 4096,
        Some("high") => 16384,
        Some(other) => {
            return Err(LlmError::Invalid(format!(
                "reasoning_effort: unknown value {other:?} (expected minimal, low, medium or high)"
            )))
        }
    };
    let budget = wanted.min(max_tokens.saturating_sub(1));
    if budget < 1024 {
        return Err(LlmError::Invalid(
            "reasoning_effort on Anthropic models needs max_completion_tokens above 1024".into(),
        ));
    }
    Ok(Some(json!({"type": "enabled", "budget_tokens": budget})))
}

fn text_block(text: String) -> a::ContentBlock {
    a::ContentBlock::Known(a::Block::Text { text })
}

fn user_blocks(content: Option<o::Content>, i: usize) -> Result<Vec<a::ContentBlock>, LlmError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(o::Content::Text(t)) => return Ok(vec![text_block(t)]),
        Some(o::Content::Parts(parts)) => parts,
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(j, part)| match part {
            o::ContentPart::Known(o::Part::Text { text }) => Ok(text_block(text)),
            o::ContentPart::Known(o::Part::ImageUrl { image_url }) => {
                let source = match parse_data_url(&image_url.url) {
                    Some((media_type, data)) => a::ImageSource::Base64 {
                        media_type: media_type.to_owned(),
                        data: data.to_owned(),
                    },
                    None if image_url.url.starts_with("http") => a::ImageSource::Url {
                        url: image_url.url,
                    },
                    None => {
                        return Err(LlmError::Invalid(format!(
                            "messages[{i}].content[{j}].image_url.url must be an http(s) or base64 data URL"
                        )))
                    }
                };
                Ok(a::ContentBlock::Known(a::Block::Image { source }))
            }
            other => Err(LlmError::unsupported(
                format!("content part type {:?}", other.kind()),
                TARGET,
            )),
        })
        .collect()
}

/// Appends blocks to the last turn when it has the same role (Anthropic wants alternation).
fn push(messages: &mut Vec<a::Message>, role: a::Role, blocks: Vec<a::ContentBlock>) {
    if let Some(last) = messages.last_mut() {
        if last.role == role {
            if let a::MessageContent::Blocks(existing) = &mut last.content {
                existing.extend(blocks);
                return;
            }
        }
    }
    messages.push(a::Message {
        role,
        content: a::MessageContent::Blocks(blocks),
    });
}
