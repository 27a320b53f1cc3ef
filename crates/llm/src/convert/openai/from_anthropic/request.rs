//! Anthropic Messages request → OpenAI chat request: how a client speaking Anthropic's API (the
//! Anthropic SDKs, coding agents) reaches a model served in another dialect.
//!
//! `system` becomes a system message; `tool_result` blocks become `tool` messages placed right
//! after the assistant turn that called them (as OpenAI requires); images and base64 PDFs become
//! content parts; `thinking` becomes `reasoning_effort`. Thinking blocks replayed from earlier
//! turns carry signatures only Anthropic can check and are left out (reported as dropped), as are
//! sampling hints other dialects lack (`top_k`) and `cache_control` breakpoints, which are hints.
//! What would change the answer and has no equivalent (server tools, MCP servers, documents
//! other dialects cannot read) is refused with the feature named.

use serde_json::{json, Value};

use crate::convert::RequestNotes;
use crate::types::anthropic as a;
use crate::types::openai as o;
use crate::types::Map;
use crate::LlmError;

const TARGET: &str = "models outside Anthropic";
/// Request fields Anthropic defines that change the answer and have no equivalent elsewhere.
const REFUSED: &[(&str, &str)] = &[
    ("mcp_servers", "MCP servers (mcp_servers)"),
    ("container", "code execution containers (container)"),
];

