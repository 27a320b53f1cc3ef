//! What the call log tells without being asked: anomalies the detector found, and forecasts of
//! spend and traffic with the date each budget runs out.

use axum::Json;
use gatehouse_gateway::config::Dimension;
use gatehouse_gateway::stored;
use gatehouse_store::insights::forecast;
use gatehouse_store::{AnomalyFilter, Dim, Kind};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::calls::app_ids;
use crate::handlers::resources::{readable, tenants_to_read};
use crate::view::time;
use crate::AdminState;

const HOUR: i64 = 3_600_000;

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
    let (cost, requests) =
        gatehouse_gateway::insights::hourly_history(&state.store, tenant_ids.clone(), filters, now)
            .await?;
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
        let value = match (p.each, tenant_name, &q.app) {
            (None, ..) => None,
            (Some(Dimension::Tenant), Some(t), _) => Some(t.to_owned()),
            (Some(Dimension::App), Some(t), Some(a)) => Some(format!("{t}/{a}")),
            // A counter per key or model, or per value the query did not name: no one answer.
            _ => continue,
        };
        let Some(data) = &state.data else {
            budgets.push(json!({"policy": p.name, "error": "this node serves no gateway, so it has no counters to read"}));
            continue;
        };
        let snap = data.load_full();
        match gatehouse_gateway::insights::budget(
            &state.store,
            &snap,
            &stored,
            p,
            value.as_deref(),
            horizon,
            now,
        )
        .await
        {
            Ok(list) => budgets.extend(list.into_iter().map(|b| {
                json!({
                    "policy": b.policy,
                    "value": b.value,
                    "limit": b.limit,
                    "used_usd": b.used_usd,
                    "limit_usd": b.limit_usd,
                    "resets_at": b.resets_at.map_or(Value::Null, time),
                    "projected_usd_at_reset": b.projected_usd_at_reset,
                    "runs_out_at": b.runs_out_at.map_or(Value::Null, time),
                    "method": b.method,
                })
            })),
            Err(e) => budgets.push(json!({"policy": p.name, "error": e})),
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
