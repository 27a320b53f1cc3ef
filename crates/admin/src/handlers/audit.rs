//! The audit log: every admin change, newest first, filtered by tenant.

use axum::Json;
use gatehouse_gateway::stored;
use gatehouse_store::{AuditEntry, AuditFilter};
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
pub(crate) struct AuditQuery {
    pub(crate) tenant: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
}

fn entry_json(e: &AuditEntry, tenant: Option<&String>) -> Value {
    json!({
        "id": e.id,
        "at": time(e.at),
        "actor": e.actor,
        "tenant": tenant,
        "action": e.action,
        "resource": {"kind": e.resource_kind, "id": e.resource_id, "name": e.resource_name},
        "before": e.before,
        "after": e.after,
    })
}

/// Owners read everything (or one tenant's entries); members read their tenants' entries.
pub(crate) async fn list(
    state: &AdminState,
    caller: &Caller,
    q: AuditQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant_ids = tenants_to_read(&stored, caller, q.tenant.as_deref())?;
    let page = state
        .store
        .list_audit(&AuditFilter {
            tenant_ids,
            before: q.cursor,
            limit: q.limit.unwrap_or(50),
        })
        .await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|e| {
            entry_json(
                e,
                e.tenant_id
                    .as_ref()
                    .and_then(|t| stored.tenant_names.get(t)),
            )
        })
        .collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}
