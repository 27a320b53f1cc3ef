//! What the call log tells without being asked: anomalies the detector found, and forecasts of
//! spend and traffic with the date each budget runs out.

use axum::Json;
use gatehouse_gateway::config::{Dimension, RawPolicy};
use gatehouse_gateway::stored::{self, Stored};
use gatehouse_policy::Measure;
use gatehouse_store::insights::forecast;
use gatehouse_store::{Aggregate, AnomalyFilter, Dim, Kind};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::calls::app_ids;
use crate::handlers::resources::{readable, tenant_id, tenants_to_read};
use crate::view::time;
use crate::AdminState;

const HOUR: i64 = 3_600_000;
/// Hourly history a forecast reads.
const HISTORY_HOURS: i64 = 28 * 24;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AnomalyQuery {
    pub(crate) tenant: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
}

/// Findings, newest first: owners read all; members their tenants'.
pub(crate) async fn anomalies(
    state: &AdminState,
    caller: &Caller,
    q: AnomalyQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant_ids = tenants_to_read(&stored, caller, q.tenant.as_deref())?;
    let page = state
        .store
        .list_anomalies(&AnomalyFilter {
            tenant_ids,
            before: q.cursor,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|a| {
            let name = match a.dimension.as_str() {
                "tenant" => stored.tenant_names.get(&a.value).cloned(),
                "app" => stored
                    .rows
                    .values()
                    .find(|r| r.id == a.value)
                    .map(|r| r.name.clone()),
                _ => None,
            };
            json!({
                "id": a.id,
                "at": time(a.at),
                "window_start": time(a.window_start),
                "window_end": time(a.window_end),
                "dimension": a.dimension,
                "value": name.unwrap_or_else(|| a.value.clone()),
                "tenant": a.tenant_id.as_ref().and_then(|t| stored.tenant_names.get(t)),
                "metric": a.metric,
                "observed": a.observed,
                "baseline": a.baseline,
                "ratio": if a.baseline > 0.0 { Value::from(a.observed / a.baseline) } else { Value::Null },
                "score": a.score,
                "method": a.method,
                "action": a.action,
                "delivery": a.delivery,
            })
        })
        .collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ForecastQuery {
    pub(crate) tenant: Option<String>,
    /// An app of `tenant`.
    pub(crate) app: Option<String>,
    /// How far ahead, in whole hours (default `7d`, at most `90d`).
    pub(crate) horizon: Option<String>,
}

/// Hourly cost (nano-USD) and requests of a scope over the history window, from its first hour
/// with traffic to the last complete hour.
async fn history(
    state: &AdminState,
    tenant_ids: Option<Vec<String>>,
    filters: Vec<(Dim, String)>,
    now: i64,
) -> Result<(Vec<f64>, Vec<f64>), ApiError> {
    let end = now - now.rem_euclid(HOUR);
    let rows = state
        .store
        .aggregate(&Aggregate {
            from: end - HISTORY_HOURS * HOUR,
            to: end,
            tenant_ids,
            filters,
            step_ms: Some(HOUR),
            ..Aggregate::default()
        })
        .await?;
    let Some(first) = rows.iter().filter_map(|r| r.t).min() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let hours = usize::try_from((end - first) / HOUR).unwrap_or(0);
    let (mut cost, mut requests) = (vec![0.0; hours], vec![0.0; hours]);
    for r in &rows {
        if let Some(i) =
            r.t.and_then(|t| usize::try_from((t - first) / HOUR).ok())
                .filter(|i| *i < hours)
        {
            cost[i] += r.cost_nano as f64;
            requests[i] += r.requests as f64;
        }
    }
    Ok((cost, requests))
}

/// The rollup filters of a policy's scope (with the counted value of an `each` policy).
fn policy_filters(
    stored: &Stored,
    p: &RawPolicy,
    each: Option<(&str, &str)>,
) -> Option<Vec<(Dim, String)>> {
    let mut f = Vec::new();
    let scope = &p.applies_to;
    let tenant = scope.tenant.as_deref().or(p.tenant.as_deref());
    if let Some(t) = tenant {
        f.push((Dim::Tenant, tenant_id(stored, t)?));
    }
    if let Some(a) = &scope.app {
        let t = tenant?;
        let row = stored
            .rows
            .get(&gatehouse_gateway::stored::row_key(Kind::App, Some(t), a))?;
        f.push((Dim::App, row.id.clone()));
    }
    if let Some(k) = &scope.key {
        let id = if stored.keys.iter().any(|x| &x.key.id == k) {
            format!("{}{k}", gatehouse_store::KEY_PREFIX)
        } else {
            k.clone()
        };
        f.push((Dim::Key, id));
    }
    if let Some(m) = &scope.model {
        f.push((Dim::Model, m.clone()));
    }
    if let Some(s) = &scope.service {
        f.push((Dim::Service, s.clone()));
    }
    match each {
        Some(("tenant", t)) => f.push((Dim::Tenant, tenant_id(stored, t)?)),
        Some(("app", ta)) => {
            let (t, a) = ta.split_once('/')?;
            let row =
                stored
                    .rows
                    .get(&gatehouse_gateway::stored::row_key(Kind::App, Some(t), a))?;
            f.push((Dim::App, row.id.clone()));
        }
        _ => {}
    }
    Some(f)
}

/// Spend and traffic forecast for the caller's scope (a tenant, an app, or everything it may
/// read), and for every spend budget that applies to it, when it runs out at the forecast pace.
pub(crate) async fn forecasts(
    state: &AdminState,
    caller: &Caller,
    q: ForecastQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant_ids = tenants_to_read(&stored, caller, q.tenant.as_deref())?;
    let horizon_h = match &q.horizon {
        None => 7 * 24,
        Some(h) => {
            let d = gatehouse_gateway::config::parse_duration(h)
                .map_err(|e| ApiError::field("horizon", e))?;
            let hours = i64::try_from(d.as_secs() / 3600).unwrap_or(i64::MAX);
            if !(1..=90 * 24).contains(&hours) {
                return Err(ApiError::field("horizon", "between 1h and 90d"));
            }
            hours
        }
    };
    let mut filters = Vec::new();
    if let Some(app) = &q.app {
        if q.tenant.is_none() {
            return Err(ApiError::field("app", "name the app's tenant too"));
        }
        for id in app_ids(&stored, tenant_ids.as_deref(), app)? {
            filters.push((Dim::App, id));
        }
    }
    let now = gatehouse_store::ids::now_ms();
    let start = now - now.rem_euclid(HOUR) + HOUR;
    let horizon = usize::try_from(horizon_h).unwrap_or(168);
    let (cost, requests) = history(state, tenant_ids.clone(), filters, now).await?;
    let fc = forecast(&cost, horizon);
    let fr = forecast(&requests, horizon);
    let hourly: Vec<Value> = (0..horizon)
        .map(|i| {
            json!({
                "t": time(start + i64::try_from(i).unwrap_or(0) * HOUR),
                "cost_usd": fc.values[i] / 1e9,
                "requests": fr.values[i].round(),
            })
        })
        .collect();

    // The spend budgets that apply to this scope.
    let mut budgets = Vec::new();
    let tenant_name = q.tenant.as_deref();
    for p in &stored.config.policies {
        let Some(row) = stored.row(Kind::Policy, None, &p.name) else {
            continue;
        };
        if !readable(caller, row, &stored) || !p.limits.iter().any(|l| l.spend_usd.is_some()) {
            continue;
        }
        let scope_tenant = p.applies_to.tenant.as_deref().or(p.tenant.as_deref());
        if tenant_name.is_some() && scope_tenant.is_some() && scope_tenant != tenant_name {
            continue;
        }
        let each = match (p.each, tenant_name, &q.app) {
            (None, ..) => None,
            (Some(Dimension::Tenant), Some(t), _) => Some(("tenant", t.to_owned())),
            (Some(Dimension::App), Some(t), Some(a)) => Some(("app", format!("{t}/{a}"))),
            // A counter per key or model, or per value the query did not name: no one answer.
            _ => continue,
        };
        let each_ref = each.as_ref().map(|(d, v)| (*d, v.as_str()));
        let Some(pf) = policy_filters(&stored, p, each_ref) else {
            continue;
        };
        let counters =
            match crate::handlers::usage::read(state, &stored, &p.name, each_ref.map(|(_, v)| v))
                .await
            {
                Ok(c) => c,
                Err(e) => {
                    budgets.push(json!({"policy": p.name, "error": e.to_string()}));
                    continue;
                }
            };
        let (pc, _) = history(state, None, pf, now).await?;
        let pace = forecast(&pc, horizon);
        for (label, s) in counters.iter().filter(|(_, s)| s.measure == Measure::Spend) {
            let used = s.limit.saturating_sub(s.remaining) as f64;
            // A lifetime budget never resets (its counter reports no reset time).
            let resets_at = (s.reset_us > 0).then(|| now + s.reset_us / 1000);
            let left = s.remaining as f64;
            let mut spent = 0.0;
            let mut runs_out = None;
            for (i, v) in pace.values.iter().enumerate() {
                let t = start + i64::try_from(i).unwrap_or(0) * HOUR;
                if resets_at.is_some_and(|r| t > r) {
                    break;
                }
                spent += v;
                if runs_out.is_none() && spent >= left {
                    runs_out = Some(t);
                }
            }
            let within = resets_at.is_some_and(|r| r <= start + horizon_h * HOUR);
            budgets.push(json!({
                "policy": p.name,
                "value": each.as_ref().map(|(_, v)| v),
                "limit": label,
                "used_usd": used / 1e9,
                "limit_usd": s.limit as f64 / 1e9,
                "resets_at": resets_at.map_or(Value::Null, time),
                "projected_usd_at_reset": if within { Value::from((used + spent) / 1e9) } else { Value::Null },
                "runs_out_at": runs_out.map_or(Value::Null, time),
                "method": pace.method,
            }));
        }
    }
    Ok(Json(json!({
        "tenant": q.tenant,
        "app": q.app,
        "history_hours": cost.len(),
        "method": fc.method,
        "horizon_hours": horizon_h,
        "total": {
            "cost_usd": fc.values.iter().sum::<f64>() / 1e9,
            "requests": fr.values.iter().sum::<f64>().round(),
        },
        "hourly": hourly,
        "budgets": budgets,
    })))
}
