//! Aggregate queries over the per-minute rollups: series, totals and top-N, for any grouping.

use crate::db::{on, DbRow};
use crate::query::Query;
use crate::resources::{bind_all, Bind};
use crate::rollups::BUCKETS;
use crate::{Store, StoreError};

/// What rollups can be grouped and filtered by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Dim {
    Tenant,
    App,
    Key,
    Model,
    Provider,
    Service,
    Status,
}

impl Dim {
    fn column(self) -> &'static str {
        match self {
            Self::Tenant => "tenant_id",
            Self::App => "app_id",
            Self::Key => "key_id",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Service => "service",
            Self::Status => "status_class",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::App => "app",
            Self::Key => "key",
            Self::Model => "model",
            Self::Provider => "provider",
            Self::Service => "service",
            Self::Status => "status",
        }
    }
}

impl std::str::FromStr for Dim {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "tenant" => Self::Tenant,
            "app" => Self::App,
            "key" => Self::Key,
            "model" => Self::Model,
            "provider" => Self::Provider,
            "service" => Self::Service,
            "status" => Self::Status,
            _ => {
                return Err(format!(
                    "`{s}` is not a dimension: use tenant, app, key, model, provider, service or status"
                ))
            }
        })
    }
}

/// What top-N lists rank by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rank {
    Requests,
    Errors,
    Tokens,
    Cost,
}

impl std::str::FromStr for Rank {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Ok(match s {
            "requests" => Self::Requests,
            "errors" => Self::Errors,
            "tokens" => Self::Tokens,
            "cost" => Self::Cost,
            _ => {
                return Err(format!(
                    "`{s}` cannot rank: use requests, errors, tokens or cost"
                ))
            }
        })
    }
}

/// Which rollups to aggregate, and how.
#[derive(Debug, Clone, Default)]
pub struct Aggregate {
    /// `minute >= from` (unix ms).
    pub from: i64,
    /// `minute < to` (unix ms).
    pub to: i64,
    /// Tenants the caller may read (`None`: all).
    pub tenant_ids: Option<Vec<String>>,
    /// Equality filters.
    pub filters: Vec<(Dim, String)>,
    pub group_by: Vec<Dim>,
    /// Time buckets of this width (ms, a multiple of a minute); `None`: one total.
    pub step_ms: Option<i64>,
    /// Keep only the first `n` groups by this measure, largest first.
    pub top: Option<(Rank, usize)>,
}

/// One aggregated row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AggRow {
    /// The bucket's start (with a step).
    pub t: Option<i64>,
    /// The group's values, in `group_by` order.
    pub group: Vec<String>,
    pub requests: i64,
    pub errors: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cost_nano: i64,
    pub duration_ms: i64,
    pub latency: [i64; BUCKETS],
    pub ttft_count: i64,
    pub ttft: [i64; BUCKETS],
}

