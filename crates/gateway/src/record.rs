//! The call log: one record per call, written off the request path, never lost.
//!
//! The request path hands a finished record to a bounded queue and never waits. A writer task
//! takes records in batches (up to 256, or what arrived within 200 ms) and writes each batch in
//! one transaction (with the per-minute rollups it adds to). When the queue is full, or the store
//! fails, records go to an append-only spill journal (one JSON record per line, each with a
//! CRC-32 of its text); while the store is failing the writer sends whole batches there, so the
//! queue keeps draining. Every second the journal is moved aside and replayed in order; replays
//! cannot duplicate (records are keyed, and rollups count only rows the insert added). Bodies
//! are redacted and capped by the writer before anything is written or spilled. On shutdown the
//! queue is drained into the store (or the journal) before the process exits.

use std::io::Write;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use std::collections::HashMap;
use std::net::IpAddr;

use bytes::Bytes;
use gatehouse_store::{CallRecord, Store};
use http::HeaderMap;
use tokio::sync::mpsc;

use crate::config::CaptureBodies;
use crate::error::GatewayError;

const QUEUE: usize = 10_000;
const BATCH: usize = 256;

/// Counters of the pipeline (exported as metrics).
#[derive(Debug, Default)]
pub struct LogStats {
    pub written: AtomicU64,
    pub spilled: AtomicU64,
    pub replayed: AtomicU64,
    /// Records that could be neither queued, written nor spilled (must stay 0).
    pub dropped: AtomicU64,
}

/// The node's call log.
#[derive(Debug)]
pub struct CallLog {
    tx: Mutex<Option<mpsc::Sender<CallRecord>>>,
    /// Largest body a record keeps.
    body_limit: usize,
    spill: Arc<Spill>,
    pub stats: Arc<LogStats>,
    writer: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

#[derive(Debug)]
struct Spill {
    path: PathBuf,
    lock: Mutex<()>,
}

impl Spill {
    fn append(&self, records: &[CallRecord], stats: &LogStats) {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let result = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.path)
            .and_then(|mut f| {
                for r in records {
                    let json = serde_json::to_string(r).unwrap_or_default();
                    writeln!(f, "{:08x} {json}", crc32(json.as_bytes()))?;
                }
                f.sync_data()
            });
        match result {
            Ok(()) => {
                stats
                    .spilled
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                stats
                    .dropped
                    .fetch_add(records.len() as u64, Ordering::Relaxed);
                tracing::error!(error = %e, path = %self.path.display(), lost = records.len(), "cannot write the call log's spill journal");
            }
        }
    }

    /// The journal being replayed: new spills go to `path` meanwhile, so a replay never
    /// races an append.
    fn replaying(&self) -> PathBuf {
        self.path.with_extension("spill.replaying")
    }

    /// Moves the journal aside for a replay (or finds one a failed replay left); `None` when
    /// there is nothing to replay.
    fn take(&self) -> Option<PathBuf> {
        let _guard = self
            .lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let aside = self.replaying();
        if aside.exists() {
            return Some(aside);
        }
        let has = std::fs::metadata(&self.path).is_ok_and(|m| m.len() > 0);
        if !has {
            return None;
        }
        match std::fs::rename(&self.path, &aside) {
            Ok(()) => Some(aside),
            Err(e) => {
                tracing::warn!(error = %e, "call log: cannot move the spill journal aside to replay it");
                None
            }
        }
    }

    /// Reads a journal's intact records (a torn or damaged line is skipped and reported).
    fn read(path: &std::path::Path) -> Vec<CallRecord> {
        let Ok(text) = std::fs::read_to_string(path) else {
            return Vec::new();
        };
        text.lines()
            .filter_map(|line| {
                let (sum, json) = line.split_once(' ')?;
                if u32::from_str_radix(sum, 16).ok()? != crc32(json.as_bytes()) {
                    tracing::warn!("a damaged line in the call log's spill journal was skipped");
                    return None;
                }
                serde_json::from_str(json).ok()
            })
            .collect()
    }
}

/// CRC-32 (IEEE), bitwise: the journal's few lines do not need a table.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xFFFF_FFFFu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

