//! Per-minute rollups of call records: what dashboards and the analytics API read.
//!
//! `insert_calls` adds each batch's new records to their minute's, hour's and day's rows in the
//! same transaction, so a rollup never counts a record that was not written, nor one twice.
//! Queries read the coarsest table that tiles their window, so a month is read from 30 days'
//! rows, not 43,200 minutes'. Latency and time to first token are kept as fixed histogram
//! buckets, which add up across rows and give percentiles for any grouping.

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

/// The rollup tables, finest first: one row per bucket (its start in unix ms, column
/// `minute`) and dimensions; the third field says whether the table keeps the key dimension.
/// The hourly table does not (its `key_id` is ''): keys multiply rows more than any other
/// dimension, and hour-grained views (a week by tenant or model) rarely split by key, while
/// the daily table keeps them for month-long top-keys lists.
pub(crate) const TABLES: [(&str, i64, bool); 3] = [
    ("call_rollups", 60_000, true),
    ("call_rollups_hour", 3_600_000, false),
    ("call_rollups_day", 86_400_000, true),
];

/// The coarsest table whose buckets tile `[from, to)` (and the step, if any) exactly, and
/// that keeps the key dimension when the query groups or filters by key.
pub(crate) fn table_for(from: i64, to: i64, step: Option<i64>, by_key: bool) -> &'static str {
    TABLES
        .iter()
        .rev()
        .find(|(_, w, keys)| {
            from % w == 0 && to % w == 0 && step.is_none_or(|s| s % w == 0) && (*keys || !by_key)
        })
        .map_or(TABLES[0].0, |(t, _, _)| t)
}

/// The rollup rows a set of records adds to, in buckets `width` ms wide.
pub(crate) fn of<'a>(
    records: impl Iterator<Item = &'a CallRecord>,
    width: i64,
    keys: bool,
) -> HashMap<Key, Sums> {
    let mut out: HashMap<Key, Sums> = HashMap::new();
    for r in records {
        let opt = |v: &Option<String>| v.clone().unwrap_or_default();
        let key = Key {
            minute: r.at - r.at.rem_euclid(width),
            tenant_id: opt(&r.tenant_id),
            app_id: opt(&r.app_id),
            key_id: if keys {
                r.key_id.clone()
            } else {
                String::new()
            },
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

const DIMS: &str = "minute, tenant_id, app_id, key_id, model, provider, service, status_class";
const SUMS: [&str; 7] = [
    "requests",
    "errors",
    "input_tokens",
    "output_tokens",
    "cost_nano",
    "duration_ms",
    "ttft_count",
];
/// Columns of one row: 8 dimensions, 7 sums, 12 + 12 buckets.
pub(crate) const WIDTH: usize = 8 + 7 + 2 * BUCKETS;
/// Rows per statement (SQLite takes at most 32,766 binds).
pub(crate) const ROWS: usize = 800;

/// `INSERT INTO table … VALUES (…) × rows ON CONFLICT … DO UPDATE SET col = col + excluded.col`.
pub(crate) fn upsert_sql(table: &str, rows: usize, backend: crate::Backend) -> String {
    let mut cols: Vec<String> = SUMS.iter().map(|s| (*s).to_owned()).collect();
    cols.extend((0..BUCKETS).map(|i| format!("l{i}")));
    cols.extend((0..BUCKETS).map(|i| format!("t{i}")));
    let mut sql = format!("INSERT INTO {table} ({DIMS}, {}) VALUES ", cols.join(", "));
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..WIDTH {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&crate::db::param(backend, r * WIDTH + c + 1));
        }
        sql.push(')');
    }
    let set: Vec<String> = cols
        .iter()
        .map(|c| format!("{c} = {table}.{c} + excluded.{c}"))
        .collect();
    sql.push_str(&format!(
        " ON CONFLICT ({DIMS}) DO UPDATE SET {}",
        set.join(", ")
    ));
    sql
}

/// Binds one row to an `upsert_sql` statement.
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
        .bind(s.duration_ms)
        .bind(s.ttft_count);
    for n in s.latency {
        q = q.bind(n);
    }
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

    #[test]
    fn queries_read_the_coarsest_table_that_tiles_them() {
        let (m, h, d) = (60_000, 3_600_000, 86_400_000);
        assert_eq!(table_for(0, 10 * d, None, false), "call_rollups_day");
        assert_eq!(table_for(0, 10 * d, Some(h), false), "call_rollups_hour");
        assert_eq!(table_for(h, 10 * d, None, false), "call_rollups_hour");
        assert_eq!(table_for(h, 10 * d, None, true), "call_rollups");
        assert_eq!(table_for(0, 10 * d, Some(h), true), "call_rollups");
        assert_eq!(table_for(0, 10 * d, None, true), "call_rollups_day");
        assert_eq!(table_for(0, 10 * d + m, None, false), "call_rollups");
        assert_eq!(table_for(0, d, Some(15 * m), false), "call_rollups");
    }
}
