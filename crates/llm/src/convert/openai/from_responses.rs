//! OpenAI Responses request → OpenAI chat request, for a client speaking the Responses API to a
//! model served through chat completions (any dialect after that).
//!
//! Gatehouse's Responses API is stateless (`store: false` semantics): the whole conversation
//! comes in `input`. `instructions` becomes the system message; message items become messages;
//! `function_call` items become the assistant's tool calls and `function_call_output` items tool
//! messages; `text.format` becomes `response_format`. Reasoning items replayed from earlier turns
//! are left out (reported as dropped). Hosted tools, stored state (`previous_response_id`,
//! `item_reference`) and background runs are refused with the feature named.

use serde_json::{json, Value};

use crate::convert::RequestNotes;
use crate::types::openai as o;
use crate::types::responses as r;
use crate::types::Map;
use crate::LlmError;

const TARGET: &str = "Gatehouse's stateless Responses API";
/// Request fields that are hints, or about storage and delivery: left out, and reported.
const DROPPED: &[&str] = &[
    "truncation",
    "service_tier",
    "include",
    "prompt_cache_key",
    "prompt_cache_retention",
    "safety_identifier",
    "top_logprobs",
    "max_tool_calls",
];

/// Translates a Responses request into the canonical chat request. The model name is kept.
pub fn request(req: r::Request) -> Result<(o::ChatRequest, RequestNotes), LlmError> {
    let mut notes = RequestNotes::default();
    if req.previous_response_id.is_some() {
        return Err(LlmError::unsupported(
            "previous_response_id (send the whole conversation as `input`)",
            TARGET,
        ));
    }
    if req.store == Some(true) {
        notes.dropped.push("store".into());
    }
    if req.metadata.is_some() {
        notes.dropped.push("metadata".into());
    }
    for (key, value) in &req.extra {
        match key.as_str() {
            "background" if value == &Value::Bool(true) => {
                return Err(LlmError::unsupported("background responses", TARGET))
            }
            "prompt" => return Err(LlmError::unsupported("stored prompts (prompt)", TARGET)),
            "conversation" => {
                return Err(LlmError::unsupported(
                    "stored conversations (conversation)",
                    TARGET,
                ))
            }
            k if DROPPED.contains(&k) || k == "background" => notes.dropped.push(key.clone()),
            _ => notes.dropped.push(key.clone()),
        }
    }

    let mut messages = Vec::new();
    if let Some(i) = req.instructions.filter(|i| !i.is_empty()) {
        messages.push(message(o::Role::System, Some(o::Content::Text(i))));
    }
    match req.input {
        None => {}
        Some(r::Input::Text(t)) => messages.push(message(o::Role::User, Some(o::Content::Text(t)))),
        Some(r::Input::Items(items)) => {
            let mut dropped_reasoning = false;
            for (i, item) in items.into_iter().enumerate() {
                add_item(&mut messages, item, i, &mut dropped_reasoning)?;
            }
            if dropped_reasoning {
                notes
                    .dropped
                    .push("reasoning items of earlier turns".into());
            }
        }
    }
    if messages.is_empty() {
        return Err(LlmError::Invalid("input: Field required".into()));
    }

    let tools = req
        .tools
        .unwrap_or_default()
        .into_iter()
        .enumerate()
        .map(|(j, t)| tool(t, j))
        .collect::<Result<Vec<_>, _>>()?;
    let tool_choice = req.tool_choice.map(tool_choice).transpose()?;
    let response_format = match req.text.and_then(|t| t.format) {
        None => None,
        Some(f) => response_format(f)?,
    };
    let stream = req.stream.unwrap_or(false);
    let body = o::ChatRequest {
        model: req.model,
        messages,
        stream: req.stream,
        stream_options: stream.then(|| o::StreamOptions {
            include_usage: Some(true),
            extra: Map::new(),
        }),
        max_tokens: req.max_output_tokens,
        max_completion_tokens: None,
        temperature: req.temperature,
        top_p: req.top_p,
        n: None,
        stop: None,
        seed: None,
        presence_penalty: None,
        frequency_penalty: None,
        logit_bias: None,
        logprobs: None,
        top_logprobs: None,
        tools: (!tools.is_empty()).then_some(tools),
        tool_choice,
        parallel_tool_calls: req.parallel_tool_calls,
        response_format,
        user: req.user,
        metadata: None,
        reasoning_effort: req.reasoning.and_then(|r| r.effort),
        extra: Map::new(),
    };
    Ok((body, notes))
}

