//! Analytics over the per-minute rollups: time series, totals and top-N lists of requests,
//! errors, tokens, cost, latency and time-to-first-token percentiles, with any grouping and
//! filters, scoped to the tenants the caller may read.

use std::collections::BTreeMap;

use axum::Json;
use gatehouse_gateway::stored::{self, Stored};
use gatehouse_store::rollups::quantile;
use gatehouse_store::{AggRow, Aggregate, Dim, Rank};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::calls::{app_ids, parse_time};
use crate::handlers::resources::tenants_to_read;
use crate::view::time;
use crate::AdminState;

const MINUTE: i64 = 60_000;
/// Most points one series may have.
const MAX_POINTS: i64 = 10_000;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AnalyticsQuery {
    /// From (RFC 3339 or unix ms; default: 24 hours before `to`).
    pub(crate) from: Option<String>,
    /// To (default: now).
    pub(crate) to: Option<String>,
    /// Series: the bucket width, a whole number of minutes (`1m`, `5m`, `1h`, `1d`); by default
    /// one that gives at most a few hundred points.
    pub(crate) step: Option<String>,
    /// Comma-separated: tenant, app, key, model, provider, service, status.
    pub(crate) group_by: Option<String>,
    /// Top: the dimension to rank (one of `group_by`'s).
    pub(crate) by: Option<String>,
    /// Top: requests, errors, tokens or cost (default).
    pub(crate) rank: Option<String>,
    /// Top: how many (default 10).
    pub(crate) limit: Option<usize>,
    pub(crate) tenant: Option<String>,
    pub(crate) app: Option<String>,
    pub(crate) key: Option<String>,
    pub(crate) model: Option<String>,
    pub(crate) provider: Option<String>,
    pub(crate) service: Option<String>,
    /// A status class: 2xx, 4xx, 5xx.
    pub(crate) status: Option<String>,
}

/// What a query asks of the rollups, resolved against the caller's tenants.
struct Resolved {
    agg: Aggregate,
    stored: Stored,
}

async fn resolve(
    state: &AdminState,
    caller: &Caller,
    q: &AnalyticsQuery,
) -> Result<Resolved, ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant_ids = tenants_to_read(&stored, caller, q.tenant.as_deref())?;
    let now = gatehouse_store::ids::now_ms();
    let to =
        q.to.as_deref()
            .map(|v| parse_time("to", v))
            .transpose()?
            .unwrap_or(now);
    let from = q
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?
        .unwrap_or(to - 24 * 60 * MINUTE);
    if from >= to {
        return Err(ApiError::field("from", "must be before `to`"));
    }
    let mut filters = Vec::new();
    if let Some(name) = &q.app {
        let ids = app_ids(&stored, tenant_ids.as_deref(), name)?;
        if ids.len() > 1 {
            return Err(ApiError::field(
                "app",
                format!("several tenants have an app named `{name}`: add `tenant`"),
            ));
        }
        filters.extend(ids.into_iter().map(|id| (Dim::App, id)));
    }
    for (dim, v) in [
        (Dim::Key, &q.key),
        (Dim::Model, &q.model),
        (Dim::Provider, &q.provider),
        (Dim::Service, &q.service),
    ] {
        if let Some(v) = v {
            filters.push((dim, v.clone()));
        }
    }
    if let Some(s) = &q.status {
        if !["1xx", "2xx", "3xx", "4xx", "5xx"].contains(&s.as_str()) {
            return Err(ApiError::field(
                "status",
                format!("`{s}`: use a status class (2xx, 4xx, 5xx)"),
            ));
        }
        filters.push((Dim::Status, s.clone()));
    }
    let group_by = match q.group_by.as_deref() {
        None | Some("") => Vec::new(),
        Some(list) => {
            let mut dims = Vec::new();
            for part in list.split(',').map(str::trim) {
                let d: Dim = part.parse().map_err(|e| ApiError::field("group_by", e))?;
                if !dims.contains(&d) {
                    dims.push(d);
                }
            }
            dims
        }
    };
    Ok(Resolved {
        agg: Aggregate {
            from: from - from.rem_euclid(MINUTE),
            to,
            tenant_ids,
            filters,
            group_by,
            step_ms: None,
            top: None,
        },
        stored,
    })
}

