//! API keys of an app: issue (shown once), list, revoke, rotate with an overlap.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_gateway::config::parse_duration;
use gatehouse_gateway::stored::{self, Stored};
use gatehouse_store::{ApiKey, Kind, Resource, Role, KEY_PREFIX};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::resources::tenant_id;
use crate::view::{opt_time, time};
use crate::AdminState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewKey {
    pub(crate) name: String,
    /// Services or models the key is limited to.
    #[serde(default)]
    pub(crate) scopes: Vec<String>,
    /// How long the key lives, e.g. `30d`, `12h` (default: until revoked).
    pub(crate) expires_in: Option<String>,
    /// Higher leaves an overloaded provider's queue first (default 0); setting one takes a
    /// tenant admin.
    #[serde(default)]
    pub(crate) priority: i64,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Rotate {
    /// How long the old key keeps working, e.g. `1h` (default `24h`; `0s` ends it now).
    pub(crate) overlap: Option<String>,
}

/// A duration (`500ms` … `30d`) as milliseconds.
pub(crate) fn millis(field: &str, s: &str) -> Result<i64, ApiError> {
    let d = parse_duration(s).map_err(|e| ApiError::field(field, e))?;
    i64::try_from(d.as_millis()).map_err(|_| ApiError::field(field, "too long"))
}

pub(crate) fn key_json(k: &ApiKey) -> Value {
    let now = gatehouse_store::ids::now_ms();
    let status = if k.revoked_at.is_some() {
        "revoked"
    } else if k.expires_at.is_some_and(|e| e <= now) {
        "expired"
    } else {
        "active"
    };
    json!({
        "id": k.id,
        "hint": format!("{KEY_PREFIX}{}_…", k.id),
        "name": k.name,
        "scopes": k.scopes,
        "priority": k.priority,
        "status": status,
        "created_at": time(k.created_at),
        "expires_at": opt_time(k.expires_at),
        "revoked_at": opt_time(k.revoked_at),
    })
}

/// The app at `/tenants/{tenant}/apps/{app}`, if the caller has `min` in its tenant.
pub(crate) async fn app(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app: &str,
    min: Role,
) -> Result<(Resource, Stored), ApiError> {
    let stored = stored::load(&state.store).await?;
    let tid = tenant_id(&stored, tenant).ok_or_else(|| ApiError::not_found("tenant", tenant))?;
    caller.require(Some(&tid), Role::Viewer, "tenant", tenant)?;
    let r = stored
        .row(Kind::App, Some(tenant), app)
        .cloned()
        .ok_or_else(|| ApiError::not_found("app", app))?;
    caller.require(Some(&tid), min, "app", app)?;
    Ok((r, stored))
}

pub(crate) async fn list(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app_name: &str,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = app(state, caller, tenant, app_name, Role::Viewer).await?;
    let keys = state.store.keys_of(&app.id).await?;
    Ok(Json(
        json!({"items": keys.iter().map(key_json).collect::<Vec<_>>()}),
    ))
}

pub(crate) async fn create(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app_name: &str,
    body: NewKey,
) -> Result<Response, ApiError> {
    let (app, stored) = app(state, caller, tenant, app_name, Role::Developer).await?;
    if body.priority != 0 {
        caller.require(app.tenant_id.as_deref(), Role::Admin, "app", app_name)?;
    }
    if body.name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    for (i, s) in body.scopes.iter().enumerate() {
        let known = stored.config.models.iter().any(|m| &m.name == s)
            || stored.config.services.iter().any(|v| &v.name == s)
            || s.contains('/');
        if !known {
            return Err(ApiError::field(
                &format!("scopes[{i}]"),
                format!("no service or model named {s:?}"),
            ));
        }
    }
    let expires_at = body
        .expires_in
        .as_deref()
        .map(|s| {
            millis("expires_in", s).map(|ms| gatehouse_store::ids::now_ms().saturating_add(ms))
        })
        .transpose()?;
    let (key, secret) = state
        .store
        .create_key(
            &app,
            body.name.trim(),
            body.scopes,
            expires_at,
            body.priority,
            &caller.actor(),
        )
        .await?;
    let mut v = key_json(&key);
    v["key"] = Value::from(secret);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub(crate) async fn get(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app_name: &str,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = app(state, caller, tenant, app_name, Role::Viewer).await?;
    Ok(Json(key_json(&state.store.key_by_id(&app.id, id).await?)))
}

pub(crate) async fn revoke(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app_name: &str,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    let (app, _) = app(state, caller, tenant, app_name, Role::Developer).await?;
    let key = state.store.revoke_key(&app.id, id, &caller.actor()).await?;
    Ok(Json(key_json(&key)))
}

pub(crate) async fn rotate(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app_name: &str,
    id: &str,
    body: Rotate,
) -> Result<Response, ApiError> {
    let (app, _) = app(state, caller, tenant, app_name, Role::Developer).await?;
    let overlap = millis("overlap", body.overlap.as_deref().unwrap_or("24h"))?;
    let (key, secret) = state
        .store
        .rotate_key(&app, id, overlap, &caller.actor())
        .await?;
    let mut v = key_json(&key);
    v["key"] = Value::from(secret);
    v["replaces"] = Value::from(id);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}
