//! The stream driver: upstream SSE bytes in, client SSE bytes out, one event at a time.
//!
//! Pass-through streams are forwarded byte for byte (the decoder only watches for `[DONE]`);
//! translated streams go through the pair's state machine. Nothing is buffered beyond one
//! upstream chunk, so backpressure reaches the upstream. The idle timeout cuts a stalled stream
//! and the total deadline bounds the whole; either, a broken connection, or a stream that ends
//! early finishes with an error event in the client's dialect. Dropping the body (the client went
//! away) drops the upstream response, which closes that connection.
//!
//! A `Meter` rides along when limits apply: it reads the usage the stream reports (or counts the
//! streamed text with the tokenizer when it reports none) and settles the call's admission when
//! the stream ends — or when it is dropped half-way, with what was streamed so far.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::pin::Pin;

use axum::body::Body;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use gatehouse_llm::convert::openai::{from_anthropic, from_gemini};
use gatehouse_llm::convert::StreamOut;
use gatehouse_llm::sse;
use gatehouse_llm::types::{anthropic, gemini, openai};
use tokio::time::Instant;

use crate::limits::{Admission, Tokens};
use crate::upstream::Upstream;

/// Measures what a stream used, and settles its admission when it ends or is dropped.
#[derive(Debug)]
pub struct Meter {
    admission: Option<Admission>,
    record: Option<crate::record::Draft>,
    model: String,
    usage: Option<Tokens>,
    text: String,
    /// The stream reached its end (else the client left first).
    finished: bool,
    /// Why the gateway cut the stream (error code and message), if it did.
    failure: Option<(&'static str, String)>,
    /// When the upstream stream began (its time counts as upstream time in the record).
    began: std::time::Instant,
}

#[derive(serde::Deserialize)]
struct LightChunk {
    #[serde(default)]
    choices: Vec<LightChoice>,
    #[serde(default)]
    usage: Option<openai::Usage>,
}

#[derive(serde::Deserialize)]
struct LightChoice {
    #[serde(default)]
    delta: Option<LightDelta>,
}

#[derive(serde::Deserialize)]
struct LightDelta {
    content: Option<String>,
    reasoning_content: Option<String>,
    #[serde(default)]
    tool_calls: Vec<LightTool>,
}

#[derive(serde::Deserialize)]
struct LightTool {
    function: Option<LightFunction>,
}

#[derive(serde::Deserialize)]
struct LightFunction {
    arguments: Option<String>,
}

impl Meter {
    pub fn new(
        admission: Option<Admission>,
        record: Option<crate::record::Draft>,
        model: &str,
    ) -> Self {
        Self {
            admission,
            record,
            model: model.to_owned(),
            usage: None,
            text: String::new(),
            finished: false,
            failure: None,
            began: std::time::Instant::now(),
        }
    }

    /// Notes the first token's time once text has arrived.
    fn note_text(&mut self) {
        if !self.text.is_empty() {
            if let Some(d) = &mut self.record {
                d.first_token();
            }
        }
    }

    fn note_usage(&mut self, u: &openai::Usage) {
        self.usage = Some(Tokens {
            input: u.prompt_tokens,
            cached: u
                .prompt_tokens_details
                .as_ref()
                .map_or(0, |d| d.cached_tokens),
            output: u.completion_tokens,
            reasoning: u
                .completion_tokens_details
                .as_ref()
                .map_or(0, |d| d.reasoning_tokens),
        });
    }

    /// An OpenAI chunk as JSON text (pass-through streams).
    fn observe_json(&mut self, data: &str) {
        let Ok(c) = serde_json::from_str::<LightChunk>(data) else {
            return;
        };
        if let Some(u) = &c.usage {
            self.note_usage(u);
        }
        for ch in c.choices {
            let Some(d) = ch.delta else { continue };
            self.text.extend(d.content);
            self.text.extend(d.reasoning_content);
            for t in d.tool_calls {
                self.text.extend(t.function.and_then(|f| f.arguments));
            }
        }
        self.note_text();
    }

