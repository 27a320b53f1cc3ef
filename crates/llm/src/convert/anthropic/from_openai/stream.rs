//! OpenAI chat chunks → the Anthropic Messages event sequence: `message_start`, `ping`, then per
//! content block `content_block_start`, deltas (`text_delta`, `thinking_delta`,
//! `input_json_delta`) and `content_block_stop`, and at the end `message_delta` (stop reason and
//! usage) and `message_stop`.
//!
//! Blocks are opened as the kind of delta changes (reasoning → thinking, content → text, each
//! tool call → tool_use) and closed when the next begins. OpenAI reports usage after the finish
//! reason, so the closing events wait for the end of the upstream stream.

use std::collections::HashMap;

use serde_json::{json, Value};

use super::response::{
    message, message_id, stop_reason, text_block, thinking_block, tool_use_block,
};
use crate::types::anthropic as a;
use crate::types::openai as o;
use crate::usage;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Open {
    Text(u32),
    Thinking(u32),
    /// A tool call's block (by the block's index).
    Tool(u32),
}

impl Open {
    fn index(self) -> u32 {
        match self {
            Self::Text(i) | Self::Thinking(i) | Self::Tool(i) => i,
        }
    }
}

/// The state of one chat stream being turned into Anthropic events.
#[derive(Debug)]
pub struct Stream {
    model: String,
    /// Input tokens counted by Gatehouse, shown in `message_start` before the upstream reports.
    prompt_tokens: u64,
    started: bool,
    open: Option<Open>,
    next_index: u32,
    /// OpenAI tool call index → its block index.
    tools: HashMap<u32, u32>,
    finish_reason: Option<String>,
    usage: Option<o::Usage>,
    /// Streamed text, counted for `output_tokens` when the upstream reports no usage.
    text: String,
    stopped: bool,
}

impl Stream {
    pub fn new(model: &str, prompt_tokens: u64) -> Self {
        Self {
            model: model.to_owned(),
            prompt_tokens,
            started: false,
            open: None,
            next_index: 0,
            tools: HashMap::new(),
            finish_reason: None,
            usage: None,
            text: String::new(),
            stopped: false,
        }
    }

    fn start(&mut self, id: &str, out: &mut Vec<Value>) {
        if self.started {
            return;
        }
        self.started = true;
        let usage = a::Usage {
            input_tokens: self.prompt_tokens,
            ..a::Usage::default()
        };
        let id = message_id(if id.is_empty() { "gatehouse" } else { id });
        out.push(json!({"type": "message_start",
                        "message": message(&id, &self.model, Vec::new(), None, &usage)}));
        out.push(json!({"type": "ping"}));
    }

    /// Closes the open block, if any, and opens `next` unless it is the one already open.
    fn switch(&mut self, next: Open, block: Value, out: &mut Vec<Value>) {
        if self.open == Some(next) {
            return;
        }
        if let Some(open) = self.open.take() {
            out.push(block_stop(open.index()));
        }
        self.open = Some(next);
        out.push(
            json!({"type": "content_block_start", "index": next.index(), "content_block": block}),
        );
    }

    fn take_index(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    /// Turns one chunk into the events the client should see (each a JSON object whose `type`
    /// is the event's name).
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
        if let Some(r) = d.reasoning_content.filter(|r| !r.is_empty()) {
            let index = match self.open {
                Some(Open::Thinking(i)) => i,
                _ => self.take_index(),
            };
            self.switch(Open::Thinking(index), thinking_block(""), &mut out);
            self.text.push_str(&r);
            out.push(delta(
                index,
                json!({"type": "thinking_delta", "thinking": r}),
            ));
        }
        if let Some(t) = d.content.filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some(Open::Text(i)) => i,
                _ => self.take_index(),
            };
            self.switch(Open::Text(index), text_block(""), &mut out);
            self.text.push_str(&t);
            out.push(delta(index, json!({"type": "text_delta", "text": t})));
        }
        for call in d.tool_calls.into_iter().flatten() {
            let index = match self.tools.get(&call.index) {
                Some(&i) => i,
                None => {
                    let i = self.take_index();
                    self.tools.insert(call.index, i);
                    let id = call.id.clone().unwrap_or_else(|| format!("toolu_{i}"));
                    let name = call.function.name.as_deref().unwrap_or_default();
                    self.switch(
                        Open::Tool(i),
                        tool_use_block(&id, name, json!({})),
                        &mut out,
                    );
                    i
                }
            };
            // OpenAI streams one call after another; a late piece of an earlier call still goes
            // to that call's block, which clients accumulate by index.
            if let Some(args) = call.function.arguments.filter(|s| !s.is_empty()) {
                self.text.push_str(&args);
                out.push(delta(
                    index,
                    json!({"type": "input_json_delta", "partial_json": args}),
                ));
            }
        }
        if let Some(f) = choice.finish_reason {
            self.finish_reason = Some(f);
        }
        out
    }

    /// Whether the upstream said why it stopped (a stream without it was cut short).
    pub fn saw_finish(&self) -> bool {
        self.finish_reason.is_some()
    }

    /// The closing events, once the upstream stream has ended cleanly.
    pub fn finish(&mut self) -> Vec<Value> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        self.stopped = true;
        self.start("", &mut out);
        if let Some(open) = self.open.take() {
            out.push(block_stop(open.index()));
        }
        let usage = match &self.usage {
            Some(u) => usage::to_anthropic(u),
            None => a::Usage {
                input_tokens: self.prompt_tokens,
                output_tokens: crate::tokens::count_text(&self.model, &self.text).0,
                ..a::Usage::default()
            },
        };
        let reason = stop_reason(self.finish_reason.as_deref().unwrap_or("stop"));
        out.push(json!({
            "type": "message_delta",
            "delta": {"stop_reason": reason, "stop_sequence": null, "stop_details": null,
                      "container": null},
            "usage": {"input_tokens": usage.input_tokens, "output_tokens": usage.output_tokens,
                      "cache_creation_input_tokens": usage.cache_creation_input_tokens.unwrap_or(0),
                      "cache_read_input_tokens": usage.cache_read_input_tokens.unwrap_or(0),
                      "output_tokens_details": null, "server_tool_use": null}
        }));
        out.push(json!({"type": "message_stop"}));
        out
    }
}

fn delta(index: u32, delta: Value) -> Value {
    json!({"type": "content_block_delta", "index": index, "delta": delta})
}

fn block_stop(index: u32) -> Value {
    json!({"type": "content_block_stop", "index": index})
}
