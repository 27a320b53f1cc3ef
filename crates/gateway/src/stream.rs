//! The stream driver: upstream SSE bytes in, client SSE bytes out, one event at a time.
//!
//! Pass-through streams are forwarded byte for byte (the decoder only watches for the end:
//! `[DONE]`, or Anthropic's `message_stop`); translated streams go through the pair's state
//! machine into OpenAI chunks, which the `Sink` writes in the client's dialect (as they are for
//! an OpenAI client, as Anthropic's event sequence for an Anthropic one). Nothing is buffered beyond one
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
use gatehouse_llm::convert::anthropic::from_openai as to_anthropic;
use gatehouse_llm::convert::openai::{from_anthropic, from_gemini};
use gatehouse_llm::convert::responses::from_openai as to_responses;
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

    /// An Anthropic event as JSON text (pass-through streams to Anthropic clients).
    fn observe_anthropic(&mut self, data: &str) {
        let Ok(ev) = serde_json::from_str::<anthropic::StreamEvent>(data) else {
            return;
        };
        match ev {
            anthropic::StreamEvent::MessageStart { message } => {
                self.note_usage(&gatehouse_llm::usage::from_anthropic(&message.usage));
            }
            anthropic::StreamEvent::MessageDelta { usage: Some(u), .. } => {
                // Cumulative; fields it leaves out keep message_start's values.
                let mut t = self.usage.unwrap_or_default();
                t.output = u.output_tokens;
                if u.input_tokens > 0 || u.cache_read_input_tokens.is_some() {
                    let o = gatehouse_llm::usage::from_anthropic(&u);
                    t.input = o.prompt_tokens;
                    t.cached = u.cache_read_input_tokens.unwrap_or(t.cached);
                }
                self.usage = Some(t);
            }
            anthropic::StreamEvent::ContentBlockDelta { delta, .. } => {
                match delta {
                    anthropic::BlockDelta::TextDelta { text } => self.text.push_str(&text),
                    anthropic::BlockDelta::ThinkingDelta { thinking } => {
                        self.text.push_str(&thinking)
                    }
                    anthropic::BlockDelta::InputJsonDelta { partial_json } => {
                        self.text.push_str(&partial_json)
                    }
                    _ => {}
                }
                self.note_text();
            }
            _ => {}
        }
    }

    /// A Responses event as JSON text (pass-through streams to Responses clients).
    fn observe_responses(&mut self, data: &str) {
        #[derive(serde::Deserialize)]
        struct Ev {
            #[serde(rename = "type")]
            kind: String,
            #[serde(default)]
            delta: Option<String>,
            #[serde(default)]
            response: Option<serde_json::Value>,
        }
        let Ok(ev) = serde_json::from_str::<Ev>(data) else {
            return;
        };
        match ev.kind.as_str() {
            "response.output_text.delta"
            | "response.function_call_arguments.delta"
            | "response.reasoning_text.delta"
            | "response.reasoning_summary_text.delta" => {
                self.text.extend(ev.delta);
                self.note_text();
            }
            "response.completed" | "response.incomplete" | "response.failed" => {
                let body = serde_json::to_vec(&ev.response.unwrap_or_default()).unwrap_or_default();
                if let Some(t) = crate::limits::usage_of(&body) {
                    self.usage = Some(t);
                }
            }
            _ => {}
        }
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

/// The dialect of a stream passed through as it is, which says how it ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Native {
    /// Ends with `data: [DONE]`.
    OpenAiChat,
    /// Ends with `message_stop` (or an `error` event).
    Anthropic,
    /// Ends with `response.completed`, `response.incomplete`, `response.failed` or `error`.
    Responses,
}

/// How upstream events become client events.
#[derive(Debug)]
pub enum Translator {
    /// Same dialect: forward bytes, watch for the end.
    PassThrough {
        done: bool,
        dialect: Native,
    },
    /// OpenAI chunks, parsed for a client that speaks another dialect.
    OpenAi {
        done: bool,
    },
    Anthropic(Box<from_anthropic::Stream>),
    Gemini(Box<from_gemini::Stream>),
    /// Bedrock's binary event stream (decoded by the driver, not as SSE).
    Bedrock(Box<gatehouse_llm::convert::openai::from_bedrock::Stream>),
}

/// How the client's stream is written: OpenAI chunks as they are, or Anthropic's events.
#[derive(Debug)]
pub enum Egress {
    OpenAi,
    /// An Anthropic upstream passed through to an Anthropic client: only the gateway's own
    /// errors are written, in Anthropic's shape.
    AnthropicNative,
    /// OpenAI chunks turned into Anthropic's event sequence.
    Anthropic(Box<to_anthropic::Stream>),
    /// OpenAI's Responses API passed through: only the gateway's own errors are written.
    ResponsesNative,
    /// OpenAI chunks turned into Responses events.
    Responses(Box<to_responses::Stream>),
}

/// The client-bound events waiting to be sent, written in the client's dialect.
#[derive(Debug)]
pub struct Sink {
    pending: VecDeque<Bytes>,
    egress: Egress,
}