impl CallLog {
    /// Starts the writer; `spill` is the journal file (in the data dir).
    pub fn start(store: Store, spill: PathBuf, body_limit: usize) -> Arc<Self> {
        Self::start_with(store, spill, body_limit, QUEUE)
    }

    /// `start` with a queue of this many records.
    pub fn start_with(store: Store, spill: PathBuf, body_limit: usize, queue: usize) -> Arc<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let spill = Arc::new(Spill {
            path: spill,
            lock: Mutex::new(()),
        });
        let stats = Arc::new(LogStats::default());
        let writer = tokio::spawn(write(
            store,
            rx,
            Arc::clone(&spill),
            Arc::clone(&stats),
            body_limit,
        ));
        Arc::new(Self {
            tx: Mutex::new(Some(tx)),
            body_limit,
            spill,
            stats,
            writer: Mutex::new(Some(writer)),
        })
    }

    /// Hands a record over; never waits.
    pub fn record(&self, r: CallRecord) {
        let tx = self
            .tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone();
        let r = match tx {
            Some(tx) => match tx.try_send(r) {
                Ok(()) => return,
                Err(mpsc::error::TrySendError::Full(r) | mpsc::error::TrySendError::Closed(r)) => r,
            },
            None => r,
        };
        let mut r = r;
        seal(&mut r, self.body_limit);
        self.spill.append(std::slice::from_ref(&r), &self.stats);
    }

    /// Records waiting in the queue.
    pub fn queued(&self) -> usize {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Stops taking records and waits until every queued one is written (or spilled).
    pub async fn drain(&self) {
        self.tx
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        let writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(w) = writer {
            let _ = w.await;
        }
    }
}

/// Redacts and caps a record's bodies: done before a record is written or spilled, off the
/// request path, so nothing unredacted reaches the disk.
fn seal(r: &mut CallRecord, limit: usize) {
    for b in [&mut r.request_body, &mut r.response_body] {
        if let Some(raw) = b.take() {
            *b = Some(crate::redact::body(raw.as_bytes(), limit));
        }
    }
}

async fn write(
    store: Store,
    mut rx: mpsc::Receiver<CallRecord>,
    spill: Arc<Spill>,
    stats: Arc<LogStats>,
    body_limit: usize,
) {
    let mut replay_tick = tokio::time::interval(Duration::from_secs(1));
    // Once the store fails, batches go straight to the journal (so the queue keeps draining
    // and calls never spill themselves) until a replay finds the store answering again.
    let mut store_down = false;
    loop {
        let first = tokio::select! {
            r = rx.recv() => r,
            _ = replay_tick.tick() => {
                store_down = !replay(&store, &spill, &stats).await;
                continue;
            }
        };
        let Some(first) = first else { break };
        let mut batch = vec![first];
        let deadline = tokio::time::Instant::now() + Duration::from_millis(200);
        while batch.len() < BATCH {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(r)) => batch.push(r),
                _ => break,
            }
        }
        for r in &mut batch {
            seal(r, body_limit);
        }
        if store_down {
            spill.append(&batch, &stats);
        } else {
            store_down = !flush(&store, &batch, &spill, &stats).await;
        }
    }
    replay(&store, &spill, &stats).await;
}

/// Writes a batch; on failure spills it and returns false.
async fn flush(store: &Store, batch: &[CallRecord], spill: &Spill, stats: &LogStats) -> bool {
    match store.insert_calls(batch).await {
        Ok(()) => {
            stats
                .written
                .fetch_add(batch.len() as u64, Ordering::Relaxed);
            true
        }
        Err(e) => {
            tracing::warn!(error = %e, records = batch.len(), "call log: the store failed; records go to the spill journal until it answers");
            spill.append(batch, stats);
            false
        }
    }
}

/// Replays the journal into the store; true when nothing is left to replay.
async fn replay(store: &Store, spill: &Spill, stats: &LogStats) -> bool {
    // At most a few rounds: a journal, then what spilled while it was replayed.
    for _ in 0..4 {
        let Some(path) = spill.take() else {
            return true;
        };
        let records = Spill::read(&path);
        for chunk in records.chunks(BATCH) {
            if let Err(e) = store.insert_calls(chunk).await {
                tracing::debug!(error = %e, "call log: the store is still failing; keeping the journal");
                return false;
            }
        }
        if let Err(e) = std::fs::remove_file(&path) {
            tracing::warn!(error = %e, "call log: cannot remove the replayed journal (replaying it again adds nothing)");
        }
        stats
            .replayed
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        tracing::info!(
            records = records.len(),
            "call log: spill journal replayed into the store"
        );
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32_is_the_ieee_one() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
    }
}

