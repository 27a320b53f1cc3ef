//! The health of every target, as routing sees it (owner only: it spans the install).

use axum::Json;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::AdminState;

pub(crate) async fn targets(state: &AdminState, caller: &Caller) -> Result<Json<Value>, ApiError> {
    caller.require_owner()?;
    let Some(data) = &state.data else {
        return Err(ApiError::Conflict(
            "this node serves no gateway, so it has no targets".into(),
        ));
    };
    let snap = data.load_full();
    let mut names: Vec<&String> = snap.models.keys().collect();
    names.sort();
    let items: Vec<Value> = names
        .into_iter()
        .flat_map(|name| {
            snap.models[name].targets.iter().map(move |t| {
                json!({
                    "model": name,
                    "provider": t.upstream.cfg.name,
                    "upstream_model": t.model,
                    "tier": t.tier,
                    "weight": t.weight,
                    "health": t.health.report(),
                    "keys": t.upstream.keys.report_all(),
                    "adaptive": t.upstream.adaptive.as_ref().map(|a| {
                        let (limit, in_flight, queued) = a.snapshot();
                        json!({"limit": limit, "in_flight": in_flight, "queued": queued})
                    }),
                })
            })
        })
        .collect();
    Ok(Json(json!({ "items": items })))
}