impl Sink {
    fn chunk(&mut self, c: openai::ChatChunk) {
        let events = match &mut self.egress {
            Egress::OpenAi | Egress::AnthropicNative | Egress::ResponsesNative => {
                self.pending
                    .push_back(sse::data(&serde_json::to_vec(&c).unwrap_or_default()));
                return;
            }
            Egress::Anthropic(s) => s.on_chunk(c),
            Egress::Responses(s) => s.on_chunk(c),
        };
        for ev in &events {
            self.named(ev);
        }
    }

    /// An event named by its `type` (`event: <type>`), as Anthropic and Responses streams are.
    fn named(&mut self, ev: &serde_json::Value) {
        let name = ev.get("type").and_then(|t| t.as_str()).unwrap_or("error");
        self.pending
            .push_back(sse::named(name, ev.to_string().as_bytes()));
    }

    /// An error event that ends the stream.
    fn error(&mut self, body: &openai::ErrorBody) {
        match &mut self.egress {
            Egress::OpenAi => self.pending.push_back(error_event(body)),
            Egress::ResponsesNative => {
                let ev = serde_json::json!({"type": "error", "code": body.error.code,
                    "message": body.error.message, "param": null, "sequence_number": 0});
                self.named(&ev);
            }
            Egress::Responses(s) => {
                let ev = s.error(body.error.code.as_deref(), &body.error.message);
                self.named(&ev);
            }
            Egress::AnthropicNative | Egress::Anthropic(_) => {
                let e = anthropic::ErrorBody {
                    kind: "error".into(),
                    error: anthropic::ErrorDetail {
                        kind: anthropic_kind(body).into(),
                        message: body.error.message.clone(),
                    },
                    request_id: None,
                };
                self.pending.push_back(sse::named(
                    "error",
                    &serde_json::to_vec(&e).unwrap_or_default(),
                ));
            }
        }
    }

    /// The clean end of a translated stream.
    fn end(&mut self) {
        let events = match &mut self.egress {
            Egress::OpenAi => {
                self.pending.push_back(Bytes::from_static(sse::DONE));
                return;
            }
            Egress::AnthropicNative | Egress::ResponsesNative => return,
            Egress::Anthropic(s) => s.finish(),
            Egress::Responses(s) => s.finish(),
        };
        for ev in &events {
            self.named(ev);
        }
    }
}

/// The Anthropic error type for an OpenAI-shaped error (their names mostly agree).
fn anthropic_kind(body: &openai::ErrorBody) -> &'static str {
    match (body.error.kind.as_str(), body.error.code.as_deref()) {
        (_, Some("overloaded" | "upstream_overloaded")) => "overloaded_error",
        (_, Some("upstream_timeout")) | ("timeout_error", _) => "timeout_error",
        ("invalid_request_error", _) => "invalid_request_error",
        ("authentication_error", _) => "authentication_error",
        ("permission_error", _) => "permission_error",
        ("not_found_error", _) => "not_found_error",
        ("rate_limit_error", _) => "rate_limit_error",
        _ => "api_error",
    }
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
    fn on_event(&mut self, ev: sse::Event, out: &mut Sink, meter: &mut Option<Meter>) -> bool {
        match self {
            Self::PassThrough {
                done,
                dialect: Native::OpenAiChat,
            } => {
                if ev.data.trim() == "[DONE]" {
                    *done = true;
                } else if let Some(m) = meter {
                    m.observe_json(&ev.data);
                }
                false
            }
            Self::PassThrough {
                done,
                dialect: Native::Responses,
            } => {
                let ends = [
                    "response.completed",
                    "response.incomplete",
                    "response.failed",
                    "error",
                ];
                if ev.event.as_deref().is_some_and(|e| ends.contains(&e))
                    || ends
                        .iter()
                        .any(|e| ev.data.contains(&format!("\"type\":\"{e}\"")))
                {
                    *done = true;
                }
                if let Some(m) = meter {
                    m.observe_responses(&ev.data);
                }
                false
            }
            Self::PassThrough {
                done,
                dialect: Native::Anthropic,
            } => {
                // An upstream error event ends the stream as surely as message_stop.
                if matches!(ev.event.as_deref(), Some("message_stop" | "error"))
                    || ev.data.contains("\"message_stop\"")
                {
                    *done = true;
                }
                if let Some(m) = meter {
                    m.observe_anthropic(&ev.data);
                }
                false
            }
            Self::OpenAi { done } => {
                if ev.data.trim() == "[DONE]" {
                    *done = true;
                    return false;
                }
                match serde_json::from_str::<openai::ChatChunk>(&ev.data) {
                    Ok(c) => emit(vec![StreamOut::Chunk(c)], out, meter),
                    Err(e) => match serde_json::from_str::<openai::ErrorBody>(&ev.data) {
                        Ok(body) => {
                            out.error(&body);
                            true
                        }
                        Err(_) => malformed(out, &e),
                    },
                }
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
            // Bedrock streams are binary frames, handed to `on_frame`; SSE never reaches here.
            Self::Bedrock(_) => false,
            Self::Gemini(state) => match serde_json::from_str::<gemini::Response>(&ev.data) {
                Ok(event) => emit(state.on_event(event), out, meter),
                Err(e) => {
                    // An error object instead of a chunk: report it in OpenAI's shape.
                    if let Some(body) = from_gemini::error(500, ev.data.as_bytes()) {
                        out.error(&body);
                        return true;
                    }
                    malformed(out, &e)
                }
            },
        }
    }

    /// The upstream ended cleanly at the transport level; close the client stream.
    fn finish(&mut self, out: &mut Sink, meter: &mut Option<Meter>) {
        let truncated = |out: &mut Sink, end: &str| {
            out.error(&openai::ErrorBody::new(
                format!("upstream stream ended before {end}"),
                "server_error",
                Some("upstream_stream_truncated"),
            ))
        };
        let ended_in_error = match self {
            Self::PassThrough { done: true, .. } => return,
            Self::PassThrough {
                done: false,
                dialect,
            } => {
                let end = match dialect {
                    Native::OpenAiChat => "[DONE]",
                    Native::Anthropic => "message_stop",
                    Native::Responses => "response.completed",
                };
                return truncated(out, end);
            }
            Self::OpenAi { done: false } => return truncated(out, "[DONE]"),
            Self::OpenAi { done: true } => false,
            Self::Anthropic(state) => emit(state.finish(), out, meter),
            Self::Gemini(state) => emit(state.finish(), out, meter),
            Self::Bedrock(state) => emit(state.finish(), out, meter),
        };
        if !ended_in_error {
            out.end();
        }
    }
}