/// Retention: every hour (and at start), deletes records and rollups past their age, in
/// chunks of 5,000 rows with a pause between, so writers never wait long behind it.
pub async fn retain(store: Store, cfg: crate::config::CallLogCfg) {
    let mut tick = tokio::time::interval(Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let now = gatehouse_store::ids::now_ms();
        let age = |d: Duration| now - i64::try_from(d.as_millis()).unwrap_or(i64::MAX / 2);
        let mut records = 0;
        loop {
            match store.prune_calls(age(cfg.keep_records), 5_000).await {
                Ok(n) => {
                    records += n;
                    if n < 5_000 {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "call log retention: cannot prune records");
                    break;
                }
            }
        }
        let rollups = match store.prune_rollups(age(cfg.keep_rollups)).await {
            Ok(n) => n,
            Err(e) => {
                tracing::warn!(error = %e, "call log retention: cannot prune rollups");
                0
            }
        };
        if records + rollups > 0 {
            tracing::info!(records, rollups, "call log retention: pruned");
        }
    }
}

/// Which bodies records keep: the node's default, overridden per tenant, then per service.
#[derive(Debug, Clone, Default)]
pub struct Capture {
    default: CaptureBodies,
    tenants: HashMap<String, CaptureBodies>,
    services: HashMap<String, CaptureBodies>,
}

impl Capture {
    pub fn build(cfg: &crate::config::Config) -> Self {
        Self {
            default: cfg.server.capture_bodies,
            tenants: cfg
                .tenants
                .iter()
                .filter_map(|t| Some((t.name.clone(), t.capture_bodies?)))
                .collect(),
            services: cfg
                .services
                .iter()
                .filter_map(|s| Some((s.name.clone(), s.capture_bodies?)))
                .collect(),
        }
    }

    pub fn resolve(&self, tenant: Option<&str>, service: Option<&str>) -> CaptureBodies {
        service
            .and_then(|s| self.services.get(s))
            .or_else(|| tenant.and_then(|t| self.tenants.get(t)))
            .copied()
            .unwrap_or(self.default)
    }
}

/// A call's record as it is being filled in; sent when the call ends (for streams: when the
/// stream ends or the client leaves).
#[derive(Debug)]
pub struct Draft {
    pub rec: CallRecord,
    pub(crate) started: std::time::Instant,
    /// Where the record goes (with a store); its metrics are counted either way.
    log: Option<Arc<CallLog>>,
    metrics: Arc<crate::metrics::Metrics>,
    /// Input, output, cached-input prices (USD per 1M tokens) of the serving model.
    pub price: Option<(f64, f64, f64)>,
    /// Which bodies this call's record keeps (set once the tenant and service are known).
    pub capture: CaptureBodies,
    tenant: Option<Arc<str>>,
    request_body: Option<Bytes>,
    response_body: Option<Bytes>,
    /// Time spent waiting on upstreams so far.
    upstream: Duration,
    /// The call's place in its trace, and where its span goes.
    trace: crate::trace::Context,
    client_traceparent: Option<String>,
    tracer: Option<Arc<crate::trace::Tracer>>,
    start_ns: u128,
    /// `gen_ai.provider.name` of the serving provider.
    pub provider_kind: Option<&'static str>,
}

/// Most tags a record keeps from `x-gatehouse-tags`, and their longest length.
const MAX_TAGS: usize = 16;
const MAX_TAG: usize = 64;

fn header<'a>(h: &'a HeaderMap, name: &str) -> Option<&'a str> {
    h.get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

