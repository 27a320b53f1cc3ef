//! OpenAI chat response and stream → OpenAI Responses: a `response` object whose `output` holds
//! a `reasoning` item (reasoning text), a `message` item (`output_text`) and `function_call`
//! items; and the typed stream events (`response.created`, `response.output_item.added`,
//! `response.output_text.delta`, `response.function_call_arguments.delta`, …,
//! `response.completed`), each with its `sequence_number`.
//!
//! Everything is written as JSON in the shape of OpenAI's published schema. Fields of the
//! request that a response repeats (instructions, tools, text format, sampling) are echoed.

use std::collections::HashMap;

use serde_json::{json, Value};

use crate::types::openai as o;
use crate::types::responses as r;
use crate::types::Map;

/// The request fields a response repeats.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Echo {
    fields: Map,
}

impl Echo {
    pub fn of(req: &r::Request) -> Self {
        let mut fields = Map::new();
        let mut put = |k: &str, v: Value| {
            fields.insert(k.to_owned(), v);
        };
        put("instructions", json!(req.instructions));
        put("max_output_tokens", json!(req.max_output_tokens));
        put(
            "parallel_tool_calls",
            json!(req.parallel_tool_calls.unwrap_or(true)),
        );
        put(
            "reasoning",
            json!({"effort": req.reasoning.as_ref().and_then(|r| r.effort.clone()), "summary": null}),
        );
        put("temperature", json!(req.temperature.unwrap_or(1.0)));
        put("top_p", json!(req.top_p.unwrap_or(1.0)));
        put(
            "text",
            json!({"format": req.text.as_ref().and_then(|t| t.format.clone()).unwrap_or(json!({"type": "text"}))}),
        );
        put(
            "tool_choice",
            req.tool_choice.clone().unwrap_or_else(|| json!("auto")),
        );
        put(
            "tools",
            Value::Array(req.tools.iter().flatten().map(echo_tool).collect()),
        );
        if let Some(u) = &req.user {
            put("user", json!(u));
        }
        put("metadata", json!(req.metadata.clone().unwrap_or_default()));
        Self { fields }
    }
}

/// A tool as a response repeats it: a function tool with every field its schema lists.
fn echo_tool(t: &Value) -> Value {
    let mut t = t.clone();
    if let Value::Object(m) = &mut t {
        if m.get("type").and_then(Value::as_str) == Some("function") {
            for k in ["strict", "parameters", "description"] {
                m.entry(k).or_insert(Value::Null);
            }
        }
    }
    t
}

/// A response id for an upstream completion id.
pub fn response_id(upstream: &str) -> String {
    let bare = upstream.strip_prefix("chatcmpl-").unwrap_or(upstream);
    if bare.starts_with("resp_") {
        bare.to_owned()
    } else {
        format!("resp_{bare}")
    }
}

/// The response object with `status` and `output`, without usage (the schema has no null
/// usage: it is left out until known).
fn skeleton(id: &str, created_at: u64, model: &str, echo: &Echo, status: &str) -> Map {
    let mut m = Map::new();
    m.insert("id".into(), json!(id));
    m.insert("object".into(), json!("response"));
    m.insert("created_at".into(), json!(created_at));
    m.insert("status".into(), json!(status));
    m.insert("error".into(), Value::Null);
    m.insert("incomplete_details".into(), Value::Null);
    m.insert("model".into(), json!(model));
    m.insert("output".into(), json!([]));
    m.insert("previous_response_id".into(), Value::Null);
    m.insert("store".into(), json!(false));
    m.insert("truncation".into(), json!("disabled"));
    for (k, v) in &echo.fields {
        m.insert(k.clone(), v.clone());
    }
    m
}

fn usage(u: &o::Usage) -> Value {
    json!({
        "input_tokens": u.prompt_tokens,
        "input_tokens_details": {"cached_tokens": u.prompt_tokens_details.as_ref().map_or(0, |d| d.cached_tokens)},
        "output_tokens": u.completion_tokens,
        "output_tokens_details": {"reasoning_tokens": u.completion_tokens_details.as_ref().map_or(0, |d| d.reasoning_tokens)},
        "total_tokens": u.prompt_tokens + u.completion_tokens,
    })
}

