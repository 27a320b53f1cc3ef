//! OpenAI chat and embeddings requests → Gemini `generateContent` and `batchEmbedContents`.
//!
//! System and developer messages become `systemInstruction`; assistant turns become `model`
//! turns; tool results become `functionResponse` parts named after the call they answer. The model
//! name goes in the URL, not the body, so the gateway builds the path.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::convert::{media_type_of, parse_arguments, parse_data_url, RequestNotes};
use crate::types::gemini as g;
use crate::types::openai as o;
use crate::LlmError;

const TARGET: &str = "Gemini models";

/// Translates a chat request into a `generateContent` body.
pub fn request(req: o::ChatRequest) -> Result<(g::Request, RequestNotes), LlmError> {
    let mut notes = RequestNotes::default();
    if req.logit_bias.as_ref().is_some_and(|b| !b.is_empty()) {
        return Err(LlmError::unsupported("logit_bias", TARGET));
    }
    for (set, name) in [
        (req.user.is_some(), "user"),
        (req.metadata.is_some(), "metadata"),
    ] {
        if set {
            notes.dropped.push(name.into());
        }
    }

    let mut system = Vec::new();
    let mut contents: Vec<g::Content> = Vec::new();
    let mut call_names: HashMap<String, String> = HashMap::new();
    for (i, m) in req.messages.into_iter().enumerate() {
        match m.role {
            o::Role::System | o::Role::Developer => {
                system.push(g::Part::text(
                    m.content.map(|c| c.text()).unwrap_or_default(),
                ));
            }
            o::Role::User => push(&mut contents, "user", user_parts(m.content, i)?),
            o::Role::Assistant => {
                let mut parts = Vec::new();
                let text = m.content.map(|c| c.text()).unwrap_or_default();
                if !text.is_empty() {
                    parts.push(g::Part::text(text));
                }
                for call in m.tool_calls.unwrap_or_default() {
                    let args = parse_arguments(&call.function.name, &call.function.arguments)?;
                    call_names.insert(call.id.clone(), call.function.name.clone());
                    parts.push(g::Part {
                        function_call: Some(g::FunctionCall {
                            id: None,
                            name: call.function.name,
                            args,
                        }),
                        ..g::Part::default()
                    });
                }
                push(&mut contents, "model", parts);
            }
            o::Role::Tool | o::Role::Function => {
                let name = match (&m.tool_call_id, &m.name) {
                    (Some(id), _) => call_names.get(id).cloned().ok_or_else(|| {
                        LlmError::Invalid(format!(
                            "messages[{i}]: tool_call_id {id:?} answers no earlier tool call"
                        ))
                    })?,
                    (None, Some(name)) => name.clone(),
                    (None, None) => {
                        return Err(LlmError::Invalid(format!(
                            "messages[{i}]: a tool message needs tool_call_id"
                        )))
                    }
                };
                let text = m.content.map(|c| c.text()).unwrap_or_default();
                // Gemini wants an object: a JSON object result goes as is, anything else is wrapped.
                let response = match serde_json::from_str::<Value>(&text) {
                    Ok(v @ Value::Object(_)) => v,
                    _ => json!({ "content": text }),
                };
                let part = g::Part {
                    function_response: Some(g::FunctionResponse {
                        id: None,
                        name,
                        response,
                    }),
                    ..g::Part::default()
                };
                push(&mut contents, "user", vec![part]);
            }
        }
    }

    let tools = req.tools.filter(|t| !t.is_empty()).map(|tools| {
        vec![g::Tool {
            function_declarations: tools
                .into_iter()
                .map(|t| g::FunctionDeclaration {
                    name: t.function.name,
                    description: t.function.description,
                    parameters_json_schema: t.function.parameters,
                })
                .collect(),
        }]
    });
    let tool_config = match req.tool_choice {
        None => None,
        Some(o::ToolChoice::Mode(mode)) => {
            let mode = match mode.as_str() {
                "none" => "NONE",
                "auto" => "AUTO",
                "required" => "ANY",
                other => {
                    return Err(LlmError::Invalid(format!(
                        "tool_choice: unknown value {other:?} (expected none, auto, required or a function)"
                    )))
                }
            };
            Some(function_calling(mode, None))
        }
        Some(o::ToolChoice::Named(named)) => {
            Some(function_calling("ANY", Some(vec![named.function.name])))
        }
    };
    if req.parallel_tool_calls == Some(false) {
        notes.dropped.push("parallel_tool_calls".into());
    }

    let mut config = g::GenerationConfig {
        candidate_count: req.n,
        stop_sequences: req.stop.map(o::Stop::into_vec),
        max_output_tokens: req.max_completion_tokens.or(req.max_tokens),
        temperature: req.temperature,
        top_p: req.top_p,
        seed: req.seed,
        presence_penalty: req.presence_penalty,
        frequency_penalty: req.frequency_penalty,
        response_logprobs: req.logprobs.filter(|l| *l),
        logprobs: req.top_logprobs,
        thinking_config: thinking_for(req.reasoning_effort.as_deref())?,
        ..g::GenerationConfig::default()
    };
    match req.response_format {
        None | Some(o::ResponseFormat::Text) => {}
        Some(o::ResponseFormat::JsonObject) => {
            config.response_mime_type = Some("application/json".into());
        }
        Some(o::ResponseFormat::JsonSchema { json_schema }) => {
            config.response_mime_type = Some("application/json".into());
            config.response_json_schema = json_schema.schema;
        }
    }

    let mut extra = crate::types::Map::new();
    for (key, value) in req.extra {
        match key.as_str() {
            "top_k" => config.top_k = value.as_u64().and_then(|k| u32::try_from(k).ok()),
            "safety_settings" | "safetySettings" => {
                extra.insert("safetySettings".into(), value);
            }
            "cached_content" | "cachedContent" => {
                extra.insert("cachedContent".into(), value);
            }
            _ => notes.dropped.push(key),
        }
    }

    let has_config = config != g::GenerationConfig::default();
    let body = g::Request {
        contents,
        system_instruction: (!system.is_empty()).then_some(g::Content {
            role: None,
            parts: system,
        }),
        tools,
        tool_config,
        generation_config: has_config.then_some(config),
        extra,
    };
    Ok((body, notes))
}

