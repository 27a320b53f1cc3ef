//! OpenAI chat request → Bedrock Converse request.
//!
//! System and developer messages become `system`; tool messages become `toolResult` blocks in a
//! user turn; consecutive turns of one role are merged (Converse wants alternation); images must
//! be base64 data URLs (Converse takes bytes, not links). `response_format` is expressed as a
//! forced tool whose input is the answer, as for Anthropic. `reasoning_effort` becomes
//! Anthropic's `thinking` for Anthropic models on Bedrock. Parameters Converse cannot honour are
//! refused when they change the answer and reported as dropped when they are hints.

use serde_json::json;

use crate::convert::{parse_arguments, parse_data_url, RequestNotes};
use crate::types::bedrock as b;
use crate::types::openai as o;
use crate::types::Map;
use crate::LlmError;

const TARGET: &str = "Bedrock's Converse API";
/// The tool that carries a `response_format` answer.
pub const JSON_TOOL: &str = "json_response";

/// Translates a chat request for `model_id`; `default_max_tokens` fills `maxTokens` when the
/// client set none.
pub fn request(
    req: o::ChatRequest,
    model_id: &str,
    default_max_tokens: u32,
) -> Result<(b::Request, RequestNotes), LlmError> {
    let mut notes = RequestNotes::default();
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
    for (field, set) in [
        ("seed", req.seed.is_some()),
        ("user", req.user.is_some()),
        ("metadata", req.metadata.is_some()),
    ] {
        if set {
            notes.dropped.push(field.into());
        }
    }
    let anthropic = model_id.contains("anthropic.");

    let mut system = Vec::new();
    let mut messages: Vec<b::Message> = Vec::new();
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role {
            o::Role::System | o::Role::Developer => system.push(b::SystemBlock {
                text: m.content.map(|c| c.text()).unwrap_or_default(),
            }),
            o::Role::User => {
                let blocks = user_blocks(m.content, i)?;
                push(&mut messages, b::Role::User, blocks);
            }
            o::Role::Assistant => {
                let mut blocks = Vec::new();
                let text = m.content.map(|c| c.text()).unwrap_or_default();
                if !text.is_empty() {
                    blocks.push(b::ContentBlock::Known(b::Block::Text(text)));
                }
                for call in m.tool_calls.unwrap_or_default() {
                    let input = parse_arguments(&call.function.name, &call.function.arguments)?;
                    blocks.push(b::ContentBlock::Known(b::Block::ToolUse(b::ToolUse {
                        tool_use_id: call.id,
                        name: call.function.name,
                        input,
                    })));
                }
                push(&mut messages, b::Role::Assistant, blocks);
            }
            o::Role::Tool | o::Role::Function => {
                let id = m.tool_call_id.or(m.name).ok_or_else(|| {
                    LlmError::Invalid(format!("messages[{i}]: a tool message needs tool_call_id"))
                })?;
                let text = m.content.map(|c| c.text()).unwrap_or_default();
                let block = b::ContentBlock::Known(b::Block::ToolResult(b::ToolResult {
                    tool_use_id: id,
                    content: vec![json!({"text": text})],
                    status: None,
                }));
                push(&mut messages, b::Role::User, vec![block]);
            }
        }
    }

    let mut tools: Vec<b::Tool> = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .map(|t| b::Tool {
            tool_spec: b::ToolSpec {
                name: t.function.name,
                description: t.function.description,
                input_schema: json!({"json": t.function.parameters.unwrap_or_else(|| json!({"type": "object"}))}),
            },
        })
        .collect();
    let mut tool_choice = match req.tool_choice {
        None => None,
        Some(o::ToolChoice::Mode(mode)) => match mode.as_str() {
            "auto" => Some(json!({"auto": {}})),
            "required" => Some(json!({"any": {}})),
            "none" => {
                // Converse has no "none": the tools are left out, unless earlier turns used them
                // (Converse then needs their definitions).
                let used = messages.iter().any(|m| {
                    m.content.iter().any(|c| {
                        matches!(c, b::ContentBlock::Known(b::Block::ToolUse(_) | b::Block::ToolResult(_)))
                    })
                });
                if used {
                    return Err(LlmError::unsupported(
                        "tool_choice \"none\" in a conversation that has used tools",
                        TARGET,
                    ));
                }
                tools.clear();
                None
            }
            other => {
                return Err(LlmError::Invalid(format!(
                    "tool_choice: unknown value {other:?} (expected none, auto, required or a function)"
                )))
            }
        },
        Some(o::ToolChoice::Named(n)) => Some(json!({"tool": {"name": n.function.name}})),
    };
    if req.parallel_tool_calls.is_some() {
        notes.dropped.push("parallel_tool_calls".into());
    }

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
            tools.push(b::Tool {
                tool_spec: b::ToolSpec {
                    name: JSON_TOOL.into(),
                    description: Some(description),
                    input_schema: json!({"json": schema}),
                },
            });
            tool_choice = Some(json!({"tool": {"name": JSON_TOOL}}));
            notes.json_tool = Some(JSON_TOOL.into());
        }
    }

    let max_tokens = req
        .max_completion_tokens
        .or(req.max_tokens)
        .unwrap_or(default_max_tokens);
    let mut extra = Map::new();
    match req.reasoning_effort.as_deref() {
        None | Some("none" | "minimal") => {}
        Some(effort) if anthropic => {
            let wanted: u32 = match effort {
                "low" => 1024,
                "medium" => 4096,
                "high" => 16384,
                other => {
                    return Err(LlmError::Invalid(format!(
                        "reasoning_effort: unknown value {other:?} (expected minimal, low, medium or high)"
                    )))
                }
            };
            let budget = wanted.min(max_tokens.saturating_sub(1));
            if budget < 1024 {
                return Err(LlmError::Invalid(
                    "reasoning_effort on Anthropic models needs max_completion_tokens above 1024"
                        .into(),
                ));
            }
            extra.insert(
                "thinking".into(),
                json!({"type": "enabled", "budget_tokens": budget}),
            );
        }
        Some(_) => notes.dropped.push("reasoning_effort".into()),
    }
    for (key, value) in req.extra {
        match key.as_str() {
            "top_k" if anthropic => {
                extra.insert(key, value);
            }
            _ => notes.dropped.push(key),
        }
    }

    let body = b::Request {
        messages,
        system,
        inference_config: Some(b::InferenceConfig {
            max_tokens: Some(max_tokens),
            temperature: req.temperature,
            top_p: req.top_p,
            stop_sequences: req.stop.map(o::Stop::into_vec).unwrap_or_default(),
        }),
        tool_config: (!tools.is_empty()).then_some(b::ToolConfig { tools, tool_choice }),
        additional_model_request_fields: (!extra.is_empty()).then_some(extra),
    };
    Ok((body, notes))
}

