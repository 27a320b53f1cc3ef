//! Prometheus metrics (served at `/metrics` on the admin listener).
//!
//! Events are counted where they happen (refusals, sheds, calls to their headers); durations,
//! time to first token, tokens and cost come from each call's record when the call ends; the
//! state of limiters, adaptive providers, targets and the call log is read when Prometheus
//! scrapes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

use crate::snapshot::Snapshot;

type Labels = Vec<(String, String)>;

/// The node's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Mutex<Registry>,
    rejections: Family<Labels, Counter>,
    shed: Family<Labels, Counter>,
    limiter_failures: Counter,
    failures_seen: AtomicU64,
    adaptive_limit: Family<Labels, Gauge<f64, std::sync::atomic::AtomicU64>>,
    adaptive_in_flight: Family<Labels, Gauge>,
    adaptive_queued: Family<Labels, Gauge>,
    target_up: Family<Labels, Gauge>,
    provider_keys: Family<Labels, Gauge>,
    requests: Family<Labels, Counter>,
    duration: Family<Labels, Histogram>,
    log_written: Counter,
    log_spilled: Counter,
    log_replayed: Counter,
    log_dropped: Counter,
    log_seen: [AtomicU64; 4],
    log_queue: Gauge,
    call_duration: Family<Labels, Histogram>,
    ttft: Family<Labels, Histogram>,
    overhead: Family<Labels, Histogram>,
    tokens: Family<Labels, Counter>,
    cost: Family<Labels, Counter<f64, AtomicU64>>,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut r = Registry::with_prefix("gatehouse");
        let rejections = Family::<Labels, Counter>::default();
        r.register(
            "limit_rejections",
            "Calls refused by a limit or budget, by code",
            rejections.clone(),
        );
        let shed = Family::<Labels, Counter>::default();
        r.register(
            "upstream_shed",
            "Calls shed by an adaptive provider whose queue was full or too slow",
            shed.clone(),
        );
        let limiter_failures = Counter::default();
        r.register(
            "limiter_backend_failures",
            "Times the limits back end (Redis) could not be reached",
            limiter_failures.clone(),
        );
        let adaptive_limit = Family::<Labels, Gauge<f64, AtomicU64>>::default();
        r.register(
            "adaptive_concurrency_limit",
            "The concurrency an adaptive provider is currently given",
            adaptive_limit.clone(),
        );
        let adaptive_in_flight = Family::<Labels, Gauge>::default();
        r.register(
            "adaptive_in_flight",
            "Calls in flight to an adaptive provider",
            adaptive_in_flight.clone(),
        );
        let adaptive_queued = Family::<Labels, Gauge>::default();
        r.register(
            "adaptive_queued",
            "Calls waiting for an adaptive provider",
            adaptive_queued.clone(),
        );
        let target_up = Family::<Labels, Gauge>::default();
        r.register(
            "target_up",
            "1 when routing would send calls to the target, 0 while it is ejected or cooling down",
            target_up.clone(),
        );
        let provider_keys = Family::<Labels, Gauge>::default();
        r.register(
            "provider_keys",
            "A provider's API keys by state: active, cooling_down (answered 429) or revoked (answered 401/403)",
            provider_keys.clone(),
        );
        let requests = Family::<Labels, Counter>::default();
        r.register(
            "requests",
            "Calls by surface, serving provider and status",
            requests.clone(),
        );
        let duration = Family::<Labels, Histogram>::new_with_constructor(
            (|| Histogram::new(exponential_buckets(0.001, 2.0, 16))) as fn() -> Histogram,
        );
        r.register(
            "request_duration_seconds",
            "Time to the response headers, by surface (a stream goes on after them)",
            duration.clone(),
        );
        let mut log = |name: &str, help: &str| {
            let c = Counter::default();
            r.register(name, help, c.clone());
            c
        };
        let log_written = log("log_records_written", "Call records written to the store");
        let log_spilled = log(
            "log_records_spilled",
            "Call records sent to the spill journal",
        );
        let log_replayed = log(
            "log_records_replayed",
            "Call records replayed from the spill journal",
        );
        let log_dropped = log("log_records_dropped", "Call records lost (must stay 0)");
        let log_queue = Gauge::default();
        r.register(
            "log_queue_depth",
            "Call records waiting to be written",
            log_queue.clone(),
        );
        // Calls: 5 ms to ~41 s; the gateway's own share: 25 µs to ~0.2 s.
        let calls = || Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let fine = || Histogram::new(exponential_buckets(0.000_025, 2.0, 14));
        let seconds = |f: fn() -> Histogram| Family::<Labels, Histogram>::new_with_constructor(f);
        let call_duration = seconds(calls);
        r.register(
            "call_duration_seconds",
            "Whole calls, streams to their last byte, by surface and serving model",
            call_duration.clone(),
        );
        let ttft = seconds(calls);
        r.register(
            "time_to_first_token_seconds",
            "Streams: time from the request to the first token, by serving model",
            ttft.clone(),
        );
        let overhead = seconds(fine);
        r.register(
            "gateway_overhead_seconds",
            "The gateway's own time in a call (total minus time waiting on upstreams)",
            overhead.clone(),
        );
        let tokens = Family::<Labels, Counter>::default();
        r.register(
            "tokens",
            "Tokens by serving model, provider and kind (input, output, cached, reasoning)",
            tokens.clone(),
        );
        let cost = Family::<Labels, Counter<f64, AtomicU64>>::default();
        r.register(
            "cost_usd",
            "Spend in US dollars at catalog prices, by serving model and provider",
            cost.clone(),
        );
        Self {
            log_queue,
            call_duration,
            ttft,
            overhead,
            tokens,
            cost,
            target_up,
            provider_keys,
            requests,
            duration,
            log_written,
            log_spilled,
            log_replayed,
            log_dropped,
            log_seen: Default::default(),
            registry: Mutex::new(r),
            rejections,
            shed,
            limiter_failures,
            failures_seen: AtomicU64::new(0),
            adaptive_limit,
            adaptive_in_flight,
            adaptive_queued,
        }
    }
}