fn ceil(t: i64, unit: i64) -> i64 {
    match t.rem_euclid(unit) {
        0 => t,
        r => t - r + unit,
    }
}

/// Windows longer than two days are counted in whole hours, longer than two weeks in whole
/// days, so they read hourly or daily rollups instead of every minute's.
fn whole_units(agg: &mut Aggregate) {
    let span = agg.to - agg.from;
    let unit = if span > 14 * 24 * 60 * MINUTE {
        24 * 60 * MINUTE
    } else if span > 48 * 60 * MINUTE {
        60 * MINUTE
    } else {
        return;
    };
    agg.from -= agg.from.rem_euclid(unit);
    agg.to = ceil(agg.to, unit);
}

fn step_of(q: &AnalyticsQuery, from: i64, to: i64) -> Result<i64, ApiError> {
    let step = match &q.step {
        Some(s) => {
            let d = gatehouse_gateway::config::parse_duration(s)
                .map_err(|e| ApiError::field("step", e))?;
            let ms = i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
            if ms < MINUTE || ms % MINUTE != 0 {
                return Err(ApiError::field(
                    "step",
                    format!("`{s}`: use a whole number of minutes (1m, 5m, 1h, 1d)"),
                ));
            }
            ms
        }
        None => [1, 5, 15, 60, 360, 1440]
            .into_iter()
            .map(|m| m * MINUTE)
            .find(|s| (to - from) / s <= 300)
            .unwrap_or(1440 * MINUTE),
    };
    if (to - from) / step > MAX_POINTS {
        return Err(ApiError::field(
            "step",
            format!("too fine for this window: at most {MAX_POINTS} points a series"),
        ));
    }
    Ok(step)
}

/// A group value as people read it: tenants and apps by name.
fn label(stored: &Stored, dim: Dim, v: &str) -> Value {
    if v.is_empty() {
        return Value::Null;
    }
    let name = match dim {
        Dim::Tenant => stored.tenant_names.get(v).cloned(),
        Dim::App => stored
            .rows
            .values()
            .find(|r| r.id == v)
            .map(|r| r.name.clone()),
        _ => None,
    };
    Value::from(name.unwrap_or_else(|| v.to_owned()))
}

fn group(stored: &Stored, dims: &[Dim], row: &AggRow) -> Value {
    let mut g = serde_json::Map::new();
    for (d, v) in dims.iter().zip(&row.group) {
        g.insert(d.name().to_owned(), label(stored, *d, v));
    }
    Value::Object(g)
}

fn round(x: f64) -> f64 {
    (x * 10.0).round() / 10.0
}

/// The measures of one aggregated row.
fn measures(r: &AggRow) -> Value {
    let pct = |h, q| quantile(h, q).map(round);
    json!({
        "requests": r.requests,
        "errors": r.errors,
        "error_rate": if r.requests > 0 { r.errors as f64 / r.requests as f64 } else { 0.0 },
        "input_tokens": r.input_tokens,
        "output_tokens": r.output_tokens,
        "cost_usd": r.cost_nano as f64 / 1e9,
        "latency_ms": {
            "avg": (r.requests > 0).then(|| round(r.duration_ms as f64 / r.requests as f64)),
            "p50": pct(&r.latency, 0.5),
            "p95": pct(&r.latency, 0.95),
            "p99": pct(&r.latency, 0.99),
        },
        "ttft_ms": {
            "streams": r.ttft_count,
            "p50": pct(&r.ttft, 0.5),
            "p95": pct(&r.ttft, 0.95),
            "p99": pct(&r.ttft, 0.99),
        },
    })
}

fn empty(t: i64) -> AggRow {
    AggRow {
        t: Some(t),
        group: Vec::new(),
        requests: 0,
        errors: 0,
        input_tokens: 0,
        output_tokens: 0,
        cost_nano: 0,
        duration_ms: 0,
        latency: Default::default(),
        ttft_count: 0,
        ttft: Default::default(),
    }
}

