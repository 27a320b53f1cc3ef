//! Per-minute rollups of call records: what dashboards and the analytics API read.
//!
//! `insert_calls` adds each batch's new records to their minute's row in the same transaction,
//! so a rollup never counts a record that was not written, nor one twice. Latency and time to
//! first token are kept as fixed histogram buckets, which add up across rows and give
//! percentiles for any grouping.

use std::collections::HashMap;

use crate::calls::CallRecord;

/// Upper bounds (ms) of the latency buckets; the last bucket is everything above.
pub const BUCKETS_MS: [i64; 11] = [10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000];
/// How many buckets a histogram has.
pub const BUCKETS: usize = BUCKETS_MS.len() + 1;

/// The dimensions of one rollup row (absent ones are '').
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    minute: i64,
    tenant_id: String,
    app_id: String,
    key_id: String,
    model: String,
    provider: String,
    service: String,
    status_class: String,
}

/// What a rollup row counts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Sums {
    requests: i64,
    errors: i64,
    input_tokens: i64,
    output_tokens: i64,
    cost_nano: i64,
    duration_ms: i64,
    latency: [i64; BUCKETS],
    ttft_count: i64,
    ttft: [i64; BUCKETS],
}

/// The bucket a duration falls in.
pub fn bucket(ms: i64) -> usize {
    BUCKETS_MS
        .iter()
        .position(|&b| ms <= b)
        .unwrap_or(BUCKETS_MS.len())
}

/// The `q` quantile (0..1) of a histogram, interpolated linearly inside its bucket; `None`
/// when it is empty. The open last bucket reports its lower bound.
pub fn quantile(hist: &[i64; BUCKETS], q: f64) -> Option<f64> {
    let total: i64 = hist.iter().sum();
    if total == 0 {
        return None;
    }
    let rank = q * total as f64;
    let mut seen = 0i64;
    for (i, &n) in hist.iter().enumerate() {
        if n == 0 {
            continue;
        }
        if (seen + n) as f64 >= rank {
            let lower = if i == 0 { 0 } else { BUCKETS_MS[i - 1] } as f64;
            let Some(&upper) = BUCKETS_MS.get(i) else {
                return Some(lower);
            };
            let within = ((rank - seen as f64) / n as f64).clamp(0.0, 1.0);
            return Some(lower + within * (upper as f64 - lower));
        }
        seen += n;
    }
    BUCKETS_MS.last().map(|&b| b as f64)
}

pub(crate) fn status_class(status: i64) -> String {
    format!("{}xx", (status / 100).clamp(0, 9))
}

/// The rollup rows a set of records adds to.
pub(crate) fn of<'a>(records: impl Iterator<Item = &'a CallRecord>) -> HashMap<Key, Sums> {
    let mut out: HashMap<Key, Sums> = HashMap::new();
    for r in records {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let key = Key {
            minute: r.at - r.at.rem_euclid(60_000),
            tenant_id: opt(&r.tenant_id),
            app_id: opt(&r.app_id),
            key_id: r.key_id.clone(),
            model: r.model_asked.clone(),
            provider: opt(&r.provider),
            service: opt(&r.service),
            status_class: status_class(r.status),
        };
        let s = out.entry(key).or_default();
        s.requests += 1;
        s.errors += i64::from(r.status >= 400);
        s.input_tokens += r.input_tokens;
        s.output_tokens += r.output_tokens;
        s.cost_nano += r.cost_nano;
        s.duration_ms += r.duration_ms;
        s.latency[bucket(r.duration_ms)] += 1;
        if let Some(t) = r.ttft_ms {
            s.ttft_count += 1;
            s.ttft[bucket(t)] += 1;
        }
    }
    out
}

pub(crate) const UPSERT: &str = "INSERT INTO call_rollups (minute, tenant_id, app_id, key_id, model, provider, service, status_class, requests, errors, input_tokens, output_tokens, cost_nano, duration_ms, l0, l1, l2, l3, l4, l5, l6, l7, l8, l9, l10, l11, ttft_count, t0, t1, t2, t3, t4, t5, t6, t7, t8, t9, t10, t11) \
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27, $28, $29, $30, $31, $32, $33, $34, $35, $36, $37, $38, $39) \
ON CONFLICT (minute, tenant_id, app_id, key_id, model, provider, service, status_class) DO UPDATE SET \
requests = call_rollups.requests + excluded.requests, errors = call_rollups.errors + excluded.errors, \
input_tokens = call_rollups.input_tokens + excluded.input_tokens, output_tokens = call_rollups.output_tokens + excluded.output_tokens, \
cost_nano = call_rollups.cost_nano + excluded.cost_nano, duration_ms = call_rollups.duration_ms + excluded.duration_ms, \
l0 = call_rollups.l0 + excluded.l0, l1 = call_rollups.l1 + excluded.l1, l2 = call_rollups.l2 + excluded.l2, l3 = call_rollups.l3 + excluded.l3, \
l4 = call_rollups.l4 + excluded.l4, l5 = call_rollups.l5 + excluded.l5, l6 = call_rollups.l6 + excluded.l6, l7 = call_rollups.l7 + excluded.l7, \
l8 = call_rollups.l8 + excluded.l8, l9 = call_rollups.l9 + excluded.l9, l10 = call_rollups.l10 + excluded.l10, l11 = call_rollups.l11 + excluded.l11, \
ttft_count = call_rollups.ttft_count + excluded.ttft_count, \
t0 = call_rollups.t0 + excluded.t0, t1 = call_rollups.t1 + excluded.t1, t2 = call_rollups.t2 + excluded.t2, t3 = call_rollups.t3 + excluded.t3, \
t4 = call_rollups.t4 + excluded.t4, t5 = call_rollups.t5 + excluded.t5, t6 = call_rollups.t6 + excluded.t6, t7 = call_rollups.t7 + excluded.t7, \
t8 = call_rollups.t8 + excluded.t8, t9 = call_rollups.t9 + excluded.t9, t10 = call_rollups.t10 + excluded.t10, t11 = call_rollups.t11 + excluded.t11";

/// Binds one row to `UPSERT`.
pub(crate) fn bind<'q, DB>(
    mut q: sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>,
    k: &'q Key,
    s: &Sums,
) -> sqlx::query::Query<'q, DB, <DB as sqlx::Database>::Arguments<'q>>
where
    DB: sqlx::Database,
    i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    q = q
        .bind(k.minute)
        .bind(k.tenant_id.as_str())
        .bind(k.app_id.as_str())
        .bind(k.key_id.as_str())
        .bind(k.model.as_str())
        .bind(k.provider.as_str())
        .bind(k.service.as_str())
        .bind(k.status_class.as_str())
        .bind(s.requests)
        .bind(s.errors)
        .bind(s.input_tokens)
        .bind(s.output_tokens)
        .bind(s.cost_nano)
        .bind(s.duration_ms);
    for n in s.latency {
        q = q.bind(n);
    }
    q = q.bind(s.ttft_count);
    for n in s.ttft {
        q = q.bind(n);
    }
    q
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_and_quantiles() {
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(10), 0);
        assert_eq!(bucket(11), 1);
        assert_eq!(bucket(30_001), 11);
        let mut h = [0i64; BUCKETS];
        assert_eq!(quantile(&h, 0.5), None);
        // 100 calls between 100 and 250 ms: the median is half-way through that bucket.
        h[4] = 100;
        assert_eq!(quantile(&h, 0.5), Some(175.0));
        h[11] = 1;
        assert_eq!(quantile(&h, 1.0), Some(30_000.0));
    }
}