fn label(k: &str, v: &str) -> Labels {
    vec![(k.to_owned(), v.to_owned())]
}

impl Metrics {
    pub fn rejected(&self, code: &str) {
        self.rejections.get_or_create(&label("code", code)).inc();
    }

    pub fn shed(&self, provider: &str) {
        self.shed.get_or_create(&label("provider", provider)).inc();
    }

    /// One finished call (to its response headers).
    pub fn observe(
        &self,
        surface: &str,
        (model, provider): (&str, &str),
        status: u16,
        took: std::time::Duration,
    ) {
        let labels = vec![
            ("surface".to_owned(), surface.to_owned()),
            ("model".to_owned(), model.to_owned()),
            ("provider".to_owned(), provider.to_owned()),
            ("status".to_owned(), status.to_string()),
        ];
        self.requests.get_or_create(&labels).inc();
        self.duration
            .get_or_create(&label("surface", surface))
            .observe(took.as_secs_f64());
    }

    /// A finished call's record (streams: at their end): durations, tokens and cost.
    pub fn call(&self, r: &gatehouse_store::CallRecord) {
        let model = r.model_served.as_deref().unwrap_or("-");
        let provider = r.provider.as_deref().unwrap_or("-");
        let secs = |ms: i64| ms as f64 / 1e3;
        self.call_duration
            .get_or_create(&vec![
                ("surface".to_owned(), r.surface.clone()),
                ("model".to_owned(), model.to_owned()),
            ])
            .observe(secs(r.duration_ms));
        self.overhead
            .get_or_create(&label("surface", &r.surface))
            .observe(r.overhead_us as f64 / 1e6);
        if let Some(t) = r.ttft_ms {
            self.ttft
                .get_or_create(&label("model", model))
                .observe(secs(t));
        }
        if r.model_served.is_none() {
            return;
        }
        for (kind, n) in [
            ("input", r.input_tokens),
            ("output", r.output_tokens),
            ("cached", r.cached_tokens),
            ("reasoning", r.reasoning_tokens),
        ] {
            if n > 0 {
                self.tokens
                    .get_or_create(&vec![
                        ("model".to_owned(), model.to_owned()),
                        ("provider".to_owned(), provider.to_owned()),
                        ("kind".to_owned(), kind.to_owned()),
                    ])
                    .inc_by(u64::try_from(n).unwrap_or(0));
            }
        }
        if r.cost_nano > 0 {
            self.cost
                .get_or_create(&vec![
                    ("model".to_owned(), model.to_owned()),
                    ("provider".to_owned(), provider.to_owned()),
                ])
                .inc_by(r.cost_nano as f64 / 1e9);
        }
    }