/// Series: one per group, each with a point for every step of the window (zero where nothing
/// happened).
pub(crate) async fn series(
    state: &AdminState,
    caller: &Caller,
    q: AnalyticsQuery,
) -> Result<Json<Value>, ApiError> {
    let Resolved { mut agg, stored } = resolve(state, caller, &q).await?;
    let step = step_of(&q, agg.from, agg.to)?;
    // Whole steps, so the query reads the coarsest rollups that tile them.
    agg.from -= agg.from.rem_euclid(step);
    agg.to = ceil(agg.to, step);
    agg.step_ms = Some(step);
    let rows = state.store.aggregate(&agg).await?;
    let mut groups: BTreeMap<Vec<String>, BTreeMap<i64, &AggRow>> = BTreeMap::new();
    for r in &rows {
        if let Some(t) = r.t {
            groups.entry(r.group.clone()).or_default().insert(t, r);
        }
    }
    if groups.is_empty() && agg.group_by.is_empty() {
        groups.insert(Vec::new(), BTreeMap::new());
    }
    let series: Vec<Value> = groups
        .iter()
        .map(|(g, points)| {
            let mut out = Vec::new();
            let mut t = agg.from;
            while t < agg.to {
                let zero = empty(t);
                let r = points.get(&t).copied().unwrap_or(&zero);
                let mut m = measures(r);
                m["t"] = time(t);
                out.push(m);
                t += step;
            }
            let row = AggRow {
                group: g.clone(),
                ..empty(0)
            };
            json!({"group": group(&stored, &agg.group_by, &row), "points": out})
        })
        .collect();
    Ok(Json(json!({
        "from": time(agg.from),
        "to": time(agg.to),
        "step_seconds": step / 1000,
        "group_by": agg.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "series": series,
    })))
}

/// Totals over the window, per group.
pub(crate) async fn totals(
    state: &AdminState,
    caller: &Caller,
    q: AnalyticsQuery,
) -> Result<Json<Value>, ApiError> {
    let Resolved { mut agg, stored } = resolve(state, caller, &q).await?;
    whole_units(&mut agg);
    let rows = state.store.aggregate(&agg).await?;
    let items: Vec<Value> = rows
        .iter()
        .filter(|r| !agg.group_by.is_empty() || r.requests > 0 || rows.len() == 1)
        .map(|r| {
            let mut m = measures(r);
            m["group"] = group(&stored, &agg.group_by, r);
            m
        })
        .collect();
    Ok(Json(json!({
        "from": time(agg.from),
        "to": time(agg.to),
        "group_by": agg.group_by.iter().map(|d| d.name()).collect::<Vec<_>>(),
        "items": items,
    })))
}

/// The largest groups of one dimension by a measure.
pub(crate) async fn top(
    state: &AdminState,
    caller: &Caller,
    q: AnalyticsQuery,
) -> Result<Json<Value>, ApiError> {
    let by: Dim =
        q.by.as_deref()
            .ok_or_else(|| ApiError::field("by", "name the dimension to rank, e.g. by=model"))?
            .parse()
            .map_err(|e| ApiError::field("by", e))?;
    let rank: Rank = q
        .rank
        .as_deref()
        .unwrap_or("cost")
        .parse()
        .map_err(|e| ApiError::field("rank", e))?;
    let Resolved { mut agg, stored } = resolve(state, caller, &q).await?;
    agg.group_by = vec![by];
    agg.top = Some((rank, q.limit.unwrap_or(10)));
    whole_units(&mut agg);
    let rows = state.store.aggregate(&agg).await?;
    let items: Vec<Value> = rows
        .iter()
        .map(|r| {
            let mut m = measures(r);
            m["group"] = group(&stored, &agg.group_by, r);
            m
        })
        .collect();
    Ok(Json(json!({
        "from": time(agg.from),
        "to": time(agg.to),
        "by": by.name(),
        "items": items,
    })))
}