/// Queues translated output; returns true if it ended the stream with an error.
fn emit(items: Vec<StreamOut>, out: &mut Sink, meter: &mut Option<Meter>) -> bool {
    let mut ended = false;
    for item in items {
        match item {
            StreamOut::Chunk(c) => {
                if let Some(m) = meter {
                    m.observe(&c);
                }
                out.chunk(c);
            }
            StreamOut::Error(e) => {
                out.error(&e);
                ended = true;
            }
        }
    }
    ended
}

fn malformed(out: &mut Sink, e: &serde_json::Error) -> bool {
    out.error(&openai::ErrorBody::new(
        format!("upstream sent a malformed stream event: {e}"),
        "server_error",
        Some("upstream_malformed"),
    ));
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
    /// Bedrock's binary frames.
    frames: gatehouse_llm::eventstream::Decoder,
    translator: Translator,
    sink: Sink,
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
    (translator, egress): (Translator, Egress),
    up: &Upstream,
    deadline: Instant,
    meter: Option<Meter>,
    hold: (Option<crate::adaptive::Permit>, crate::health::InFlight),
) -> Body {
    let driver = Driver {
        upstream: Box::pin(resp.bytes_stream()),
        decoder: sse::Decoder::new(),
        frames: gatehouse_llm::eventstream::Decoder::new(),
        translator,
        sink: Sink {
            pending: VecDeque::new(),
            egress,
        },
        done: false,
        idle: up.cfg.timeouts.idle,
        deadline,
        provider: up.cfg.name.clone(),
        meter,
        _hold: hold,
    };
    let stream = futures_util::stream::unfold(driver, |mut d| async move {
        loop {
            if let Some(b) = d.sink.pending.pop_front() {
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
            Ok(None) if matches!(self.translator, Translator::Bedrock(_)) => {
                if !self.frames.at_boundary() {
                    self.fail(
                        "server_error",
                        "upstream_stream_truncated",
                        format!("provider {} cut its stream mid-frame", self.provider),
                    );
                    return;
                }
                self.done = true;
                self.translator.finish(&mut self.sink, &mut self.meter);
            }
            Ok(Some(Ok(bytes))) if matches!(self.translator, Translator::Bedrock(_)) => {
                let frames = match self.frames.feed(&bytes) {
                    Ok(f) => f,
                    Err(e) => {
                        self.fail("server_error", "upstream_malformed", e.to_string());
                        return;
                    }
                };
                if let Translator::Bedrock(state) = &mut self.translator {
                    for frame in frames {
                        if emit(state.on_frame(&frame), &mut self.sink, &mut self.meter) {
                            self.done = true;
                            return;
                        }
                    }
                }
            }
            Ok(None) => {
                self.done = true;
                if let Some(ev) = self.decoder.finish() {
                    if self
                        .translator
                        .on_event(ev, &mut self.sink, &mut self.meter)
                    {
                        return;
                    }
                }
                self.translator.finish(&mut self.sink, &mut self.meter);
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
                    self.sink.pending.push_back(bytes);
                }
                for ev in events {
                    if self
                        .translator
                        .on_event(ev, &mut self.sink, &mut self.meter)
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
            self.sink.pending.push_back(Bytes::from_static(b"\n\n"));
        }
        self.sink
            .error(&openai::ErrorBody::new(message, kind, Some(code)));
    }
}
