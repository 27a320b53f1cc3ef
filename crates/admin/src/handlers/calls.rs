//! The call log: every call's record, newest first, scoped to the caller's tenants.

use axum::Json;
use gatehouse_gateway::stored;
use gatehouse_store::CallFilter;
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
pub(crate) struct CallQuery {
    pub(crate) tenant: Option<String>,
    /// The model name clients sent.
    pub(crate) model: Option<String>,
    /// A key's id (`gatehouse_<id>`) or a config key's name.
    pub(crate) key: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
}

/// Owners read every record (the file's static keys' included); members their tenants'.
pub(crate) async fn list(
    state: &AdminState,
    caller: &Caller,
    q: CallQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant_ids = tenants_to_read(&stored, caller, q.tenant.as_deref())?;
    let page = state
        .store
        .list_calls(&CallFilter {
            tenant_ids,
            model: q.model,
            key_id: q.key,
            before: q.cursor,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|r| {
            let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
            v["at"] = time(r.at);
            v["tenant"] = r
                .tenant_id
                .as_ref()
                .and_then(|t| stored.tenant_names.get(t))
                .map_or(Value::Null, |n| Value::from(n.clone()));
            v["cost_usd"] = Value::from(r.cost_nano as f64 / 1e9);
            v
        })
        .collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}
