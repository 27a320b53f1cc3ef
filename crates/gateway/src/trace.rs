//! Traces: W3C trace context in and out, and one OpenTelemetry span per call, exported over
//! OTLP/HTTP (JSON encoding) when `server.tracing.otlp_endpoint` is set.
//!
//! A call continues the client's trace (`traceparent`) or starts one; its span follows the
//! GenAI semantic conventions (`gen_ai.operation.name`, `gen_ai.provider.name`,
//! `gen_ai.request.model`, `gen_ai.response.model`, `gen_ai.usage.*`) plus HTTP and Gatehouse
//! attributes, and is built from the call's record when the call ends (streams: at their end).
//! Upstream requests carry a `traceparent` naming the call's span as their parent. With export
//! off, a client's `traceparent` is passed to upstreams unchanged, so its trace stays whole.
//!
//! Spans go through a bounded queue to a task that POSTs batches (up to 512, or every second)
//! to `<endpoint>/v1/traces`. Tracing is best effort: when the queue is full or the collector
//! is down, spans are dropped and counted, and calls never wait.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use gatehouse_store::CallRecord;
use serde_json::{json, Value};
use tokio::sync::mpsc;

/// A call's place in a trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Context {
    pub trace_id: [u8; 16],
    /// This call's span.
    pub span_id: [u8; 8],
    /// The client's span, when it sent one.
    pub parent: Option<[u8; 8]>,
    pub sampled: bool,
}

/// What a client's `traceparent` says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parent {
    pub trace_id: [u8; 16],
    pub span_id: [u8; 8],
    pub sampled: bool,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn unhex<const N: usize>(s: &str) -> Option<[u8; N]> {
    if s.len() != 2 * N {
        return None;
    }
    let mut out = [0u8; N];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(out)
}

fn random<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    fastrand::fill(&mut out);
    if out.iter().all(|b| *b == 0) {
        out[N - 1] = 1;
    }
    out
}

impl Context {
    /// Reads a `traceparent` header (version 00; invalid ones are ignored, as the spec asks):
    /// the trace, the caller's span, and whether it is sampled.
    pub fn parse(header: &str) -> Option<Parent> {
        let mut parts = header.trim().split('-');
        let (version, trace, parent, flags) =
            (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        if version.len() != 2 || version == "ff" || (version == "00" && parts.next().is_some()) {
            return None;
        }
        let trace_id = unhex::<16>(trace).filter(|t| t.iter().any(|b| *b != 0))?;
        let parent_id = unhex::<8>(parent).filter(|p| p.iter().any(|b| *b != 0))?;
        let flags = unhex::<1>(flags)?[0];
        Some(Parent {
            trace_id,
            span_id: parent_id,
            sampled: flags & 1 == 1,
        })
    }

    /// The call's context: the client's trace continued, or a new one (sampled).
    pub fn of(header: Option<&str>) -> Self {
        match header.and_then(Self::parse) {
            Some(p) => Self {
                trace_id: p.trace_id,
                span_id: random(),
                parent: Some(p.span_id),
                sampled: p.sampled,
            },
            None => Self {
                trace_id: random(),
                span_id: random(),
                parent: None,
                sampled: true,
            },
        }
    }

    /// The `traceparent` an upstream request carries: this call's span as its parent.
    pub fn traceparent(&self) -> String {
        format!(
            "00-{}-{}-{:02x}",
            hex(&self.trace_id),
            hex(&self.span_id),
            u8::from(self.sampled)
        )
    }
}

/// The exporter's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct TracingCfg {
    /// OTLP/HTTP base URL (e.g. `http://127.0.0.1:4318`); spans go to `<endpoint>/v1/traces`.
    pub endpoint: String,
    pub service_name: String,
    /// Extra headers for the collector (e.g. an API key).
    pub headers: Vec<(String, String)>,
}

/// One finished call's span.
#[derive(Debug)]
struct Span {
    ctx: Context,
    start_ns: u128,
    end_ns: u128,
    rec: Box<CallRecord>,
    provider_kind: Option<String>,
}

