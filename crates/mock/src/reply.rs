//! What every dialect's handler shares: the answer plan, delays, faults and response framing.

use std::borrow::Cow;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::stream::{self, StreamExt};
use http::{header, HeaderValue, StatusCode};
use serde_json::Value;

use crate::knobs::{Fault, Knobs};
use crate::text;
use crate::{MockConfig, Stats};

/// What the mock will answer, before it is written in a dialect.
#[derive(Debug, Clone)]
pub(crate) struct Plan {
    /// The answer's text in streamable pieces (one token each), or the tool arguments in pieces.
    pub pieces: Vec<Cow<'static, str>>,
    /// A tool call (name, complete arguments) instead of text.
    pub tool: Option<(String, Value)>,
    /// Whether the output was cut by the client's `max_tokens`.
    pub truncated: bool,
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

impl Plan {
    /// Plans an answer to `prompt`: a call of `tool` if given, JSON matching `json_schema` if given,
    /// else `knobs.tokens` words capped by `max_tokens`.
    pub(crate) fn new(
        prompt: &str,
        knobs: &Knobs,
        max_tokens: Option<u64>,
        tool: Option<(String, Value)>,
        json_schema: Option<&Value>,
        variant: u64,
    ) -> Self {
        let prompt_tokens = text::prompt_tokens(prompt);
        let seed = text::seed(prompt).wrapping_add(variant);
        if let Some((name, schema)) = tool {
            let args = text::value_for(&schema);
            let pieces = text::pieces(&args.to_string());
            let completion_tokens = pieces.len() as u64 + 8;
            return Self {
                pieces,
                tool: Some((name, args)),
                truncated: false,
                prompt_tokens,
                completion_tokens,
            };
        }
        let cap = max_tokens.unwrap_or(u64::MAX);
        let n = u64::from(knobs.tokens).min(cap);
        let words = text::words(seed, u32::try_from(n).unwrap_or(u32::MAX));
        if let Some(schema) = json_schema {
            let mut value = text::value_for(schema);
            if let Value::Object(map) = &mut value {
                if map.is_empty() {
                    map.insert("answer".into(), Value::String(words.concat()));
                }
            }
            let pieces = text::pieces(&value.to_string());
            return Self {
                completion_tokens: pieces.len() as u64,
                pieces,
                tool: None,
                truncated: false,
                prompt_tokens,
            };
        }
        Self {
            truncated: u64::from(knobs.tokens) > cap,
            completion_tokens: n,
            pieces: words,
            tool: None,
            prompt_tokens,
        }
    }

    pub(crate) fn text(&self) -> String {
        let mut out = String::with_capacity(self.pieces.iter().map(|p| p.len()).sum());
        self.pieces.iter().for_each(|p| out.push_str(p));
        out
    }
}

/// Writes an error in a dialect's shape: status, message, `retry-after` seconds.
pub(crate) type Fail = fn(u16, &str, u32) -> Response;

/// The request's knobs (headers over the server's defaults) and its JSON body.
pub(crate) fn prepare(
    config: &MockConfig,
    headers: &http::HeaderMap,
    body: &[u8],
    fail: Fail,
) -> Result<(Value, Knobs), Box<Response>> {
    let knobs = config
        .knobs
        .with_headers(headers)
        .map_err(|e| Box::new(fail(400, &e, 0)))?;
    let req = serde_json::from_slice(body)
        .map_err(|e| Box::new(fail(400, &format!("invalid JSON body: {e}"), 0)))?;
    Ok((req, knobs))
}

/// Waits out the latency knob, then produces the fault asked for, if any, in the dialect's shape.
/// Mid-stream faults (`drop` of a stream) are left to [`sse`].
pub(crate) async fn fault(knobs: &Knobs, stream: bool, fail: Fail) -> Option<Response> {
    if !knobs.latency.is_zero() {
        tokio::time::sleep(knobs.latency).await;
    }
    match knobs.fault {
        Some(Fault::Status(s)) => Some(fail(
            s,
            &format!("mock fault: status {s}"),
            knobs.retry_after,
        )),
        Some(Fault::Refusal(code)) => Some(fail(400, &format!("mock refusal: {code}"), 0)),
        Some(Fault::Malformed) if !stream => Some(malformed()),
        Some(Fault::Drop) if !stream => Some(dropped()),
        _ => None,
    }
}

/// A JSON response with status 200.
pub(crate) fn json(value: &impl serde::Serialize) -> Response {
    let body = serde_json::to_vec(value).unwrap_or_default();
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// A JSON error response; 429s and 503s carry `retry-after`.
pub(crate) fn error(status: u16, body: &Value, retry_after: u32) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let mut resp = (status, json(body)).into_response();
    if status == StatusCode::TOO_MANY_REQUESTS || status == StatusCode::SERVICE_UNAVAILABLE {
        resp.headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(retry_after));
    }
    resp
}

/// 200 with a body that is not JSON.
pub(crate) fn malformed() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        "{\"id\": \"broken",
    )
        .into_response()
}