fn message(role: o::Role, content: Option<o::Content>) -> o::Message {
    o::Message {
        role,
        content,
        name: None,
        tool_calls: None,
        tool_call_id: None,
        extra: Map::new(),
    }
}

fn str_field<'a>(v: &'a Value, key: &str, at: &str) -> Result<&'a str, LlmError> {
    v.get(key)
        .and_then(Value::as_str)
        .ok_or_else(|| LlmError::Invalid(format!("{at}.{key}: Field required (a string)")))
}

/// One input item, appended to the chat messages.
fn add_item(
    messages: &mut Vec<o::Message>,
    item: Value,
    i: usize,
    dropped_reasoning: &mut bool,
) -> Result<(), LlmError> {
    let at = format!("input[{i}]");
    let kind = item.get("type").and_then(Value::as_str);
    match kind {
        None | Some("message") => {
            let role = match str_field(&item, "role", &at)? {
                "user" => o::Role::User,
                "system" => o::Role::System,
                "developer" => o::Role::Developer,
                "assistant" => o::Role::Assistant,
                other => {
                    return Err(LlmError::Invalid(format!(
                        "{at}.role: expected user, system, developer or assistant, not {other:?}"
                    )))
                }
            };
            let content = content(item.get("content"), &at)?;
            messages.push(message(role, Some(content)));
        }
        Some("function_call") => {
            let call = o::ToolCall {
                id: str_field(&item, "call_id", &at)?.to_owned(),
                kind: "function".into(),
                function: o::FunctionCall {
                    name: str_field(&item, "name", &at)?.to_owned(),
                    arguments: item
                        .get("arguments")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_owned(),
                },
            };
            // Calls after an assistant turn (or after other calls) belong to that turn.
            match messages.last_mut() {
                Some(last) if last.role == o::Role::Assistant => {
                    last.tool_calls.get_or_insert_with(Vec::new).push(call);
                }
                _ => {
                    let mut m = message(o::Role::Assistant, None);
                    m.tool_calls = Some(vec![call]);
                    messages.push(m);
                }
            }
        }
        Some("function_call_output") => {
            let output = match item.get("output") {
                Some(Value::String(s)) => s.clone(),
                Some(Value::Array(parts)) => parts
                    .iter()
                    .map(|p| match p.get("type").and_then(Value::as_str) {
                        Some("input_text" | "output_text") => {
                            Ok(p.get("text").and_then(Value::as_str).unwrap_or_default())
                        }
                        other => Err(LlmError::unsupported(
                            format!(
                                "{at}.output: a {} part in a function call output",
                                other.unwrap_or("typeless")
                            ),
                            TARGET,
                        )),
                    })
                    .collect::<Result<Vec<_>, _>>()?
                    .join("\n"),
                _ => {
                    return Err(LlmError::Invalid(format!(
                        "{at}.output: Field required (a string)"
                    )))
                }
            };
            let mut m = message(o::Role::Tool, Some(o::Content::Text(output)));
            m.tool_call_id = Some(str_field(&item, "call_id", &at)?.to_owned());
            messages.push(m);
        }
        Some("reasoning") => *dropped_reasoning = true,
        Some("item_reference") => {
            return Err(LlmError::unsupported(
                format!("{at}: item_reference (send the item itself)"),
                TARGET,
            ))
        }
        Some(other) => {
            return Err(LlmError::unsupported(
                format!("{at}: the input item type `{other}`"),
                TARGET,
            ))
        }
    }
    Ok(())
}

