//! Subscriptions: an app asks for a service; the service's owner approves, rejects or revokes.
//!
//! The consumer side (developers of the app's tenant) asks and may cancel (revoke); the provider
//! side (admins of the service's tenant, or the owner for the install's services) decides. Both
//! sides can read the subscription; nobody else learns it exists.

use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_gateway::stored::{self, Stored};
use gatehouse_store::{Kind, Role, SubState, Subscription, SubscriptionFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::keys::app;
use crate::handlers::resources::{etag, if_match, readable};
use crate::view::time;
use crate::AdminState;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Ask {
    pub(crate) service: String,
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Decision {
    pub(crate) reason: Option<String>,
}

#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct SubQuery {
    pub(crate) state: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
}

fn sub_json(s: &Subscription, stored: &Stored) -> Value {
    let name = |id: &Option<String>| {
        id.as_ref()
            .and_then(|i| stored.tenant_names.get(i))
            .cloned()
            .map_or(Value::Null, Value::from)
    };
    json!({
        "id": s.id,
        "app": s.app_name,
        "app_tenant": name(&Some(s.app_tenant_id.clone())),
        "service": s.service_name,
        "service_tenant": name(&s.service_tenant_id),
        "state": s.state,
        "requested_by": s.requested_by,
        "decided_by": s.decided_by,
        "reason": s.reason,
        "revision": s.revision,
        "created_at": time(s.created_at),
        "updated_at": time(s.updated_at),
    })
}

fn with_etag(s: &Subscription, stored: &Stored, status: StatusCode) -> Response {
    let mut resp = (status, Json(sub_json(s, stored))).into_response();
    resp.headers_mut().insert(header::ETAG, etag(s.revision));
    resp
}

pub(crate) async fn ask(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app_name: &str,
    body: Ask,
) -> Result<Response, ApiError> {
    let (app, stored) = app(state, caller, tenant, app_name, Role::Developer).await?;
    let svc_row = stored
        .row(Kind::Service, None, &body.service)
        .filter(|r| readable(caller, r, &stored) || r.tenant_id == app.tenant_id)
        .cloned()
        .ok_or_else(|| {
            ApiError::field(
                "service",
                format!("no service named {:?} in your catalog", body.service),
            )
        })?;
    let Some(svc) = stored
        .config
        .services
        .iter()
        .find(|s| s.name == body.service)
    else {
        return Err(ApiError::not_found("service", &body.service));
    };
    let same_tenant = svc_row.tenant_id == app.tenant_id;
    if !same_tenant
        && svc.tenant.is_some()
        && svc.visibility != gatehouse_gateway::config::Visibility::Shared
    {
        return Err(ApiError::field(
            "service",
            format!("no service named {:?} in your catalog", body.service),
        ));
    }
    if svc.state != gatehouse_gateway::config::Lifecycle::Published {
        return Err(ApiError::Conflict(format!(
            "service `{}` is not published; only published services take new subscriptions",
            svc.name
        )));
    }
    let sub = state
        .store
        .subscribe(&app, &svc_row, svc.requires_approval, &caller.actor())
        .await?;
    Ok(with_etag(&sub, &stored, StatusCode::CREATED))
}

pub(crate) async fn of_app(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    app_name: &str,
) -> Result<Json<Value>, ApiError> {
    let (app, stored) = app(state, caller, tenant, app_name, Role::Viewer).await?;
    let page = state
        .store
        .list_subscriptions(&SubscriptionFilter {
            app_id: Some(app.id.clone()),
            limit: 1000,
            ..SubscriptionFilter::default()
        })
        .await?;
    let items: Vec<Value> = page.items.iter().map(|s| sub_json(s, &stored)).collect();
    Ok(Json(json!({ "items": items })))
}

/// Subscriptions the caller can see: their tenants' apps', and those to their tenants' services.
pub(crate) async fn list(
    state: &AdminState,
    caller: &Caller,
    q: SubQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let state_filter = match q.state.as_deref() {
        None => None,
        Some(s) => Some(SubState::parse(s).ok_or_else(|| {
            ApiError::field("state", "must be pending, approved, rejected or revoked")
        })?),
    };
    let mut filter = SubscriptionFilter {
        state: state_filter,
        after: q.cursor,
        limit: q.limit.unwrap_or(50),
        ..SubscriptionFilter::default()
    };
    if let Some(tenants) = caller.tenant_ids() {
        filter.service_tenants = Some(tenants.iter().cloned().map(Some).collect());
        filter.app_tenants = Some(tenants);
    }
    let page = state.store.list_subscriptions(&filter).await?;
    let items: Vec<Value> = page.items.iter().map(|s| sub_json(s, &stored)).collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

/// A subscription, if the caller is on either side of it.
async fn visible(
    state: &AdminState,
    caller: &Caller,
    id: &str,
) -> Result<(Subscription, Stored), ApiError> {
    let stored = stored::load(&state.store).await?;
    let sub = state.store.subscription(id).await?;
    let consumer = caller.sees(Some(&sub.app_tenant_id));
    let provider = caller.sees(sub.service_tenant_id.as_deref());
    if !(consumer || provider) {
        return Err(ApiError::not_found("subscription", id));
    }
    Ok((sub, stored))
}

pub(crate) async fn get(
    state: &AdminState,
    caller: &Caller,
    id: &str,
) -> Result<Response, ApiError> {
    let (sub, stored) = visible(state, caller, id).await?;
    Ok(with_etag(&sub, &stored, StatusCode::OK))
}

pub(crate) async fn decide(
    state: &AdminState,
    caller: &Caller,
    id: &str,
    to: SubState,
    headers: &HeaderMap,
    body: Decision,
) -> Result<Response, ApiError> {
    let (sub, stored) = visible(state, caller, id).await?;
    let expected = if_match(headers)?;
    let approver = caller
        .require(
            sub.service_tenant_id.as_deref(),
            Role::Admin,
            "subscription",
            id,
        )
        .is_ok();
    let consumer_cancels = to == SubState::Revoked
        && caller
            .require(
                Some(&sub.app_tenant_id),
                Role::Developer,
                "subscription",
                id,
            )
            .is_ok();
    if !(approver || consumer_cancels) {
        return Err(ApiError::Forbidden(match sub.service_tenant_id {
            Some(_) => format!(
                "only an admin of the tenant that owns service `{}` may decide this subscription",
                sub.service_name
            ),
            None => format!(
                "only the install's owner may decide subscriptions to service `{}`",
                sub.service_name
            ),
        }));
    }
    let done = state
        .store
        .decide(id, to, expected, body.reason.as_deref(), &caller.actor())
        .await?;
    Ok(with_etag(&done, &stored, StatusCode::OK))
}