impl Store {
    /// Sums rollups over a window, by time bucket and group.
    pub async fn aggregate(&self, a: &Aggregate) -> Result<Vec<AggRow>, StoreError> {
        let mut select = Vec::new();
        if let Some(step) = a.step_ms {
            // The step is ours (validated upstream), not the caller's text.
            select.push(format!("(minute / {step}) * {step} AS t"));
        }
        for (i, d) in a.group_by.iter().enumerate() {
            select.push(format!("{} AS g{i}", d.column()));
        }
        let mut sums = vec![
            "requests",
            "errors",
            "input_tokens",
            "output_tokens",
            "cost_nano",
            "duration_ms",
            "ttft_count",
        ]
        .into_iter()
        .map(str::to_owned)
        .collect::<Vec<_>>();
        sums.extend((0..BUCKETS).map(|i| format!("l{i}")));
        sums.extend((0..BUCKETS).map(|i| format!("t{i}")));
        for s in &sums {
            select.push(format!("CAST(SUM({s}) AS BIGINT) AS {s}"));
        }
        let by_key =
            a.group_by.contains(&Dim::Key) || a.filters.iter().any(|(d, _)| *d == Dim::Key);
        let table = crate::rollups::table_for(a.from, a.to, a.step_ms, by_key);
        let mut q = Query::new(&format!("SELECT {} FROM {table}", select.join(", ")));
        q.compare_int("minute", ">=", a.from);
        q.compare_int("minute", "<", a.to);
        if let Some(ids) = &a.tenant_ids {
            q.any_of("tenant_id", ids);
        }
        for (d, v) in &a.filters {
            q.compare(d.column(), "=", v);
        }
        let mut group: Vec<String> = Vec::new();
        if a.step_ms.is_some() {
            group.push("t".into());
        }
        group.extend((0..a.group_by.len()).map(|i| format!("g{i}")));
        if !group.is_empty() {
            q.sql.push_str(&format!(" GROUP BY {}", group.join(", ")));
        }
        match a.top {
            Some((rank, n)) => {
                let by = match rank {
                    Rank::Requests => "requests",
                    Rank::Errors => "errors",
                    Rank::Tokens => "input_tokens + output_tokens",
                    Rank::Cost => "cost_nano",
                };
                let n = i64::try_from(n.clamp(1, 1000)).unwrap_or(1000);
                let p = q.binds.len() + 1;
                q.binds.push(Bind::Int(n));
                q.sql.push_str(&format!(" ORDER BY {by} DESC LIMIT ${p}"));
            }
            None if a.step_ms.is_some() => q.sql.push_str(" ORDER BY t"),
            None => {}
        }
        let width = a.group_by.len();
        let has_t = a.step_ms.is_some();
        on!(self, pool => {
            let rows = bind_all!(sqlx::query(&q.sql), &q.binds).fetch_all(pool).await?;
            rows.iter().map(|r| row(r, has_t, width)).collect()
        })
    }

    /// Deletes rollups (of every resolution) whose bucket ends before `before`, an hour of
    /// them at a time.
    pub async fn prune_rollups(&self, before: i64) -> Result<u64, StoreError> {
        let mut gone = 0;
        for (table, width, _) in crate::rollups::TABLES {
            let before = before - width;
            loop {
                let oldest: Option<i64> = on!(self, pool => {
                    sqlx::query_scalar(&format!("SELECT MIN(minute) FROM {table}"))
                        .fetch_one(pool)
                        .await?
                });
                let Some(oldest) = oldest.filter(|&o| o <= before) else {
                    break;
                };
                let upto = (oldest + 3_600_000).min(before + 1);
                gone += on!(self, pool => {
                    sqlx::query(&format!("DELETE FROM {table} WHERE minute < $1"))
                        .bind(upto)
                        .execute(pool)
                        .await?
                        .rows_affected()
                });
                tokio::task::yield_now().await;
            }
        }
        Ok(gone)
    }
}

fn row(r: &impl DbRow, has_t: bool, width: usize) -> Result<AggRow, StoreError> {
    // SUM over no rows is NULL (a total over an empty window).
    let n = |c: &str| -> Result<i64, StoreError> { Ok(r.opt_int(c)?.unwrap_or(0)) };
    let mut latency = [0; BUCKETS];
    let mut ttft = [0; BUCKETS];
    for i in 0..BUCKETS {
        latency[i] = n(&format!("l{i}"))?;
        ttft[i] = n(&format!("t{i}"))?;
    }
    Ok(AggRow {
        t: if has_t { Some(r.int("t")?) } else { None },
        group: (0..width)
            .map(|i| r.text(&format!("g{i}")))
            .collect::<Result<_, _>>()?,
        requests: n("requests")?,
        errors: n("errors")?,
        input_tokens: n("input_tokens")?,
        output_tokens: n("output_tokens")?,
        cost_nano: n("cost_nano")?,
        duration_ms: n("duration_ms")?,
        latency,
        ttft_count: n("ttft_count")?,
        ttft,
    })
}