impl Draft {
    pub fn new(
        traffic: &crate::limits::Traffic,
        request_id: &str,
        principal: &crate::access::Principal,
        surface: &str,
        headers: &HeaderMap,
        client: Option<IpAddr>,
    ) -> Self {
        let (tenant_id, app_id, tenant) = match &principal.who {
            crate::access::Who::App { app_id, tenant, .. } => (
                principal.tenant_id.as_deref().map(str::to_owned),
                Some(app_id.to_string()),
                Some(Arc::clone(tenant)),
            ),
            crate::access::Who::Operator => (None, None, None),
        };
        let tags = header(headers, "x-gatehouse-tags")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|t| !t.is_empty())
                    .take(MAX_TAGS)
                    .map(|t| t.chars().take(MAX_TAG).collect())
                    .collect()
            })
            .unwrap_or_default();
        let client_traceparent = header(headers, "traceparent").map(str::to_owned);
        Self {
            trace: crate::trace::Context::of(client_traceparent.as_deref()),
            client_traceparent,
            tracer: traffic.tracer.clone(),
            start_ns: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_nanos()),
            provider_kind: None,
            rec: CallRecord {
                id: gatehouse_store::ids::new_id("cal_"),
                request_id: request_id.to_owned(),
                at: gatehouse_store::ids::now_ms(),
                tenant_id,
                app_id,
                key_id: principal.key_name.to_string(),
                surface: surface.to_owned(),
                dialect: match surface {
                    "rest" => "rest",
                    "messages" => "anthropic",
                    "responses" => "openai_responses",
                    _ => "openai",
                }
                .to_owned(),
                end_user: header(headers, "x-gatehouse-end-user")
                    .map(|u| u.chars().take(256).collect()),
                client_ip: client.map(|c| c.to_string()),
                user_agent: header(headers, "user-agent").map(|u| u.chars().take(512).collect()),
                tags,
                ..CallRecord::default()
            },
            started: std::time::Instant::now(),
            log: traffic.calls.clone(),
            metrics: Arc::clone(&traffic.metrics),
            price: None,
            capture: CaptureBodies::Off,
            tenant,
            request_body: None,
            response_body: None,
            upstream: Duration::ZERO,
        }
    }

    /// Applies the capture policy once the service is known.
    pub fn capture_from(&mut self, policy: &Capture, service: Option<&str>) {
        self.rec.service = service.map(str::to_owned);
        self.capture = policy.resolve(self.tenant.as_deref(), service);
    }

    /// The request body, kept if the policy may want it.
    pub fn request_body(&mut self, body: &Bytes) {
        if self.capture != CaptureBodies::Off {
            self.request_body = Some(body.clone());
        }
    }

    /// The response body (streams: the streamed text), kept if the policy may want it.
    pub fn response_body(&mut self, body: Bytes) {
        if self.capture != CaptureBodies::Off {
            self.response_body = Some(body);
        }
    }

    /// The `traceparent` upstream requests carry: the call's span with tracing on, else the
    /// client's own (so its trace stays whole), else none.
    pub fn traceparent(&self) -> Option<String> {
        if self.tracer.is_some() {
            Some(self.trace.traceparent())
        } else {
            self.client_traceparent.clone()
        }
    }

    /// Adds time spent waiting on an upstream.
    pub fn upstream_time(&mut self, d: Duration) {
        self.upstream += d;
    }

    /// Time to the first token, for streams.
    pub fn first_token(&mut self) {
        if self.rec.ttft_ms.is_none() {
            self.rec.ttft_ms = Some(millis(self.started.elapsed()));
        }
    }

    pub fn attempt(&mut self, provider: &str, model: &str, outcome: impl Into<String>) {
        self.rec.attempts.push(gatehouse_store::Attempt {
            provider: provider.to_owned(),
            model: model.to_owned(),
            outcome: outcome.into(),
        });
    }

    pub fn tokens(&mut self, t: crate::limits::Tokens) {
        self.rec.input_tokens = i64::try_from(t.input).unwrap_or(i64::MAX);
        self.rec.output_tokens = i64::try_from(t.output).unwrap_or(i64::MAX);
        self.rec.cached_tokens = i64::try_from(t.cached).unwrap_or(i64::MAX);
        self.rec.reasoning_tokens = i64::try_from(t.reasoning).unwrap_or(i64::MAX);
        if let Some((i, o, c)) = self.price {
            let cached = t.cached.min(t.input);
            let usd =
                ((t.input - cached) as f64 * i + cached as f64 * c + t.output as f64 * o) / 1e6;
            self.rec.cost_nano = (usd * 1e9).round() as i64;
        }
    }

    /// Sends the record with the call's status, error code and message.
    pub fn finish(mut self, status: u16, error: Option<(&str, &str)>) {
        let total = self.started.elapsed();
        self.rec.status = i64::from(status);
        self.rec.error_code = error.map(|(c, _)| c.to_owned());
        self.rec.error_message = error.map(|(_, m)| m.chars().take(2048).collect());
        self.rec.duration_ms = millis(total);
        self.rec.upstream_ms = millis(self.upstream);
        self.rec.overhead_us =
            i64::try_from(total.saturating_sub(self.upstream).as_micros()).unwrap_or(i64::MAX);
        let keep = match self.capture {
            CaptureBodies::Off => false,
            CaptureBodies::Errors => status >= 400,
            CaptureBodies::Full => true,
        };
        if keep {
            // Raw here; redacted and capped by `seal` before they leave memory.
            let text = |b: Bytes| String::from_utf8_lossy(&b).into_owned();
            self.rec.request_body = self.request_body.take().map(text);
            self.rec.response_body = self.response_body.take().map(text);
        }
        self.metrics.call(&self.rec);
        if let Some(t) = &self.tracer {
            let end = self.start_ns + total.as_nanos();
            t.finish(
                self.trace,
                (self.start_ns, end),
                &self.rec,
                self.provider_kind,
            );
        }
        if let Some(log) = self.log.take() {
            log.record(self.rec);
        }
    }
}

