//! Tenants, providers, models, services and apps: list, read, create, replace, delete.
//!
//! One set of handlers serves every kind; what differs is who may do what (`read_role`,
//! `write_role`) and where the tenant comes from (the body, or the URL for apps). Each write is
//! checked against the whole configuration first (`check`), refused for file-managed resources,
//! and guarded by `If-Match` when the client sends one.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_gateway::config::Lifecycle;
use gatehouse_gateway::stored::{self, Doc, Stored};
use gatehouse_store::{Kind, ListFilter, Resource, Role};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::{check, view, AdminState};

/// `?tenant=&cursor=&limit=` of list endpoints.
#[derive(Debug, Default, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    pub(crate) tenant: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
}

/// The role a kind needs to be changed.
fn write_role(kind: Kind) -> Role {
    match kind {
        Kind::App => Role::Developer,
        Kind::Tenant | Kind::Provider | Kind::Model | Kind::Service | Kind::Policy => Role::Admin,
    }
}

/// The tenant a resource is governed by: a tenant governs itself.
fn governing(r: &Resource) -> Option<&str> {
    match r.kind {
        Kind::Tenant => Some(&r.id),
        _ => r.tenant_id.as_deref(),
    }
}

/// Whether `caller` may read `r` — members of its tenant, and everyone for services that the
/// catalog shows them.
pub(crate) fn readable(caller: &Caller, r: &Resource, stored: &Stored) -> bool {
    if caller.sees(governing(r)) {
        return true;
    }
    r.kind == Kind::Service
        && matches!(
            stored.config.services.iter().find(|s| s.name == r.name),
            Some(s) if s.state.callable() && (s.tenant.is_none() || s.visibility == gatehouse_gateway::config::Visibility::Shared)
        )
}

pub(crate) fn etag(revision: i64) -> HeaderValue {
    HeaderValue::from_str(&format!("\"{revision}\"")).unwrap_or(HeaderValue::from_static("\"0\""))
}

/// The revision an `If-Match` header asks for (`None` when absent or `*`).
pub(crate) fn if_match(headers: &HeaderMap) -> Result<Option<i64>, ApiError> {
    let Some(v) = headers.get(header::IF_MATCH) else {
        return Ok(None);
    };
    let s = v.to_str().unwrap_or_default().trim();
    if s == "*" {
        return Ok(None);
    }
    s.trim_start_matches("W/")
        .trim_matches('"')
        .parse()
        .map(Some)
        .map_err(|_| ApiError::BadRequest(format!("If-Match {s:?} is not an ETag this API gave")))
}

/// The tenants whose records a caller reads: the one asked for (if the caller may), else all the
/// caller's (`None`: everything, for the owner).
pub(crate) fn tenants_to_read(
    stored: &Stored,
    caller: &Caller,
    tenant: Option<&str>,
) -> Result<Option<Vec<String>>, ApiError> {
    match tenant {
        Some(t) => {
            let id = tenant_id(stored, t).ok_or_else(|| ApiError::not_found("tenant", t))?;
            caller.require(Some(&id), Role::Viewer, "tenant", t)?;
            Ok(Some(vec![id]))
        }
        None => Ok(caller.tenant_ids()),
    }
}

pub(crate) fn tenant_id(stored: &Stored, name: &str) -> Option<String> {
    stored.row(Kind::Tenant, None, name).map(|r| r.id.clone())
}

fn tenant_name<'a>(stored: &'a Stored, r: &Resource) -> Option<&'a str> {
    r.tenant_id
        .as_ref()
        .and_then(|id| stored.tenant_names.get(id))
        .map(String::as_str)
}

fn one(r: &Resource, stored: &Stored, status: StatusCode) -> Result<Response, ApiError> {
    let body = view::resource(r, tenant_name(stored, r))?;
    let mut resp = (status, Json(body)).into_response();
    resp.headers_mut().insert(header::ETAG, etag(r.revision));
    Ok(resp)
}

/// Finds a resource by name (apps: within `path_tenant`), hiding what the caller cannot read.
async fn find(
    state: &AdminState,
    caller: &Caller,
    kind: Kind,
    path_tenant: Option<&str>,
    name: &str,
) -> Result<(Resource, Stored), ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant = match path_tenant {
        Some(t) => Some(tenant_id(&stored, t).ok_or_else(|| ApiError::not_found("tenant", t))?),
        None => None,
    };
    if let Some(t) = &tenant {
        caller.require(
            Some(t),
            Role::Viewer,
            "tenant",
            path_tenant.unwrap_or_default(),
        )?;
    }
    let r = stored
        .row(kind, path_tenant, name)
        .cloned()
        .ok_or_else(|| ApiError::not_found(kind.as_str(), name))?;
    if !readable(caller, &r, &stored) {
        return Err(ApiError::not_found(kind.as_str(), name));
    }
    Ok((r, stored))
}