/// 200 whose body fails at once, so the peer sees the connection cut.
pub(crate) fn dropped() -> Response {
    let body = Body::from_stream(stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "mock fault: drop",
        ))
    }));
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// An event stream of `frames`: the first after the TTFT knob, the rest `chunk_delay` apart.
/// With the `drop` fault the connection is cut after half the frames.
pub(crate) fn sse(frames: Vec<Bytes>, knobs: &Knobs, stats: &Arc<Stats>) -> Response {
    paced(frames, knobs, "text/event-stream", stats)
}

/// Counts a stream as finished when its last frame went out, as aborted when dropped before.
struct StreamGuard {
    stats: Arc<Stats>,
    finished: bool,
}

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let counter = if self.finished {
            &self.stats.streams_finished
        } else {
            &self.stats.streams_aborted
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// A body of `frames` paced like [`sse`], with any content type.
pub(crate) fn paced(
    frames: Vec<Bytes>,
    knobs: &Knobs,
    content_type: &'static str,
    stats: &Arc<Stats>,
) -> Response {
    stats.streams_started.fetch_add(1, Ordering::Relaxed);
    let mut guard = StreamGuard {
        stats: Arc::clone(stats),
        finished: false,
    };
    let drop = knobs.fault == Some(Fault::Drop);
    let keep = if drop { frames.len() / 2 } else { frames.len() };
    let total = keep;
    let (ttft, gap) = (knobs.ttft, knobs.chunk_delay);
    let items = frames
        .into_iter()
        .take(keep)
        .enumerate()
        .map(move |(i, f)| (i, if i == 0 { ttft } else { gap }, f));
    let body = stream::iter(items)
        .then(|(i, wait, frame)| async move {
            if wait > Duration::ZERO {
                tokio::time::sleep(wait).await;
            }
            Ok::<_, std::io::Error>((i, frame))
        })
        .map(move |item| {
            // Borrow the guard whole so the closure owns it (not just its `finished` field).
            let guard = &mut guard;
            let (i, frame) = item?;
            if i + 1 == total && !drop {
                guard.finished = true;
            }
            Ok::<Bytes, std::io::Error>(frame)
        })
        // Pause before cutting so the frames already written reach the peer, as they would from a
        // real upstream that dies mid-stream.
        .chain(stream::iter(drop.then_some(())).then(|()| async {
            tokio::time::sleep(Duration::from_millis(50)).await;
            Err(std::io::Error::new(
                std::io::ErrorKind::ConnectionReset,
                "mock fault: drop",
            ))
        }));
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        Body::from_stream(body),
    )
        .into_response()
}

/// Writes SSE frames into one growing buffer, so a whole stream costs a few allocations, not one
/// per frame.
pub(crate) struct Frames {
    buf: bytes::BytesMut,
    pub(crate) frames: Vec<Bytes>,
}

impl Frames {
    pub(crate) fn with_capacity(frames: usize) -> Self {
        Self {
            buf: bytes::BytesMut::with_capacity(frames * 256),
            frames: Vec::with_capacity(frames),
        }
    }

    /// Adds `data: <json>\n\n`.
    pub(crate) fn data(&mut self, value: &impl serde::Serialize) {
        use bytes::BufMut;
        self.buf.put_slice(b"data: ");
        let _ = serde_json::to_writer((&mut self.buf).writer(), value);
        self.buf.put_slice(b"\n\n");
        self.frames.push(self.buf.split().freeze());
    }

    pub(crate) fn raw(&mut self, bytes: &'static [u8]) {
        self.frames.push(Bytes::from_static(bytes));
    }
}

/// Frames a JSON value as an SSE `data:` event.
pub(crate) fn data(value: &Value) -> Bytes {
    let mut out = b"data: ".to_vec();
    out.extend(serde_json::to_vec(value).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Frames a JSON value as a named SSE event.
pub(crate) fn event(name: &str, value: &Value) -> Bytes {
    let mut out = format!("event: {name}\ndata: ").into_bytes();
    out.extend(serde_json::to_vec(value).unwrap_or_default());
    out.extend_from_slice(b"\n\n");
    Bytes::from(out)
}

/// Text of a message `content` that is a string or a list of `{type: text, text}` parts.
pub(crate) fn content_text(content: Option<&Value>) -> String {
    match content {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Array(parts)) => parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join(""),
        _ => String::new(),
    }
}

/// A short id that is stable for the same prompt.
pub(crate) fn id(prefix: &str, prompt: &str) -> String {
    format!("{prefix}{:016x}", text::seed(prompt))
}

/// Seconds since the epoch.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Does the request carry the expected key in `header` (optionally after `Bearer `)?
pub(crate) fn key_ok(
    expect: Option<&str>,
    headers: &http::HeaderMap,
    names: &[&str],
    query_key: Option<&str>,
) -> bool {
    let Some(expect) = expect else { return true };
    let from_headers = names
        .iter()
        .filter_map(|n| headers.get(*n))
        .filter_map(|v| v.to_str().ok())
        .any(|v| {
            let v = v.strip_prefix("Bearer ").unwrap_or(v);
            v == expect
        });
    from_headers || query_key == Some(expect)
}