impl Draft {
    /// Sends the record of a call that ended with this outcome (an error's body is what the
    /// client was told).
    pub fn finish_with(mut self, outcome: &Result<axum::response::Response, GatewayError>) {
        match outcome {
            Ok(r) => {
                let status = r.status();
                let failed =
                    !status.is_success() && status != http::StatusCode::SWITCHING_PROTOCOLS;
                let code = failed.then(|| status.as_u16().to_string());
                let reason = status.canonical_reason().unwrap_or("");
                self.finish(status.as_u16(), code.as_deref().map(|c| (c, reason)));
            }
            Err(e) => {
                let code = e.code().unwrap_or_else(|| "error".into());
                let message = e.to_string();
                if let Ok(body) = serde_json::to_vec(&e.body()) {
                    self.response_body(Bytes::from(body));
                }
                self.finish(e.status(), Some((&code, &message)));
            }
        }
    }
}

/// Most of a streamed-through response body a record buffers (the record keeps less:
/// `call_log.body_limit`).
const TEE_LIMIT: usize = 256 * 1024;

/// Buffers what passes of a response body, and sends the record when the body ends or is
/// dropped.
struct Tee {
    draft: Option<Draft>,
    buf: bytes::BytesMut,
    status: http::StatusCode,
    /// The body streams from the upstream: its time is upstream time.
    began: std::time::Instant,
}

impl Drop for Tee {
    fn drop(&mut self) {
        if let Some(mut d) = self.draft.take() {
            d.upstream_time(self.began.elapsed());
            d.response_body(self.buf.split().freeze());
            let ok =
                self.status.is_success() || self.status == http::StatusCode::SWITCHING_PROTOCOLS;
            let code = self.status.as_u16().to_string();
            let reason = self.status.canonical_reason().unwrap_or("");
            d.finish(
                self.status.as_u16(),
                (!ok).then_some((code.as_str(), reason)),
            );
        }
    }
}

impl Draft {
    /// Whether this call's policy keeps a response body with this status.
    pub fn keeps_response_body(&self, status: http::StatusCode) -> bool {
        match self.capture {
            CaptureBodies::Off => false,
            CaptureBodies::Errors => status.as_u16() >= 400,
            CaptureBodies::Full => status != http::StatusCode::SWITCHING_PROTOCOLS,
        }
    }