pub(crate) async fn list(
    state: &AdminState,
    caller: &Caller,
    kind: Kind,
    path_tenant: Option<&str>,
    q: ListQuery,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let limit = q.limit.unwrap_or(50);
    if kind == Kind::Tenant && !caller.is_owner() {
        let items: Vec<Value> = stored
            .rows
            .values()
            .filter(|r| r.kind == Kind::Tenant && caller.roles.contains_key(&r.id))
            .map(|r| view::resource(r, None))
            .collect::<Result<_, _>>()?;
        return Ok(Json(json!({"items": items, "next_cursor": null})));
    }
    let filter_tenant = path_tenant.or(q.tenant.as_deref());
    let mut filter = ListFilter {
        after: q.cursor,
        limit,
        ..ListFilter::default()
    };
    match filter_tenant {
        Some(t) => {
            let id = tenant_id(&stored, t).ok_or_else(|| ApiError::not_found("tenant", t))?;
            caller.require(Some(&id), Role::Viewer, "tenant", t)?;
            filter.tenant_ids = Some(vec![id]);
        }
        None => {
            filter.tenant_ids = caller.tenant_ids();
            filter.include_install = caller.is_owner();
        }
    }
    let page = state.store.list_resources(kind, &filter).await?;
    let items: Vec<Value> = page
        .items
        .iter()
        .map(|r| view::resource(r, tenant_name(&stored, r)))
        .collect::<Result<_, _>>()?;
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

pub(crate) async fn get(
    state: &AdminState,
    caller: &Caller,
    kind: Kind,
    path_tenant: Option<&str>,
    name: &str,
) -> Result<Response, ApiError> {
    let (r, stored) = find(state, caller, kind, path_tenant, name).await?;
    one(&r, &stored, StatusCode::OK)
}

pub(crate) async fn create(
    state: &AdminState,
    caller: &Caller,
    kind: Kind,
    path_tenant: Option<&str>,
    body: Value,
) -> Result<Response, ApiError> {
    let stored = stored::load(&state.store).await?;
    let defaults: Vec<(&str, &str)> = path_tenant.map(|t| ("tenant", t)).into_iter().collect();
    let doc = view::doc_from_body(kind, body, &defaults, None)?;
    let tenant = match doc.tenant() {
        Some(t) => Some(tenant_id(&stored, t).ok_or_else(|| {
            if caller.is_owner() {
                ApiError::field("tenant", format!("no tenant named {t:?}"))
            } else {
                ApiError::not_found("tenant", t)
            }
        })?),
        None => None,
    };
    if kind == Kind::Tenant {
        caller.require_owner()?;
    } else {
        caller.require(
            tenant.as_deref(),
            write_role(kind),
            "tenant",
            doc.tenant().unwrap_or("(install)"),
        )?;
    }
    if stored.row(kind, doc.tenant(), doc.name()).is_some() {
        return Err(ApiError::Conflict(format!(
            "{kind} `{}` already exists",
            doc.name()
        )));
    }
    check::change(&stored, None, Some(&doc))?;
    let created = state
        .store
        .create_resource(doc.to_input(tenant, None), &caller.actor())
        .await?;
    let stored = stored::load(&state.store).await?;
    one(&created, &stored, StatusCode::CREATED)
}

pub(crate) async fn replace(
    state: &AdminState,
    caller: &Caller,
    kind: Kind,
    path_tenant: Option<&str>,
    name: &str,
    headers: &HeaderMap,
    body: Value,
) -> Result<Response, ApiError> {
    let (r, stored) = find(state, caller, kind, path_tenant, name).await?;
    let expected = if_match(headers)?;
    fresh(&r, expected)?;
    if kind == Kind::Tenant {
        caller.require(Some(&r.id), Role::Admin, kind.as_str(), name)?;
    } else {
        caller.require(
            r.tenant_id.as_deref(),
            write_role(kind),
            kind.as_str(),
            name,
        )?;
    }
    refuse_file_managed(&r)?;
    let tenant = tenant_name(&stored, &r);
    let existing = Doc::from_resource(&r, tenant)?;
    let mut defaults = vec![("name", name)];
    if let Some(t) = tenant {
        defaults.push(("tenant", t));
    }
    let doc = view::doc_from_body(kind, body, &defaults, Some(&existing))?;
    if doc.tenant() != tenant {
        return Err(ApiError::field(
            "tenant",
            "a resource cannot move to another tenant; create it there and delete this one",
        ));
    }
    if let (Doc::Service(old), Doc::Service(new)) = (&existing, &doc) {
        if !old.state.may_become(new.state) {
            return Err(ApiError::field(
                "state",
                format!(
                    "a {} service cannot become {}; the lifecycle runs draft → published → deprecated → retired",
                    lifecycle(old.state),
                    lifecycle(new.state)
                ),
            ));
        }
    }
    check::change(&stored, Some((kind, tenant, name)), Some(&doc))?;
    let updated = state
        .store
        .update_resource(
            &r.id,
            expected,
            doc.to_input(r.tenant_id.clone(), None),
            &caller.actor(),
        )
        .await?;
    one(&updated, &stored, StatusCode::OK)
}

pub(crate) async fn delete(
    state: &AdminState,
    caller: &Caller,
    kind: Kind,
    path_tenant: Option<&str>,
    name: &str,
    headers: &HeaderMap,
) -> Result<Response, ApiError> {
    let (r, stored) = find(state, caller, kind, path_tenant, name).await?;
    let expected = if_match(headers)?;
    fresh(&r, expected)?;
    if kind == Kind::Tenant {
        caller.require_owner()?;
    } else {
        caller.require(
            r.tenant_id.as_deref(),
            write_role(kind),
            kind.as_str(),
            name,
        )?;
    }
    refuse_file_managed(&r)?;
    if kind == Kind::Tenant {
        // Deleting a tenant deletes what it owns; check the install without any of it.
        let mut without = stored.clone();
        without
            .config
            .providers
            .retain(|p| p.tenant.as_deref() != Some(name));
        without
            .config
            .models
            .retain(|m| m.tenant.as_deref() != Some(name));
        without
            .config
            .services
            .retain(|s| s.tenant.as_deref() != Some(name));
        without.config.apps.retain(|a| a.tenant != name);
        without
            .config
            .policies
            .retain(|p| p.tenant.as_deref() != Some(name));
        check::change(&without, Some((kind, None, name)), None)?;
        if stored
            .rows
            .values()
            .any(|o| o.managed_by.is_some() && o.tenant_id.as_deref() == Some(&r.id))
        {
            return Err(ApiError::Conflict(format!(
                "tenant `{name}` owns resources managed by the config file; remove them there first"
            )));
        }
    } else {
        check::change(&stored, Some((kind, tenant_name(&stored, &r), name)), None)?;
    }
    state
        .store
        .delete_resource(kind, &r.id, expected, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Refuses a write based on an old read before anything else is checked.
fn fresh(r: &Resource, expected: Option<i64>) -> Result<(), ApiError> {
    match expected {
        Some(e) if e != r.revision => Err(ApiError::Stale {
            kind: r.kind.to_string(),
            name: r.name.clone(),
            current: r.revision,
        }),
        _ => Ok(()),
    }
}

fn refuse_file_managed(r: &Resource) -> Result<(), ApiError> {
    match &r.managed_by {
        Some(_) => Err(ApiError::FileManaged {
            kind: r.kind.to_string(),
            name: r.name.clone(),
        }),
        None => Ok(()),
    }
}

fn lifecycle(s: Lifecycle) -> &'static str {
    match s {
        Lifecycle::Draft => "draft",
        Lifecycle::Published => "published",
        Lifecycle::Deprecated => "deprecated",
        Lifecycle::Retired => "retired",
    }
}

/// The catalog: services the caller's tenants may subscribe to or already use.
pub(crate) async fn catalog(state: &AdminState, caller: &Caller) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let mut items = Vec::new();
    for s in &stored.config.services {
        let Some(r) = stored.row(Kind::Service, s.tenant.as_deref(), &s.name) else {
            continue;
        };
        let own = caller.sees(r.tenant_id.as_deref()) && r.tenant_id.is_some();
        let shown = caller.is_owner()
            || own
            || (s.state.callable()
                && (s.tenant.is_none()
                    || s.visibility == gatehouse_gateway::config::Visibility::Shared));
        if shown {
            items.push(view::resource(r, s.tenant.as_deref())?);
        }
    }
    Ok(Json(json!({ "items": items })))
}