    /// The text exposition, with the current state of `snap`'s limiter and providers.
    pub fn render(&self, snap: &Snapshot) -> String {
        if let Some(log) = &snap.traffic.calls {
            self.log_queue
                .set(i64::try_from(log.queued()).unwrap_or(i64::MAX));
            let s = &log.stats;
            for (i, (now, counter)) in [
                (s.written.load(Ordering::Relaxed), &self.log_written),
                (s.spilled.load(Ordering::Relaxed), &self.log_spilled),
                (s.replayed.load(Ordering::Relaxed), &self.log_replayed),
                (s.dropped.load(Ordering::Relaxed), &self.log_dropped),
            ]
            .into_iter()
            .enumerate()
            {
                let before = self.log_seen[i].swap(now, Ordering::Relaxed);
                counter.inc_by(now.saturating_sub(before));
            }
        }
        let failures = snap.traffic.limiter.failures.load(Ordering::Relaxed);
        let before = self.failures_seen.swap(failures, Ordering::Relaxed);
        self.limiter_failures
            .inc_by(failures.saturating_sub(before));
        for (name, up) in &snap.providers {
            let keys = up.keys.report_all();
            for state in ["active", "cooling_down", "revoked"] {
                let n = keys.iter().filter(|k| k.state == state).count();
                self.provider_keys
                    .get_or_create(&vec![
                        ("provider".to_owned(), name.clone()),
                        ("state".to_owned(), state.to_owned()),
                    ])
                    .set(i64::try_from(n).unwrap_or(i64::MAX));
            }
            if let Some(a) = &up.adaptive {
                let (limit, in_flight, queued) = a.snapshot();
                let l = label("provider", name);
                self.adaptive_limit.get_or_create(&l).set(limit);
                self.adaptive_in_flight
                    .get_or_create(&l)
                    .set(i64::try_from(in_flight).unwrap_or(i64::MAX));
                self.adaptive_queued
                    .get_or_create(&l)
                    .set(i64::try_from(queued).unwrap_or(i64::MAX));
            }
        }
        for (name, m) in &snap.models {
            for t in &m.targets {
                let l = vec![
                    ("model".to_owned(), name.clone()),
                    ("provider".to_owned(), t.upstream.cfg.name.clone()),
                    ("upstream_model".to_owned(), t.model.clone()),
                ];
                self.target_up
                    .get_or_create(&l)
                    .set(i64::from(t.health.available()));
            }
        }
        let mut out = String::new();
        let registry = self
            .registry
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Err(e) = encode(&mut out, &registry) {
            tracing::warn!(error = %e, "cannot encode metrics");
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every metric the Grafana dashboard (deploy/grafana/gatehouse.json) queries is one this
    /// registry exports, under that exact name.
    #[test]
    fn the_grafana_dashboard_reads_only_exported_metrics() {
        let m = Metrics::default();
        m.rejected("rate_limit_exceeded");
        m.shed("p");
        m.observe("chat", ("m", "p"), 200, std::time::Duration::from_millis(5));
        m.call(&gatehouse_store::CallRecord {
            surface: "chat".into(),
            model_served: Some("m".into()),
            provider: Some("p".into()),
            ttft_ms: Some(3),
            input_tokens: 5,
            cost_nano: 7,
            ..Default::default()
        });
        let l = label("provider", "p");
        m.adaptive_limit.get_or_create(&l).set(4.0);
        m.adaptive_in_flight.get_or_create(&l).set(1);
        m.adaptive_queued.get_or_create(&l).set(0);
        m.target_up.get_or_create(&l).set(1);
        m.limiter_failures.inc();
        for c in [
            &m.log_written,
            &m.log_spilled,
            &m.log_replayed,
            &m.log_dropped,
        ] {
            c.inc_by(0);
        }
        let mut text = String::new();
        encode(&mut text, &m.registry.lock().unwrap()).unwrap();
        let names: std::collections::HashSet<&str> = text
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(|l| l.split(['{', ' ']).next())
            .collect();
        let dashboard = include_str!("../../../deploy/grafana/gatehouse.json");
        let mut asked = 0;
        for word in dashboard.split(|c: char| !(c.is_ascii_alphanumeric() || c == '_')) {
            if word.starts_with("gatehouse_") {
                asked += 1;
                assert!(
                    names.contains(word),
                    "the dashboard reads {word}; exported: {names:?}"
                );
            }
        }
        assert!(asked > 15);
    }
}
