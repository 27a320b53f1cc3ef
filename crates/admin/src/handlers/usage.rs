//! How a policy's counters stand: "812/1000 requests this minute, $41.20 of $50 this month".
//!
//! Read from the node's limiter (Redis when the cluster shares one, so every node answers the
//! same), without charging anything.

use axum::Json;
use gatehouse_gateway::stored;
use gatehouse_policy::{self as policy, Measure};
use gatehouse_store::{Kind, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::resources::readable;
use crate::AdminState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct UsageQuery {
    /// For a policy with `each`: whose counters (a key id, `tenant/app`, a tenant or a model).
    pub(crate) value: Option<String>,
}

pub(crate) async fn usage(
    state: &AdminState,
    caller: &Caller,
    name: &str,
    q: UsageQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let row = stored
        .row(Kind::Policy, None, name)
        .filter(|r| readable(caller, r, &stored))
        .ok_or_else(|| ApiError::not_found("policy", name))?;
    caller.require(row.tenant_id.as_deref(), Role::Viewer, "policy", name)?;
    let counters = read(state, &stored, name, q.value.as_deref()).await?;
    let shared = state
        .data
        .as_ref()
        .is_some_and(|d| d.load().traffic.limiter.is_shared());
    let items: Vec<Value> = counters
        .iter()
        .map(|(label, s)| {
            let used = s.limit.saturating_sub(s.remaining);
            let (measure, used_v, limit_v): (&str, Value, Value) = match s.measure {
                Measure::Requests => ("requests", used.into(), s.limit.into()),
                Measure::Tokens(_) => ("tokens", used.into(), s.limit.into()),
                Measure::Concurrent => ("concurrent", used.into(), s.limit.into()),
                Measure::Spend => (
                    "spend_usd",
                    (used as f64 / 1e9).into(),
                    (s.limit as f64 / 1e9).into(),
                ),
            };
            json!({
                "limit": label,
                "measure": measure,
                "used": used_v,
                "of": limit_v,
                "remaining": if s.measure == Measure::Spend { Value::from(s.remaining as f64 / 1e9) } else { Value::from(s.remaining) },
                "resets_in_ms": s.reset_us / 1000,
            })
        })
        .collect();
    Ok(Json(
        json!({"policy": name, "value": q.value, "shared": shared, "items": items}),
    ))
}

/// A policy's counters as they stand (for `each` policies: `value`'s), without charging.
pub(crate) async fn read(
    state: &AdminState,
    stored: &gatehouse_gateway::stored::Stored,
    name: &str,
    value: Option<&str>,
) -> Result<Vec<(String, policy::Status)>, ApiError> {
    let Some(data) = &state.data else {
        return Err(ApiError::Conflict(
            "this node serves no gateway, so it has no counters to read".into(),
        ));
    };
    let pol = stored
        .config
        .policies
        .iter()
        .find(|p| p.name == name)
        .ok_or_else(|| ApiError::not_found("policy", name))?;
    if pol.each.is_some() && value.is_none() {
        return Err(ApiError::field(
            "value",
            "this policy counts each value apart: name one",
        ));
    }
    gatehouse_gateway::insights::counters(&data.load_full(), pol, value)
        .await
        .map_err(ApiError::Conflict)
}
