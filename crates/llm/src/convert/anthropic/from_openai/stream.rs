//! OpenAI chat chunks → the Anthropic Messages event sequence: `message_start`, `ping`, then per
//! content block `content_block_start`, deltas (`text_delta`, `thinking_delta`,
//! `input_json_delta`) and `content_block_stop`, and at the end `message_delta` (stop reason and
//! usage) and `message_stop`.
//!
//! Blocks are opened as the kind of delta changes (reasoning → thinking, content → text, each
//! tool call → tool_use) and closed when the next begins. OpenAI reports usage after the finish
//! reason, so the closing events wait for the end of the upstream stream.

use std::collections::HashMap;

use serde_json::json;

use super::response::{message_id, stop_reason};
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

    fn start(&mut self, id: &str, out: &mut Vec<a::StreamEvent>) {
        if self.started {
            return;
        }
        self.started = true;
        out.push(a::StreamEvent::MessageStart {
            message: a::Response {
                id: message_id(if id.is_empty() { "gatehouse" } else { id }),
                kind: "message".into(),
                role: "assistant".into(),
                content: Vec::new(),
                model: self.model.clone(),
                stop_reason: None,
                stop_sequence: None,
                usage: a::Usage {
                    input_tokens: self.prompt_tokens,
                    ..a::Usage::default()
                },
            },
        });
        out.push(a::StreamEvent::Ping);
    }

    /// Closes the open block, if any, and opens `next` unless it is the one already open.
    fn switch(&mut self, next: Open, block: a::Block, out: &mut Vec<a::StreamEvent>) {
        if self.open == Some(next) {
            return;
        }
        if let Some(open) = self.open.take() {
            out.push(a::StreamEvent::ContentBlockStop {
                index: open.index(),
            });
        }
        self.open = Some(next);
        out.push(a::StreamEvent::ContentBlockStart {
            index: next.index(),
            content_block: a::ContentBlock::Known(block),
        });
    }

    fn take_index(&mut self) -> u32 {
        let i = self.next_index;
        self.next_index += 1;
        i
    }

    /// Turns one chunk into the events the client should see.
    pub fn on_chunk(&mut self, chunk: o::ChatChunk) -> Vec<a::StreamEvent> {
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
            let block = a::Block::Thinking {
                thinking: String::new(),
                signature: Some(String::new()),
            };
            self.switch(Open::Thinking(index), block, &mut out);
            self.text.push_str(&r);
            out.push(a::StreamEvent::ContentBlockDelta {
                index,
                delta: a::BlockDelta::ThinkingDelta { thinking: r },
            });
        }
        if let Some(t) = d.content.filter(|t| !t.is_empty()) {
            let index = match self.open {
                Some(Open::Text(i)) => i,
                _ => self.take_index(),
            };
            self.switch(
                Open::Text(index),
                a::Block::Text {
                    text: String::new(),
                },
                &mut out,
            );
            self.text.push_str(&t);
            out.push(a::StreamEvent::ContentBlockDelta {
                index,
                delta: a::BlockDelta::TextDelta { text: t },
            });
        }
        for call in d.tool_calls.into_iter().flatten() {
            let index = match self.tools.get(&call.index) {
                Some(&i) => i,
                None => {
                    let i = self.take_index();
                    self.tools.insert(call.index, i);
                    let block = a::Block::ToolUse {
                        id: call.id.clone().unwrap_or_else(|| format!("toolu_{i}")),
                        name: call.function.name.clone().unwrap_or_default(),
                        input: json!({}),
                    };
                    self.switch(Open::Tool(i), block, &mut out);
                    i
                }
            };
            // OpenAI streams one call after another; a late piece of an earlier call still goes
            // to that call's block, which clients accumulate by index.
            if let Some(args) = call.function.arguments.filter(|s| !s.is_empty()) {
                self.text.push_str(&args);
                out.push(a::StreamEvent::ContentBlockDelta {
                    index,
                    delta: a::BlockDelta::InputJsonDelta { partial_json: args },
                });
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
    pub fn finish(&mut self) -> Vec<a::StreamEvent> {
        let mut out = Vec::new();
        if self.stopped {
            return out;
        }
        self.stopped = true;
        self.start("", &mut out);
        if let Some(open) = self.open.take() {
            out.push(a::StreamEvent::ContentBlockStop {
                index: open.index(),
            });
        }
        let usage = match &self.usage {
            Some(u) => usage::to_anthropic(u),
            None => a::Usage {
                input_tokens: self.prompt_tokens,
                output_tokens: crate::tokens::count_text(&self.model, &self.text).0,
                ..a::Usage::default()
            },
        };
        out.push(a::StreamEvent::MessageDelta {
            delta: a::MessageDelta {
                stop_reason: Some(
                    stop_reason(self.finish_reason.as_deref().unwrap_or("stop")).into(),
                ),
                stop_sequence: None,
            },
            usage: Some(usage),
        });
        out.push(a::StreamEvent::MessageStop);
        out
    }
}