fn user_blocks(content: Option<o::Content>, i: usize) -> Result<Vec<b::ContentBlock>, LlmError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(o::Content::Text(t)) => return Ok(vec![b::ContentBlock::Known(b::Block::Text(t))]),
        Some(o::Content::Parts(parts)) => parts,
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(j, part)| match part {
            o::ContentPart::Known(o::Part::Text { text }) => {
                Ok(b::ContentBlock::Known(b::Block::Text(text)))
            }
            o::ContentPart::Known(o::Part::ImageUrl { image_url }) => {
                let (media_type, data) = parse_data_url(&image_url.url).ok_or_else(|| {
                    LlmError::unsupported(
                        format!(
                            "messages[{i}].content[{j}]: images by URL (send a base64 data URL)"
                        ),
                        TARGET,
                    )
                })?;
                let format = media_type.strip_prefix("image/").unwrap_or(media_type);
                let format = if format == "jpg" { "jpeg" } else { format };
                Ok(b::ContentBlock::Known(b::Block::Image(b::Image {
                    format: format.to_owned(),
                    source: json!({"bytes": data}),
                })))
            }
            other => Err(LlmError::unsupported(
                format!("content part type {:?}", other.kind()),
                TARGET,
            )),
        })
        .collect()
}

/// Appends blocks to the last turn when it has the same role (Converse wants alternation).
fn push(messages: &mut Vec<b::Message>, role: b::Role, blocks: Vec<b::ContentBlock>) {
    if let Some(last) = messages.last_mut() {
        if last.role == role {
            last.content.extend(blocks);
            return;
        }
    }
    messages.push(b::Message {
        role,
        content: blocks,
    });
}
