//! Per-request behaviour of the mock: start-flag defaults overridden by `x-mock-*` headers.

use std::time::Duration;

use http::HeaderMap;

/// A failure the mock can be asked to produce.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer with this HTTP status and the dialect's error body (429 carries `retry-after`).
    Status(u16),
    /// Answer 200 with a body that is not valid JSON.
    Malformed,
    /// Drop the connection: mid-stream for streams, before the body for the rest.
    Drop,
    /// Refuse with 400 and an OpenAI error code: `content_filter` or `context_length_exceeded`.
    Refusal(&'static str),
}

impl std::str::FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "malformed" => Ok(Self::Malformed),
            "drop" => Ok(Self::Drop),
            "content_filter" => Ok(Self::Refusal("content_filter")),
            "context_length_exceeded" => Ok(Self::Refusal("context_length_exceeded")),
            n => n
                .parse::<u16>()
                .ok()
                .filter(|c| (400..600).contains(c))
                .map(Self::Status)
                .ok_or_else(|| {
                    format!("unknown fault {s:?}: use an HTTP status 400-599, malformed, drop, content_filter or context_length_exceeded")
                }),
        }
    }
}

/// How one request is answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Knobs {
    /// Delay before anything is sent.
    pub latency: Duration,
    /// Extra delay before the first streamed token.
    pub ttft: Duration,
    /// Delay between streamed chunks.
    pub chunk_delay: Duration,
    /// Output length in tokens (words), before `max_tokens` caps it.
    pub tokens: u32,
    /// A failure to produce instead of an answer.
    pub fault: Option<Fault>,
    /// `retry-after` seconds on a 429.
    pub retry_after: u32,
}

impl Default for Knobs {
    fn default() -> Self {
        Self {
            latency: Duration::ZERO,
            ttft: Duration::ZERO,
            chunk_delay: Duration::ZERO,
            tokens: 16,
            fault: None,
            retry_after: 1,
        }
    }
}

impl Knobs {
    /// These knobs with any `x-mock-*` header of the request applied; a bad header is an error.
    pub fn with_headers(&self, headers: &HeaderMap) -> Result<Self, String> {
        let mut k = self.clone();
        let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        let ms = |name: &str, v: &str| {
            v.parse::<u64>()
                .map(Duration::from_millis)
                .map_err(|_| format!("{name}: expected milliseconds, got {v:?}"))
        };
        if let Some(v) = get("x-mock-latency-ms") {
            k.latency = ms("x-mock-latency-ms", v)?;
        }
        if let Some(v) = get("x-mock-ttft-ms") {
            k.ttft = ms("x-mock-ttft-ms", v)?;
        }
        if let Some(v) = get("x-mock-chunk-delay-ms") {
            k.chunk_delay = ms("x-mock-chunk-delay-ms", v)?;
        }
        if let Some(v) = get("x-mock-tokens") {
            k.tokens = v
                .parse()
                .map_err(|_| format!("x-mock-tokens: expected a count, got {v:?}"))?;
        }
        if let Some(v) = get("x-mock-fault") {
            k.fault = Some(v.parse()?);
        }
        if let Some(v) = get("x-mock-retry-after") {
            k.retry_after = v
                .parse()
                .map_err(|_| format!("x-mock-retry-after: expected seconds, got {v:?}"))?;
        }
        Ok(k)
    }
}
