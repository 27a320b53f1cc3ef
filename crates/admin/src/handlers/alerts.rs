//! Budget alert history: which thresholds fired, when, and whether the webhook got them.

use axum::Json;
use gatehouse_gateway::stored;
use gatehouse_store::AlertFilter;
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::resources::tenants_to_read;
use crate::view::time;
use crate::AdminState;

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct AlertQuery {
    pub(crate) tenant: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
}

/// Owners read every alert; members read their tenants' alerts. Newest first.
pub(crate) async fn list(
    state: &AdminState,
    caller: &Caller,
    q: AlertQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant_ids = tenants_to_read(&stored, caller, q.tenant.as_deref())?;
    let page = state
        .store
        .list_alerts(&AlertFilter {
            tenant_ids,
            before: q.cursor,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|a| {
            json!({
                "id": a.id,
                "at": time(a.at),
                "tenant": a.tenant_id.as_ref().and_then(|t| stored.tenant_names.get(t)),
                "policy": a.policy,
                "limit": a.limit_label,
                "period": a.period,
                "threshold_percent": a.threshold,
                "used_usd": a.used as f64 / 1e9,
                "limit_usd": a.of as f64 / 1e9,
                "webhook": a.webhook,
                "status": a.status,
                "attempts": a.attempts,
                "detail": a.detail,
            })
        })
        .collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}