/// A message item's content: a string, or parts (text, images, files).
fn content(v: Option<&Value>, at: &str) -> Result<o::Content, LlmError> {
    let parts = match v {
        Some(Value::String(s)) => return Ok(o::Content::Text(s.clone())),
        Some(Value::Array(parts)) => parts,
        _ => {
            return Err(LlmError::Invalid(format!(
                "{at}.content: Field required (a string or a list of parts)"
            )))
        }
    };
    let mut out = Vec::new();
    for (j, p) in parts.iter().enumerate() {
        let kind = p.get("type").and_then(Value::as_str).unwrap_or_default();
        out.push(match kind {
            "input_text" | "output_text" | "text" => o::ContentPart::Known(o::Part::Text {
                text: str_field(p, "text", &format!("{at}.content[{j}]"))?.to_owned(),
            }),
            "refusal" => o::ContentPart::Known(o::Part::Text {
                text: str_field(p, "refusal", &format!("{at}.content[{j}]"))?.to_owned(),
            }),
            "input_image" => match p.get("image_url").and_then(Value::as_str) {
                Some(url) => o::ContentPart::Known(o::Part::ImageUrl {
                    image_url: o::ImageUrl {
                        url: url.to_owned(),
                        detail: p
                            .get("detail")
                            .and_then(Value::as_str)
                            .filter(|d| *d != "auto")
                            .map(str::to_owned),
                    },
                }),
                None => {
                    return Err(LlmError::unsupported(
                        format!("{at}.content[{j}]: images by file_id"),
                        TARGET,
                    ))
                }
            },
            "input_file" => match p.get("file_data").and_then(Value::as_str) {
                Some(data) => o::ContentPart::Unknown(json!({"type": "file", "file": {
                    "file_data": data,
                    "filename": p.get("filename").and_then(Value::as_str).unwrap_or("file.pdf"),
                }})),
                None => {
                    return Err(LlmError::unsupported(
                        format!("{at}.content[{j}]: files by file_id or file_url"),
                        TARGET,
                    ))
                }
            },
            other => {
                return Err(LlmError::unsupported(
                    format!("{at}.content[{j}]: the content part type `{other}`"),
                    TARGET,
                ))
            }
        });
    }
    Ok(match out.as_slice() {
        [o::ContentPart::Known(o::Part::Text { text })] => o::Content::Text(text.clone()),
        _ => o::Content::Parts(out),
    })
}

fn tool(t: Value, j: usize) -> Result<o::Tool, LlmError> {
    match t.get("type").and_then(Value::as_str) {
        Some("function") => Ok(o::Tool {
            kind: "function".into(),
            function: o::FunctionDef {
                name: str_field(&t, "name", &format!("tools[{j}]"))?.to_owned(),
                description: t
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                parameters: Some(
                    t.get("parameters")
                        .filter(|p| !p.is_null())
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object"})),
                ),
                strict: t.get("strict").and_then(Value::as_bool),
            },
        }),
        other => Err(LlmError::unsupported(
            format!(
                "tools[{j}]: the hosted tool `{}`",
                other.unwrap_or("typeless")
            ),
            TARGET,
        )),
    }
}

fn tool_choice(c: Value) -> Result<o::ToolChoice, LlmError> {
    match &c {
        Value::String(mode) if ["auto", "none", "required"].contains(&mode.as_str()) => {
            Ok(o::ToolChoice::Mode(mode.clone()))
        }
        Value::Object(_) if c.get("type").and_then(Value::as_str) == Some("function") => {
            Ok(o::ToolChoice::Named(o::NamedToolChoice {
                kind: "function".into(),
                function: o::FunctionName {
                    name: str_field(&c, "name", "tool_choice")?.to_owned(),
                },
            }))
        }
        _ => Err(LlmError::unsupported(format!("tool_choice {c}"), TARGET)),
    }
}

fn response_format(f: Value) -> Result<Option<o::ResponseFormat>, LlmError> {
    Ok(match f.get("type").and_then(Value::as_str) {
        Some("text") | None => None,
        Some("json_object") => Some(o::ResponseFormat::JsonObject),
        Some("json_schema") => Some(o::ResponseFormat::JsonSchema {
            json_schema: o::JsonSchema {
                name: str_field(&f, "name", "text.format")?.to_owned(),
                description: f
                    .get("description")
                    .and_then(Value::as_str)
                    .map(str::to_owned),
                schema: f.get("schema").cloned(),
                strict: f.get("strict").and_then(Value::as_bool),
            },
        }),
        Some(other) => {
            return Err(LlmError::Invalid(format!(
                "text.format.type: expected text, json_object or json_schema, not {other:?}"
            )))
        }
    })
}