/// Translates a Messages request into the canonical chat request. The model name is kept; the
/// pipeline replaces it with the target's.
pub fn request(req: a::Request) -> Result<(o::ChatRequest, RequestNotes), LlmError> {
    let mut notes = RequestNotes::default();
    let mut messages = Vec::new();
    match req.system {
        None => {}
        Some(a::System::Text(t)) => messages.push(text_message(o::Role::System, t)),
        Some(a::System::Blocks(blocks)) => {
            let text = blocks
                .into_iter()
                .enumerate()
                .map(|(j, b)| match b {
                    a::ContentBlock::Known(a::Block::Text { text }) => Ok(text),
                    other => Err(LlmError::unsupported(
                        format!(
                            "system[{j}]: a {} block in the system prompt",
                            kind_of(&other)
                        ),
                        TARGET,
                    )),
                })
                .collect::<Result<Vec<_>, _>>()?
                .join("\n\n");
            messages.push(text_message(o::Role::System, text));
        }
    }
    let mut dropped_thinking = false;
    for (i, m) in req.messages.into_iter().enumerate() {
        let blocks = match m.content {
            a::MessageContent::Text(t) => {
                let role = match m.role {
                    a::Role::User => o::Role::User,
                    a::Role::Assistant => o::Role::Assistant,
                };
                messages.push(text_message(role, t));
                continue;
            }
            a::MessageContent::Blocks(b) => b,
        };
        match m.role {
            a::Role::User => user_turn(blocks, i, &mut messages)?,
            a::Role::Assistant => {
                messages.push(assistant_turn(blocks, i, &mut dropped_thinking)?);
            }
        }
    }
    if dropped_thinking {
        notes
            .dropped
            .push("thinking blocks of earlier turns".into());
    }

    let mut tools = Vec::new();
    for (j, t) in req.tools.into_iter().flatten().enumerate() {
        match t.kind.as_deref() {
            None | Some("custom") => {}
            Some(server) => {
                return Err(LlmError::unsupported(
                    format!("tools[{j}]: the server tool `{server}`"),
                    TARGET,
                ))
            }
        }
        tools.push(o::Tool {
            kind: "function".into(),
            function: o::FunctionDef {
                name: t.name,
                description: t.description,
                parameters: Some(if t.input_schema.is_null() {
                    json!({"type": "object"})
                } else {
                    t.input_schema
                }),
                strict: None,
            },
        });
    }
    let mut parallel_tool_calls = None;
    let tool_choice = req.tool_choice.map(|c| {
        let (choice, disable) = match c {
            a::ToolChoice::Auto {
                disable_parallel_tool_use,
            } => (
                o::ToolChoice::Mode("auto".into()),
                disable_parallel_tool_use,
            ),
            a::ToolChoice::Any {
                disable_parallel_tool_use,
            } => (
                o::ToolChoice::Mode("required".into()),
                disable_parallel_tool_use,
            ),
            a::ToolChoice::Tool {
                name,
                disable_parallel_tool_use,
            } => (
                o::ToolChoice::Named(o::NamedToolChoice {
                    kind: "function".into(),
                    function: o::FunctionName { name },
                }),
                disable_parallel_tool_use,
            ),
            a::ToolChoice::None => (o::ToolChoice::Mode("none".into()), None),
        };
        if disable == Some(true) && !tools.is_empty() {
            parallel_tool_calls = Some(false);
        }
        choice
    });

    let reasoning_effort = match &req.thinking {
        None => None,
        Some(t) => effort_of(t)?,
    };
    let mut extra = Map::new();
    if let Some(k) = req.top_k {
        // Gemini has top_k; the pipeline drops it for targets that do not.
        extra.insert("top_k".into(), json!(k));
    }
    for (key, _) in req.extra {
        if let Some((_, feature)) = REFUSED.iter().find(|(k, _)| *k == key) {
            return Err(LlmError::unsupported(*feature, TARGET));
        }
        notes.dropped.push(key);
    }
    let stream = req.stream.unwrap_or(false);
    let body = o::ChatRequest {
        model: req.model,
        messages,
        stream: req.stream,
        stream_options: stream.then(|| o::StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        max_tokens: Some(req.max_tokens),
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        n: None,
        stop: req.stop_sequences.map(o::Stop::Many),
        seed: None,
        presence_penalty: None,
        frequency_penalty: None,
        logit_bias: None,
        logprobs: None,
        top_logprobs: None,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        parallel_tool_calls,
        response_format: None,
        user: req.metadata.and_then(|m| m.user_id),
        metadata: None,
        reasoning_effort,
        extra,
    };
    Ok((body, notes))
}

/// `thinking: {type: enabled, budget_tokens}` → a reasoning effort of about that size.
fn effort_of(thinking: &Value) -> Result<Option<String>, LlmError> {
    match thinking.get("type").and_then(Value::as_str) {
        Some("disabled") => Ok(None),
        Some("enabled") => {
            let budget = thinking
                .get("budget_tokens")
                .and_then(Value::as_u64)
                .ok_or_else(|| {
                    LlmError::Invalid("thinking.budget_tokens: Field required".into())
                })?;
            Ok(Some(
                match budget {
                    0..=2048 => "low",
                    2049..=8192 => "medium",
                    _ => "high",
                }
                .into(),
            ))
        }
        // `adaptive`: the model decides how long to think.
        Some("adaptive") => Ok(Some("medium".into())),
        other => Err(LlmError::Invalid(format!(
            "thinking.type: expected enabled, disabled or adaptive, not {other:?}"
        ))),
    }
}

fn text_message(role: o::Role, text: String) -> o::Message {
    o::Message {
        role,
        content: Some(o::Content::Text(text)),
        name: None,
        tool_calls: None,
        tool_call_id: None,
        extra: Map::new(),
    }
}

fn kind_of(block: &a::ContentBlock) -> String {
    match block {
        a::ContentBlock::Known(b) => match b {
            a::Block::Text { .. } => "text",
            a::Block::Image { .. } => "image",
            a::Block::ToolUse { .. } => "tool_use",
            a::Block::ToolResult { .. } => "tool_result",
            a::Block::Thinking { .. } => "thinking",
            a::Block::RedactedThinking { .. } => "redacted_thinking",
        }
        .to_owned(),
        a::ContentBlock::Unknown(v) => v
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("unknown")
            .to_owned(),
    }
}

/// A user turn: its tool results first, as `tool` messages answering the previous assistant
/// turn, then whatever else it says as one user message.
fn user_turn(
    blocks: Vec<a::ContentBlock>,
    i: usize,
    messages: &mut Vec<o::Message>,
) -> Result<(), LlmError> {
    let mut parts = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        match block {
            a::ContentBlock::Known(a::Block::ToolResult {
                tool_use_id,
                content,
                is_error,
            }) => {
                let mut text = match content {
                    None => String::new(),
                    Some(a::ToolResultContent::Text(t)) => t,
                    Some(a::ToolResultContent::Blocks(bs)) => bs
                        .into_iter()
                        .map(|b| match b {
                            a::ContentBlock::Known(a::Block::Text { text }) => Ok(text),
                            other => Err(LlmError::unsupported(
                                format!(
                                    "messages[{i}].content[{j}]: a {} block inside a tool result",
                                    kind_of(&other)
                                ),
                                TARGET,
                            )),
                        })
                        .collect::<Result<Vec<_>, _>>()?
                        .join("\n"),
                };
                if is_error == Some(true) {
                    text = format!("Error: {text}");
                }
                messages.push(o::Message {
                    role: o::Role::Tool,
                    content: Some(o::Content::Text(text)),
                    name: None,
                    tool_calls: None,
                    tool_call_id: Some(tool_use_id),
                    extra: Map::new(),
                });
            }
            other => parts.push(user_part(other, i, j)?),
        }
    }
    if !parts.is_empty() {
        let content = match parts.as_slice() {
            [o::ContentPart::Known(o::Part::Text { text })] => o::Content::Text(text.clone()),
            _ => o::Content::Parts(parts),
        };
        messages.push(o::Message {
            role: o::Role::User,
            content: Some(content),
            name: None,
            tool_calls: None,
            tool_call_id: None,
            extra: Map::new(),
        });
    }
    Ok(())
}