/// Translates an embeddings request into a `batchEmbedContents` body for `model`.
pub fn embeddings(
    req: o::EmbeddingsRequest,
    upstream_model: &str,
) -> Result<g::BatchEmbedRequest, LlmError> {
    let texts = match req.input {
        o::EmbeddingInput::One(t) => vec![t],
        o::EmbeddingInput::Many(v) => v,
        o::EmbeddingInput::Tokens(_) | o::EmbeddingInput::ManyTokens(_) => {
            return Err(LlmError::unsupported("token-array embedding input", TARGET))
        }
    };
    let model = format!("models/{upstream_model}");
    Ok(g::BatchEmbedRequest {
        requests: texts
            .into_iter()
            .map(|text| g::EmbedRequest {
                model: model.clone(),
                content: g::Content {
                    role: None,
                    parts: vec![g::Part::text(text)],
                },
                output_dimensionality: req.dimensions,
            })
            .collect(),
    })
}

fn function_calling(mode: &str, allowed: Option<Vec<String>>) -> g::ToolConfig {
    g::ToolConfig {
        function_calling_config: g::FunctionCallingConfig {
            mode: mode.to_owned(),
            allowed_function_names: allowed,
        },
    }
}

fn thinking_for(effort: Option<&str>) -> Result<Option<Value>, LlmError> {
    let budget = match effort {
        None => return Ok(None),
        Some("none") => 0,
        Some("minimal") => 512,
        Some("low") => 1024,
        Some("medium") => 8192,
        Some("high") => 24576,
        Some(other) => {
            return Err(LlmError::Invalid(format!(
                "reasoning_effort: unknown value {other:?} (expected minimal, low, medium or high)"
            )))
        }
    };
    Ok(Some(json!({ "thinkingBudget": budget })))
}

fn user_parts(content: Option<o::Content>, i: usize) -> Result<Vec<g::Part>, LlmError> {
    let parts = match content {
        None => return Ok(Vec::new()),
        Some(o::Content::Text(t)) => return Ok(vec![g::Part::text(t)]),
        Some(o::Content::Parts(parts)) => parts,
    };
    parts
        .into_iter()
        .enumerate()
        .map(|(j, part)| match part {
            o::ContentPart::Known(o::Part::Text { text }) => Ok(g::Part::text(text)),
            o::ContentPart::Known(o::Part::ImageUrl { image_url }) => {
                Ok(match parse_data_url(&image_url.url) {
                    Some((mime_type, data)) => g::Part {
                        inline_data: Some(g::Blob {
                            mime_type: mime_type.to_owned(),
                            data: data.to_owned(),
                        }),
                        ..g::Part::default()
                    },
                    None if image_url.url.starts_with("http") => g::Part {
                        file_data: Some(g::FileData {
                            mime_type: Some(media_type_of(&image_url.url).to_owned()),
                            file_uri: image_url.url,
                        }),
                        ..g::Part::default()
                    },
                    None => {
                        return Err(LlmError::Invalid(format!(
                            "messages[{i}].content[{j}].image_url.url must be an http(s) or base64 data URL"
                        )))
                    }
                })
            }
            other => Err(LlmError::unsupported(
                format!("content part type {:?}", other.kind()),
                TARGET,
            )),
        })
        .collect()
}

/// Appends parts to the last turn when it has the same role (Gemini wants alternation).
fn push(contents: &mut Vec<g::Content>, role: &str, parts: Vec<g::Part>) {
    if let Some(last) = contents.last_mut() {
        if last.role.as_deref() == Some(role) {
            last.parts.extend(parts);
            return;
        }
    }
    contents.push(g::Content {
        role: Some(role.to_owned()),
        parts,
    });
}