/// Sends spans to the collector.
#[derive(Debug)]
pub struct Tracer {
    tx: mpsc::Sender<Span>,
    pub dropped: AtomicU64,
    pub exported: Arc<AtomicU64>,
}

const QUEUE: usize = 4096;
const BATCH: usize = 512;

impl Tracer {
    /// Starts the export task.
    pub fn start(cfg: TracingCfg) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(QUEUE);
        let exported = Arc::new(AtomicU64::new(0));
        tokio::spawn(export(cfg, rx, Arc::clone(&exported)));
        Arc::new(Self {
            tx,
            dropped: AtomicU64::new(0),
            exported,
        })
    }

    /// Hands a finished call over; never waits.
    pub fn finish(
        &self,
        ctx: Context,
        (start_ns, end_ns): (u128, u128),
        rec: &CallRecord,
        provider_kind: Option<&str>,
    ) {
        if !ctx.sampled {
            return;
        }
        let span = Span {
            ctx,
            start_ns,
            end_ns,
            rec: Box::new(rec.clone()),
            provider_kind: provider_kind.map(str::to_owned),
        };
        if self.tx.try_send(span).is_err() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }
}

fn attr(key: &str, v: Value) -> Value {
    let value = match v {
        Value::String(s) => json!({"stringValue": s}),
        Value::Bool(b) => json!({"boolValue": b}),
        Value::Number(n) if n.is_i64() => json!({"intValue": n.to_string()}),
        Value::Number(n) => json!({"doubleValue": n.as_f64()}),
        other => json!({"stringValue": other.to_string()}),
    };
    json!({"key": key, "value": value})
}

/// The OTLP JSON of one span.
fn encode(s: &Span) -> Value {
    let r = &s.rec;
    let operation = match r.surface.as_str() {
        "completions" => "text_completion",
        "embeddings" => "embeddings",
        "rest" => "http",
        _ => "chat",
    };
    let mut attrs = vec![
        attr("gatehouse.request_id", json!(r.request_id)),
        attr("gatehouse.key", json!(r.key_id)),
        attr("gatehouse.surface", json!(r.surface)),
        attr("gatehouse.attempts", json!(r.attempts.len())),
        attr("http.response.status_code", json!(r.status)),
    ];
    if r.surface == "rest" {
        attrs.push(attr("http.route", json!(r.model_asked)));
    } else {
        attrs.push(attr("gen_ai.operation.name", json!(operation)));
        attrs.push(attr("gen_ai.request.model", json!(r.model_asked)));
        attrs.push(attr("gen_ai.usage.input_tokens", json!(r.input_tokens)));
        attrs.push(attr("gen_ai.usage.output_tokens", json!(r.output_tokens)));
        attrs.push(attr("gatehouse.cost_usd", json!(r.cost_nano as f64 / 1e9)));
        if let Some(m) = &r.model_served {
            attrs.push(attr("gen_ai.response.model", json!(m)));
        }
        if let Some(k) = &s.provider_kind {
            attrs.push(attr("gen_ai.provider.name", json!(k)));
        }
        if let Some(t) = r.ttft_ms {
            attrs.push(attr("gatehouse.time_to_first_token_ms", json!(t)));
        }
    }
    for (k, v) in [
        ("gatehouse.tenant_id", &r.tenant_id),
        ("gatehouse.app_id", &r.app_id),
        ("gatehouse.service", &r.service),
        ("gatehouse.provider", &r.provider),
        ("gen_ai.conversation.user", &r.end_user),
        ("client.address", &r.client_ip),
    ] {
        if let Some(v) = v {
            attrs.push(attr(k, json!(v)));
        }
    }
    let failed = r.status >= 500 || r.status == 0;
    if let Some(code) = &r.error_code {
        attrs.push(attr("error.type", json!(code)));
    }
    let name = if r.surface == "rest" {
        r.model_asked.clone()
    } else {
        format!("{operation} {}", r.model_asked)
    };
    let mut span = json!({
        "traceId": hex(&s.ctx.trace_id),
        "spanId": hex(&s.ctx.span_id),
        "name": name,
        "kind": 2,
        "startTimeUnixNano": s.start_ns.to_string(),
        "endTimeUnixNano": s.end_ns.to_string(),
        "attributes": attrs,
        "status": if failed {
            json!({"code": 2, "message": r.error_message.clone().unwrap_or_default()})
        } else {
            json!({"code": 0})
        },
    });
    if let Some(p) = s.ctx.parent {
        span["parentSpanId"] = json!(hex(&p));
    }
    span
}