fn user_part(block: a::ContentBlock, i: usize, j: usize) -> Result<o::ContentPart, LlmError> {
    let url = match block {
        a::ContentBlock::Known(a::Block::Text { text }) => {
            return Ok(o::ContentPart::Known(o::Part::Text { text }))
        }
        a::ContentBlock::Known(a::Block::Image {
            source: a::ImageSource::Base64 { media_type, data },
        }) => format!("data:{media_type};base64,{data}"),
        a::ContentBlock::Known(a::Block::Image {
            source: a::ImageSource::Url { url },
        }) => url,
        a::ContentBlock::Unknown(v)
            if v.get("type").and_then(Value::as_str) == Some("document") =>
        {
            return document_part(&v, i, j)
        }
        other => {
            return Err(LlmError::unsupported(
                format!("messages[{i}].content[{j}]: a {} block", kind_of(&other)),
                TARGET,
            ))
        }
    };
    Ok(o::ContentPart::Known(o::Part::ImageUrl {
        image_url: o::ImageUrl { url, detail: None },
    }))
}

/// A `document` block: plain text becomes text; a base64 PDF becomes OpenAI's `file` part.
fn document_part(v: &Value, i: usize, j: usize) -> Result<o::ContentPart, LlmError> {
    let source = v.get("source").unwrap_or(&Value::Null);
    let kind = source.get("type").and_then(Value::as_str);
    let media = source.get("media_type").and_then(Value::as_str);
    let data = source.get("data").and_then(Value::as_str);
    match (kind, media, data) {
        (Some("text"), _, Some(text)) => Ok(o::ContentPart::Known(o::Part::Text {
            text: text.to_owned(),
        })),
        (Some("base64"), Some("application/pdf"), Some(data)) => {
            let filename = v
                .get("title")
                .and_then(Value::as_str)
                .unwrap_or("document.pdf");
            Ok(o::ContentPart::Unknown(json!({
                "type": "file",
                "file": {"filename": filename, "file_data": format!("data:application/pdf;base64,{data}")}
            })))
        }
        _ => Err(LlmError::unsupported(
            format!(
                "messages[{i}].content[{j}]: a document from a {} source",
                kind.unwrap_or("unknown")
            ),
            TARGET,
        )),
    }
}

fn assistant_turn(
    blocks: Vec<a::ContentBlock>,
    i: usize,
    dropped_thinking: &mut bool,
) -> Result<o::Message, LlmError> {
    let mut text = String::new();
    let mut calls = Vec::new();
    for (j, block) in blocks.into_iter().enumerate() {
        match block {
            a::ContentBlock::Known(a::Block::Text { text: t }) => text.push_str(&t),
            a::ContentBlock::Known(a::Block::ToolUse { id, name, input }) => {
                calls.push(o::ToolCall {
                    id,
                    kind: "function".into(),
                    function: o::FunctionCall {
                        name,
                        arguments: input.to_string(),
                    },
                })
            }
            a::ContentBlock::Known(
                a::Block::Thinking { .. } | a::Block::RedactedThinking { .. },
            ) => {
                *dropped_thinking = true;
            }
            other => {
                return Err(LlmError::unsupported(
                    format!(
                        "messages[{i}].content[{j}]: a {} block in an assistant turn",
                        kind_of(&other)
                    ),
                    TARGET,
                ))
            }
        }
    }
    Ok(o::Message {
        role: o::Role::Assistant,
        content: (!text.is_empty() || calls.is_empty()).then_some(o::Content::Text(text)),
        name: None,
        tool_calls: (!calls.is_empty()).then_some(calls),
        tool_call_id: None,
        extra: Map::new(),
    })
}