    /// A translated chunk.
    fn observe(&mut self, c: &openai::ChatChunk) {
        if let Some(Some(u)) = &c.usage {
            self.note_usage(u);
        }
        for ch in &c.choices {
            let d = &ch.delta;
            self.text.extend(d.content.as_deref());
            self.text.extend(d.reasoning_content.as_deref());
            for t in d.tool_calls.iter().flatten() {
                self.text.extend(t.function.arguments.as_deref());
            }
        }
        self.note_text();
    }
}

impl Drop for Meter {
    fn drop(&mut self) {
        let prompt = self.admission.as_ref().map_or(0, Admission::prompt_tokens);
        let used = self.usage.unwrap_or_else(|| Tokens {
            input: prompt,
            cached: 0,
            output: gatehouse_llm::tokens::count_text(&self.model, &self.text).0,
            reasoning: 0,
        });
        if let Some(a) = self.admission.take() {
            a.settle(used);
        }
        if let Some(mut d) = self.record.take() {
            d.tokens(used);
            d.upstream_time(self.began.elapsed());
            d.response_body(bytes::Bytes::from(std::mem::take(&mut self.text)));
            // The client saw a 200 and then an error event; the record says how it ended:
            // 502/504 when the gateway cut the stream, 499 when the client went away first.
            match self.failure.take() {
                Some((code, message)) => {
                    let status = if code == "upstream_timeout" { 504 } else { 502 };
                    d.finish(status, Some((code, &message)));
                }
                None if self.finished => d.finish(200, None),
                None => d.finish(
                    499,
                    Some((
                        "client_closed",
                        "the client went away before the stream ended",
                    )),
                ),
            }
        }
    }
}

/// How upstream events become client events.
#[derive(Debug)]
pub enum Translator {
    /// Same dialect: forward bytes, watch for the terminator.
    PassThrough {
        done: bool,
    },
    Anthropic(Box<from_anthropic::Stream>),
    Gemini(Box<from_gemini::Stream>),
}

/// Anthropic stream event types this build knows; newer ones are skipped, not fatal.
const ANTHROPIC_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

impl Translator {
    /// Handles one decoded upstream event; returns true when the stream is over.
    fn on_event(
        &mut self,
        ev: sse::Event,
        out: &mut VecDeque<Bytes>,
        meter: &mut Option<Meter>,
    ) -> bool {
        match self {
            Self::PassThrough { done } => {
                if ev.data.trim() == "[DONE]" {
                    *done = true;
                } else if let Some(m) = meter {
                    m.observe_json(&ev.data);
                }
                false
            }
            Self::Anthropic(state) => {
                let value: serde_json::Value = match serde_json::from_str(&ev.data) {
                    Ok(v) => v,
                    Err(e) => return malformed(out, &e),
                };
                let kind = value
                    .get("type")
                    .and_then(|t| t.as_str())
                    .unwrap_or_default();
                if !ANTHROPIC_EVENTS.contains(&kind) {
                    return false;
                }
                match serde_json::from_value::<anthropic::StreamEvent>(value) {
                    Ok(event) => emit(state.on_event(event), out, meter),
                    Err(e) => malformed(out, &e),
                }
            }
            Self::Gemini(state) => match serde_json::from_str::<gemini::Response>(&ev.data) {
                Ok(event) => emit(state.on_event(event), out, meter),
                Err(e) => {
                    // An error object instead of a chunk: report it in OpenAI's shape.
                    if let Some(body) = from_gemini::error(500, ev.data.as_bytes()) {
                        out.push_back(error_event(&body));
                        return true;
                    }
                    malformed(out, &e)
                }
            },
        }
    }