/// `status` and `incomplete_details` for a finish reason.
fn outcome(finish_reason: Option<&str>) -> (&'static str, Value) {
    match finish_reason {
        Some("length") => ("incomplete", json!({"reason": "max_output_tokens"})),
        Some("content_filter") => ("incomplete", json!({"reason": "content_filter"})),
        _ => ("completed", Value::Null),
    }
}

fn message_item(id: &str, text: &str, status: &str) -> Value {
    json!({"type": "message", "id": id, "status": status, "role": "assistant",
           "content": [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}]})
}

fn reasoning_item(id: &str, text: &str) -> Value {
    json!({"type": "reasoning", "id": id, "summary": [],
           "content": [{"type": "reasoning_text", "text": text}]})
}

fn call_item(id: &str, call_id: &str, name: &str, arguments: &str, status: &str) -> Value {
    json!({"type": "function_call", "id": id, "call_id": call_id, "name": name,
           "arguments": arguments, "status": status})
}

/// Translates a complete chat response into a `response` object.
pub fn response(resp: o::ChatResponse, model: &str, created_at: u64, echo: &Echo) -> Value {
    let id = response_id(&resp.id);
    let choice = resp.choices.into_iter().next();
    let finish = choice.as_ref().and_then(|c| c.finish_reason.clone());
    let (status, incomplete) = outcome(finish.as_deref());
    let mut output = Vec::new();
    if let Some(c) = choice {
        let m = c.message;
        if let Some(t) = m.reasoning_content.filter(|t| !t.is_empty()) {
            output.push(reasoning_item(&format!("rs_{id}"), &t));
        }
        let text = m.content.or(m.refusal).unwrap_or_default();
        if !text.is_empty() {
            output.push(message_item(&format!("msg_{id}"), &text, "completed"));
        }
        for (k, call) in m.tool_calls.unwrap_or_default().into_iter().enumerate() {
            output.push(call_item(
                &format!("fc_{id}_{k}"),
                &call.id,
                &call.function.name,
                &call.function.arguments,
                "completed",
            ));
        }
    }
    let mut body = skeleton(&id, created_at, model, echo, status);
    body.insert("incomplete_details".into(), incomplete);
    body.insert("output".into(), Value::Array(output));
    if let Some(u) = &resp.usage {
        body.insert("usage".into(), usage(u));
    }
    Value::Object(body)
}

#[derive(Debug)]
enum Open {
    Message {
        index: usize,
        id: String,
        text: String,
    },
    Reasoning {
        index: usize,
        id: String,
        text: String,
    },
    Call {
        index: usize,
        id: String,
        call_id: String,
        name: String,
        args: String,
    },
}

/// The state of one chat stream being turned into Responses events.
#[derive(Debug)]
pub struct Stream {
    id: String,
    created_at: u64,
    model: String,
    echo: Echo,
    seq: u64,
    started: bool,
    /// Finished output items, by output index.
    items: Vec<Value>,
    open: Option<Open>,
    /// OpenAI tool call index → its output index, for pieces of a call already closed.
    calls: HashMap<u32, usize>,
    finish_reason: Option<String>,
    usage: Option<o::Usage>,
    /// Streamed text, counted for usage when the upstream reports none.
    text: String,
    prompt_tokens: u64,
    done: bool,
}

impl Stream {
    pub fn new(model: &str, created_at: u64, echo: Echo, prompt_tokens: u64) -> Self {
        Self {
            id: String::new(),
            created_at,
            model: model.to_owned(),
            echo,
            seq: 0,
            started: false,
            items: Vec::new(),
            open: None,
            calls: HashMap::new(),
            finish_reason: None,
            usage: None,
            text: String::new(),
            prompt_tokens,
            done: false,
        }
    }

    fn event(&mut self, kind: &str, mut fields: Value) -> Value {
        if let Value::Object(m) = &mut fields {
            m.insert("type".into(), json!(kind));
            m.insert("sequence_number".into(), json!(self.seq));
        }
        self.seq += 1;
        fields
    }