async fn export(cfg: TracingCfg, mut rx: mpsc::Receiver<Span>, exported: Arc<AtomicU64>) {
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap_or_default();
    let url = format!("{}/v1/traces", cfg.endpoint.trim_end_matches('/'));
    let resource = json!({
        "attributes": [attr("service.name", json!(cfg.service_name))],
    });
    let mut failing = false;
    while let Some(first) = rx.recv().await {
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_secs(1);
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(s)) => batch.push(s),
                _ => break,
            }
        }
        let body = json!({
            "resourceSpans": [{
                "resource": resource,
                "scopeSpans": [{
                    "scope": {"name": "gatehouse", "version": env!("CARGO_PKG_VERSION")},
                    "spans": batch.iter().map(encode).collect::<Vec<_>>(),
                }],
            }],
        });
        let mut req = http
            .post(&url)
            .header("content-type", "application/json")
            .body(body.to_string());
        for (k, v) in &cfg.headers {
            req = req.header(k.as_str(), v.as_str());
        }
        match req.send().await {
            Ok(r) if r.status().is_success() => {
                exported.fetch_add(batch.len() as u64, Ordering::Relaxed);
                if failing {
                    tracing::info!("OTLP export works again");
                    failing = false;
                }
            }
            Ok(r) => {
                if !failing {
                    tracing::warn!(status = r.status().as_u16(), %url, "OTLP collector refused spans; dropping them");
                    failing = true;
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(error = %e, %url, "OTLP collector unreachable; dropping spans");
                    failing = true;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traceparent_round_trip_and_invalid_headers() {
        let h = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
        let ctx = Context::of(Some(h));
        assert_eq!(hex(&ctx.trace_id), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(
            ctx.parent.map(|p| hex(&p)).as_deref(),
            Some("00f067aa0ba902b7")
        );
        assert!(ctx.sampled);
        let out = ctx.traceparent();
        assert!(out.starts_with("00-4bf92f3577b34da6a3ce929d0e0e4736-"));
        assert!(out.ends_with("-01"));
        assert!(
            !out.contains("00f067aa0ba902b7"),
            "upstreams see the gateway's span"
        );
        for bad in [
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
            "garbage",
        ] {
            assert!(Context::parse(bad).is_none(), "{bad}");
        }
        let fresh = Context::of(None);
        assert!(fresh.parent.is_none() && fresh.sampled);
        assert!(
            !Context::of(Some(
                "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00"
            ))
            .sampled
        );
    }

    #[test]
    fn spans_follow_the_genai_conventions() {
        let ctx = Context::of(None);
        let rec = CallRecord {
            request_id: "r1".into(),
            surface: "chat".into(),
            model_asked: "chat".into(),
            model_served: Some("gpt-4o-mini".into()),
            status: 200,
            input_tokens: 12,
            output_tokens: 7,
            ..CallRecord::default()
        };
        let span = encode(&Span {
            ctx,
            start_ns: 1,
            end_ns: 2,
            rec: Box::new(rec),
            provider_kind: Some("openai".into()),
        });
        assert_eq!(span["name"], "chat chat");
        let attrs = span["attributes"].as_array().unwrap();
        let get = |k: &str| {
            attrs
                .iter()
                .find(|a| a["key"] == k)
                .map(|a| a["value"].clone())
        };
        assert_eq!(
            get("gen_ai.usage.input_tokens"),
            Some(json!({"intValue": "12"}))
        );
        assert_eq!(
            get("gen_ai.response.model"),
            Some(json!({"stringValue": "gpt-4o-mini"}))
        );
        assert_eq!(
            get("gen_ai.provider.name"),
            Some(json!({"stringValue": "openai"}))
        );
        assert!(span.get("parentSpanId").is_none());
    }
}