    /// The upstream ended cleanly at the transport level; close the client stream.
    fn finish(&mut self, out: &mut VecDeque<Bytes>, meter: &mut Option<Meter>) {
        let ended_in_error = match self {
            Self::PassThrough { done } => {
                if *done {
                    return;
                }
                out.push_back(error_event(&openai::ErrorBody::new(
                    "upstream stream ended before [DONE]",
                    "server_error",
                    Some("upstream_stream_truncated"),
                )));
                return;
            }
            Self::Anthropic(state) => emit(state.finish(), out, meter),
            Self::Gemini(state) => emit(state.finish(), out, meter),
        };
        if !ended_in_error {
            out.push_back(Bytes::from_static(sse::DONE));
        }
    }
}

/// Queues translated output; returns true if it ended the stream with an error.
fn emit(items: Vec<StreamOut>, out: &mut VecDeque<Bytes>, meter: &mut Option<Meter>) -> bool {
    let mut ended = false;
    for item in items {
        match item {
            StreamOut::Chunk(c) => {
                if let Some(m) = meter {
                    m.observe(&c);
                }
                out.push_back(sse::data(&serde_json::to_vec(&c).unwrap_or_default()))
            }
            StreamOut::Error(e) => {
                out.push_back(error_event(&e));
                ended = true;
            }
        }
    }
    ended
}

fn malformed(out: &mut VecDeque<Bytes>, e: &serde_json::Error) -> bool {
    out.push_back(error_event(&openai::ErrorBody::new(
        format!("upstream sent a malformed stream event: {e}"),
        "server_error",
        Some("upstream_malformed"),
    )));
    true
}

/// An OpenAI-shaped error event (`data: {"error": …}`), which the OpenAI SDKs raise as errors.
pub fn error_event(body: &openai::ErrorBody) -> Bytes {
    sse::data(&serde_json::to_vec(body).unwrap_or_default())
}

type Upstream_ = Pin<Box<dyn Stream<Item = reqwest::Result<Bytes>> + Send>>;

struct Driver {
    upstream: Upstream_,
    decoder: sse::Decoder,
    translator: Translator,
    pending: VecDeque<Bytes>,
    done: bool,
    idle: std::time::Duration,
    deadline: Instant,
    provider: String,
    /// Dropped with the driver: settles the call's limits with what was streamed.
    meter: Option<Meter>,
    /// The provider's adaptive slot and the target's in-flight count, held until the stream
    /// ends.
    _hold: (Option<crate::adaptive::Permit>, crate::health::InFlight),
}

/// The client body for an upstream event stream.
pub fn body(
    resp: reqwest::Response,
    translator: Translator,
    up: &Upstream,
    deadline: Instant,
    meter: Option<Meter>,
    hold: (Option<crate::adaptive::Permit>, crate::health::InFlight),
) -> Body {
    let driver = Driver {
        upstream: Box::pin(resp.bytes_stream()),
        decoder: sse::Decoder::new(),
        translator,
        pending: VecDeque::new(),
        done: false,
        idle: up.cfg.timeouts.idle,
        deadline,
        provider: up.cfg.name.clone(),
        meter,
        _hold: hold,
    };
    let stream = futures_util::stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(b) = d.pending.pop_front() {
                return Some((Ok::<Bytes, Infallible>(b), d));
            }
            if d.done {
                if let Some(m) = &mut d.meter {
                    m.finished = true;
                }
                return None;
            }
            d.step().await;
        }
    });
    Body::from_stream(stream)
}

impl Driver {
    /// Waits for the next upstream chunk and queues what it turns into.
    async fn step(&mut self) {
        let idle_at = Instant::now() + self.idle;
        let until = idle_at.min(self.deadline);
        match tokio::time::timeout_at(until, self.upstream.next()).await {
            Err(_) => {
                let what = if idle_at <= self.deadline {
                    "no stream event within timeouts.idle"
                } else {
                    "the stream took longer than timeouts.total"
                };
                tracing::warn!(provider = %self.provider, what, "upstream stream cut");
                self.fail(
                    "timeout_error",
                    "upstream_timeout",
                    format!("provider {} timed out ({what})", self.provider),
                );
            }
            Ok(Some(Err(e))) => {
                tracing::warn!(provider = %self.provider, error = %e, "upstream stream broke");
                self.fail(
                    "server_error",
                    "upstream_stream_broken",
                    format!(
                        "the connection to provider {} broke mid-stream",
                        self.provider
                    ),
                );
            }
            Ok(None) => {
                self.done = true;
                if let Some(ev) = self.decoder.finish() {
                    if self
                        .translator
                        .on_event(ev, &mut self.pending, &mut self.meter)
                    {
                        return;
                    }
                }
                self.translator.finish(&mut self.pending, &mut self.meter);
            }
            Ok(Some(Ok(bytes))) => {
                let events = match self.decoder.feed(&bytes) {
                    Ok(evs) => evs,
                    Err(e) => {
                        self.fail("server_error", "upstream_malformed", e.to_string());
                        return;
                    }
                };
                if matches!(self.translator, Translator::PassThrough { .. }) {
                    self.pending.push_back(bytes);
                }
                for ev in events {
                    if self
                        .translator
                        .on_event(ev, &mut self.pending, &mut self.meter)
                    {
                        self.done = true;
                        return;
                    }
                }
            }
        }
    }

    fn fail(&mut self, kind: &str, code: &'static str, message: String) {
        self.done = true;
        if let Some(m) = &mut self.meter {
            m.failure = Some((code, message.clone()));
        }
        // Pass-through bytes may have stopped mid-event; close it so the error event parses.
        if matches!(self.translator, Translator::PassThrough { .. }) && !self.decoder.at_boundary()
        {
            self.pending.push_back(Bytes::from_static(b"\n\n"));
        }
        self.pending.push_back(error_event(&openai::ErrorBody::new(
            message,
            kind,
            Some(code),
        )));
    }
}