    fn start(&mut self, upstream_id: &str, out: &mut Vec<Value>) {
        if self.started {
            return;
        }
        self.started = true;
        self.id = response_id(if upstream_id.is_empty() {
            "gatehouse"
        } else {
            upstream_id
        });
        let r = Value::Object(skeleton(
            &self.id,
            self.created_at,
            &self.model,
            &self.echo,
            "in_progress",
        ));
        let created = self.event("response.created", json!({"response": r}));
        out.push(created);
        let progress = self.event("response.in_progress", json!({"response": r}));
        out.push(progress);
    }

    /// Closes the open item: its `done` events, then `response.output_item.done`.
    fn close(&mut self, out: &mut Vec<Value>) {
        let Some(open) = self.open.take() else { return };
        let (index, item) = match open {
            Open::Message { index, id, text } => {
                let e = self.event(
                    "response.output_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text, "logprobs": []}),
                );
                out.push(e);
                let e = self.event(
                    "response.content_part.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": text, "annotations": [], "logprobs": []}}),
                );
                out.push(e);
                (index, message_item(&id, &text, "completed"))
            }
            Open::Reasoning { index, id, text } => {
                let e = self.event(
                    "response.reasoning_text.done",
                    json!({"item_id": id, "output_index": index, "content_index": 0, "text": text}),
                );
                out.push(e);
                (index, reasoning_item(&id, &text))
            }
            Open::Call {
                index,
                id,
                call_id,
                name,
                args,
            } => {
                let e = self.event(
                    "response.function_call_arguments.done",
                    json!({"item_id": id, "output_index": index, "name": name, "arguments": args}),
                );
                out.push(e);
                (index, call_item(&id, &call_id, &name, &args, "completed"))
            }
        };
        let e = self.event(
            "response.output_item.done",
            json!({"output_index": index, "item": item}),
        );
        out.push(e);
        if self.items.len() <= index {
            self.items.resize(index + 1, Value::Null);
        }
        self.items[index] = item;
    }

    fn next_index(&self) -> usize {
        self.items.len().max(match &self.open {
            Some(
                Open::Message { index, .. }
                | Open::Reasoning { index, .. }
                | Open::Call { index, .. },
            ) => index + 1,
            None => 0,
        })
    }

    /// Turns one chunk into the events the client should see.
    pub fn on_chunk(&mut self, chunk: o::ChatChunk) -> Vec<Value> {
        let mut out = Vec::new();
        self.start(&chunk.id, &mut out);
        if let Some(Some(u)) = chunk.usage {
            self.usage = Some(u);
        }
        let Some(choice) = chunk.choices.into_iter().find(|c| c.index == 0) else {
            return out;
        };
        let d = choice.delta;
        if let Some(t) = d.reasoning_content.filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(Open::Reasoning { .. })) {
                self.close(&mut out);
                let index = self.next_index();
                let id = format!("rs_{}_{index}", self.id);
                let e = self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": {"type": "reasoning", "id": id, "summary": [], "content": []}}),
                );
                out.push(e);
                self.open = Some(Open::Reasoning {
                    index,
                    id,
                    text: String::new(),
                });
            }
            self.text.push_str(&t);
            if let Some(Open::Reasoning { index, id, text }) = &mut self.open {
                text.push_str(&t);
                let fields =
                    json!({"item_id": id, "output_index": index, "content_index": 0, "delta": t});
                let e = self.event("response.reasoning_text.delta", fields);
                out.push(e);
            }
        }
        if let Some(t) = d.content.filter(|t| !t.is_empty()) {
            if !matches!(self.open, Some(Open::Message { .. })) {
                self.close(&mut out);
                let index = self.next_index();
                let id = format!("msg_{}_{index}", self.id);
                let e = self.event(
                    "response.output_item.added",
                    json!({"output_index": index, "item": {"type": "message", "id": id, "status": "in_progress", "role": "assistant", "content": []}}),
                );
                out.push(e);
                let e = self.event(
                    "response.content_part.added",
                    json!({"item_id": id, "output_index": index, "content_index": 0,
                           "part": {"type": "output_text", "text": "", "annotations": [], "logprobs": []}}),
                );
                out.push(e);
                self.open = Some(Open::Message {
                    index,
                    id,
                    text: String::new(),
                });
            }
            self.text.push_str(&t);
            if let Some(Open::Message { index, id, text }) = &mut self.open {
                text.push_str(&t);
                let fields = json!({"item_id": id, "output_index": index, "content_index": 0, "delta": t, "logprobs": []});
                let e = self.event("response.output_text.delta", fields);
                out.push(e);
            }
        }
        for call in d.tool_calls.into_iter().flatten() {
            let args = call.function.arguments.unwrap_or_default();
            match self.calls.get(&call.index).copied() {
                None => {
                    self.close(&mut out);
                    let index = self.next_index();
                    self.calls.insert(call.index, index);
                    let id = format!("fc_{}_{index}", self.id);
                    let call_id = call.id.unwrap_or_else(|| format!("call_{index}"));
                    let name = call.function.name.unwrap_or_default();
                    let e = self.event(
                        "response.output_item.added",
                        json!({"output_index": index, "item": call_item(&id, &call_id, &name, "", "in_progress")}),
                    );
                    out.push(e);
                    self.open = Some(Open::Call {
                        index,
                        id,
                        call_id,
                        name,
                        args: String::new(),
                    });
                }
                Some(index) => {
                    // OpenAI streams calls one after another; a late piece of a closed call
                    // still goes to its item, by output index.
                    if !matches!(&self.open, Some(Open::Call { index: i, .. }) if *i == index) {
                        if let Some(item) = self.items.get_mut(index) {
                            if let Some(a) = item.get("arguments").and_then(Value::as_str) {
                                let joined = format!("{a}{args}");
                                item["arguments"] = json!(joined);
                            }
                        }
                        let id = format!("fc_{}_{index}", self.id);
                        let e = self.event(
                            "response.function_call_arguments.delta",
                            json!({"item_id": id, "output_index": index, "delta": args}),
                        );
                        out.push(e);
                        continue;
                    }
                }
            }
            if args.is_empty() {
                continue;
            }
            self.text.push_str(&args);
            if let Some(Open::Call {
                index,
                id,
                args: all,
                ..
            }) = &mut self.open
            {
                all.push_str(&args);
                let fields = json!({"item_id": id, "output_index": index, "delta": args});
                let e = self.event("response.function_call_arguments.delta", fields);
                out.push(e);
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish_reason = Some(f);
        }
        out
    }

    /// The closing events once the upstream stream has ended cleanly: the open item's, then
    /// `response.completed` (or `response.incomplete`) with the whole response.
    pub fn finish(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if self.done {
            return out;
        }
        self.done = true;
        self.start("", &mut out);
        self.close(&mut out);
        let (status, incomplete) = outcome(self.finish_reason.as_deref());
        let u = self.usage.clone().unwrap_or_else(|| {
            o::Usage::new(
                self.prompt_tokens,
                crate::tokens::count_text(&self.model, &self.text).0,
                0,
                0,
            )
        });
        let mut body = skeleton(&self.id, self.created_at, &self.model, &self.echo, status);
        body.insert("incomplete_details".into(), incomplete);
        body.insert(
            "output".into(),
            Value::Array(
                self.items
                    .iter()
                    .filter(|i| !i.is_null())
                    .cloned()
                    .collect(),
            ),
        );
        body.insert("usage".into(), usage(&u));
        let kind = if status == "completed" {
            "response.completed"
        } else {
            "response.incomplete"
        };
        let e = self.event(kind, json!({"response": Value::Object(body)}));
        out.push(e);
        out
    }

    /// An `error` event that ends the stream.
    pub fn error(&mut self, code: Option<&str>, message: &str) -> Value {
        self.done = true;
        self.event(
            "error",
            json!({"code": code, "message": message, "param": null}),
        )
    }
}