    /// The response, its body passed through a tee; the record is sent when the body ends
    /// (or the client leaves), with what passed (up to 256 KiB before redaction and the cap).
    pub fn finish_after(self, resp: axum::response::Response) -> axum::response::Response {
        use futures_util::StreamExt;
        let (parts, body) = resp.into_parts();
        let mut tee = Tee {
            draft: Some(self),
            buf: bytes::BytesMut::new(),
            status: parts.status,
            began: std::time::Instant::now(),
        };
        let stream = body.into_data_stream().map(move |chunk| {
            if let Ok(b) = &chunk {
                let room = TEE_LIMIT.saturating_sub(tee.buf.len());
                tee.buf.extend_from_slice(&b[..b.len().min(room)]);
            }
            chunk
        });
        axum::response::Response::from_parts(parts, axum::body::Body::from_stream(stream))
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod journal_tests {
    use super::*;

    fn rec(i: usize) -> CallRecord {
        CallRecord {
            id: gatehouse_store::ids::new_id("cal_"),
            request_id: format!("req-{i}"),
            at: gatehouse_store::ids::now_ms(),
            tenant_id: None,
            app_id: None,
            key_id: "k".into(),
            surface: "chat".into(),
            service: None,
            model_asked: "m".into(),
            model_served: Some("m".into()),
            provider: Some("p".into()),
            status: 200,
            error_code: None,
            attempts: vec![],
            stream: false,
            duration_ms: 1,
            input_tokens: 1,
            output_tokens: 2,
            cached_tokens: 0,
            cost_nano: 3,
            dialect: "openai".into(),
            request_body: Some(format!("{{\"content\":\"mail me at u{i}@example.com\"}}")),
            ..CallRecord::default()
        }
    }

    /// The store is down: records go to the journal; a node that starts on the same journal
    /// with a working store replays them, once.
    #[tokio::test]
    async fn records_survive_a_failing_store_through_the_journal() {
        let (store, dir) = gatehouse_store::testing::sqlite().await;
        let url = format!("sqlite://{}", dir.join("gatehouse.db").display());
        let journal = dir.join("call-log.spill");
        store.close().await;
        let down = CallLog::start(store, journal.clone(), 1024);
        for i in 0..5 {
            down.record(rec(i));
        }
        down.drain().await;
        assert_eq!(down.stats.spilled.load(Ordering::Relaxed), 5);
        assert_eq!(down.stats.dropped.load(Ordering::Relaxed), 0);
        // A failed replay leaves the journal moved aside; the next start replays it first.
        let aside = journal.with_extension("spill.replaying");
        let text = [&journal, &aside]
            .iter()
            .filter_map(|p| std::fs::read_to_string(p).ok())
            .collect::<String>();
        assert!(
            !text.contains("@example.com") && text.contains("[REDACTED:email]"),
            "bodies are redacted before they reach the disk: {text}"
        );

        let key = gatehouse_store::secrets::MasterKey::ephemeral().unwrap();
        let up = Store::open(&url, key).await.unwrap();
        let log = CallLog::start(up.clone(), journal.clone(), 1024);
        log.drain().await;
        let page = up
            .list_calls(&gatehouse_store::CallFilter {
                limit: 100,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.items.len(), 5);
        assert!(
            !journal.exists() && !aside.exists(),
            "the journal is emptied once replayed"
        );
        let _ = std::fs::remove_dir_all(dir);
    }

    /// A queue far too small for the burst: what does not fit goes to the journal and is
    /// replayed; every record reaches the store once and none is dropped.
    #[tokio::test]
    async fn a_full_queue_loses_nothing() {
        let (store, dir) = gatehouse_store::testing::sqlite().await;
        let log = CallLog::start_with(store.clone(), dir.join("call-log.spill"), 1024, 2);
        for i in 0..500 {
            log.record(rec(i));
        }
        log.drain().await;
        let stats = &log.stats;
        assert!(
            stats.spilled.load(Ordering::Relaxed) > 0,
            "the queue overflowed"
        );
        assert_eq!(stats.dropped.load(Ordering::Relaxed), 0);
        assert_eq!(
            stats.written.load(Ordering::Relaxed) + stats.replayed.load(Ordering::Relaxed),
            500
        );
        let mut seen = std::collections::HashSet::new();
        let mut f = gatehouse_store::CallFilter {
            limit: 1000,
            ..Default::default()
        };
        loop {
            let page = store.list_calls(&f).await.unwrap();
            seen.extend(page.items.into_iter().map(|r| r.request_id));
            match page.next_cursor {
                Some(c) => f.before = Some(c),
                None => break,
            }
        }
        assert_eq!(seen.len(), 500);
        let _ = std::fs::remove_dir_all(dir);
    }
}
