//! HTTP handlers: extract, call the module that does the work, respond.
//!
//! The declarative kinds share one implementation (`resources`), stamped out per kind by
//! `kind_handlers!` so each route has a named handler.

pub(crate) mod alerts;
pub(crate) mod analytics;
pub(crate) mod audit;
pub(crate) mod calls;
pub(crate) mod health;
pub(crate) mod insights;
pub(crate) mod keys;
pub(crate) mod resources;
pub(crate) mod subscriptions;
pub(crate) mod usage;
pub(crate) mod users;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::Json;
use gatehouse_store::SubState;
use serde_json::Value;

use crate::auth::Caller;
use crate::error::ApiError;
use crate::json::Body;
use crate::AdminState;

type Result<T> = std::result::Result<T, ApiError>;

/// Install-wide kinds (the tenant, if any, is in the body): list, get, create, replace, delete.
macro_rules! kind_handlers {
    ($module:ident, $kind:expr, $schema:ty, $list:literal, $one:literal, $tag:literal) => {
        pub(crate) mod $module {
            use super::*;

            #[utoipa::path(get, path = $list, tag = $tag, params(resources::ListQuery),
                responses((status = 200, description = "A page of resources: `{items, next_cursor}`"), (status = 401, body = crate::openapi::ErrorDoc)))]
            pub(crate) async fn list(
                State(s): State<AdminState>,
                c: Caller,
                Query(q): Query<resources::ListQuery>,
            ) -> Result<Json<Value>> {
                resources::list(&s, &c, $kind, None, q).await
            }

            #[utoipa::path(get, path = $one, tag = $tag, params(("name" = String, Path)),
                responses((status = 200, description = "The resource, with `id`, `revision`, `managed_by`, times, and an `ETag`", body = $schema), (status = 404, body = crate::openapi::ErrorDoc)))]
            pub(crate) async fn get(
                State(s): State<AdminState>,
                c: Caller,
                Path(name): Path<String>,
            ) -> Result<Response> {
                resources::get(&s, &c, $kind, None, &name).await
            }

            #[utoipa::path(post, path = $list, tag = $tag, request_body = $schema,
                responses((status = 201, description = "Created", body = $schema), (status = 409, description = "The name is taken", body = crate::openapi::ErrorDoc), (status = 422, description = "Invalid, with field paths", body = crate::openapi::ErrorDoc)))]
            pub(crate) async fn create(
                State(s): State<AdminState>,
                c: Caller,
                Body(body): Body<Value>,
            ) -> Result<Response> {
                resources::create(&s, &c, $kind, None, body).await
            }

            #[utoipa::path(put, path = $one, tag = $tag, request_body = $schema,
                params(("name" = String, Path), ("If-Match" = Option<String>, Header, description = "The ETag last read; the write fails with 412 if the resource changed since")),
                responses((status = 200, body = $schema), (status = 409, description = "Managed by the config file, or would break another resource", body = crate::openapi::ErrorDoc), (status = 412, body = crate::openapi::ErrorDoc), (status = 422, body = crate::openapi::ErrorDoc)))]
            pub(crate) async fn replace(
                State(s): State<AdminState>,
                c: Caller,
                Path(name): Path<String>,
                headers: HeaderMap,
                Body(body): Body<Value>,
            ) -> Result<Response> {
                resources::replace(&s, &c, $kind, None, &name, &headers, body).await
            }

            #[utoipa::path(delete, path = $one, tag = $tag,
                params(("name" = String, Path), ("If-Match" = Option<String>, Header)),
                responses((status = 204, description = "Deleted"), (status = 409, body = crate::openapi::ErrorDoc), (status = 412, body = crate::openapi::ErrorDoc)))]
            pub(crate) async fn delete(
                State(s): State<AdminState>,
                c: Caller,
                Path(name): Path<String>,
                headers: HeaderMap,
            ) -> Result<Response> {
                resources::delete(&s, &c, $kind, None, &name, &headers).await
            }
        }
    };
}

kind_handlers!(
    tenants,
    gatehouse_store::Kind::Tenant,
    gatehouse_gateway::config::RawTenant,
    "/admin/v1/tenants",
    "/admin/v1/tenants/{name}",
    "tenants"
);
kind_handlers!(
    providers,
    gatehouse_store::Kind::Provider,
    gatehouse_gateway::config::RawProvider,
    "/admin/v1/providers",
    "/admin/v1/providers/{name}",
    "providers"
);
kind_handlers!(
    models,
    gatehouse_store::Kind::Model,
    gatehouse_gateway::config::RawModel,
    "/admin/v1/models",
    "/admin/v1/models/{name}",
    "models"
);
kind_handlers!(
    services,
    gatehouse_store::Kind::Service,
    gatehouse_gateway::config::RawService,
    "/admin/v1/services",
    "/admin/v1/services/{name}",
    "services"
);
kind_handlers!(
    policies,
    gatehouse_store::Kind::Policy,
    gatehouse_gateway::config::RawPolicy,
    "/admin/v1/policies",
    "/admin/v1/policies/{name}",
    "policies"
);

/// Apps live under their tenant: `/tenants/{tenant}/apps/{app}`.
pub(crate) mod apps {
    use super::*;
    use gatehouse_store::Kind;

    #[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/apps", tag = "apps", params(("tenant" = String, Path), resources::ListQuery), responses((status = 200, description = "A page of the tenant's apps")))]
    pub(crate) async fn list(
        State(s): State<AdminState>,
        c: Caller,
        Path(tenant): Path<String>,
        Query(q): Query<resources::ListQuery>,
    ) -> Result<Json<Value>> {
        resources::list(&s, &c, Kind::App, Some(&tenant), q).await
    }

    #[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/apps/{app}", tag = "apps", params(("tenant" = String, Path), ("app" = String, Path)), responses((status = 200, body = gatehouse_gateway::config::RawApp), (status = 404, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn get(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app)): Path<(String, String)>,
    ) -> Result<Response> {
        resources::get(&s, &c, Kind::App, Some(&tenant), &app).await
    }

    #[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/apps", tag = "apps", params(("tenant" = String, Path)), request_body = gatehouse_gateway::config::RawApp, responses((status = 201, body = gatehouse_gateway::config::RawApp), (status = 422, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn create(
        State(s): State<AdminState>,
        c: Caller,
        Path(tenant): Path<String>,
        Body(body): Body<Value>,
    ) -> Result<Response> {
        resources::create(&s, &c, Kind::App, Some(&tenant), body).await
    }

    #[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/apps/{app}", tag = "apps", params(("tenant" = String, Path), ("app" = String, Path), ("If-Match" = Option<String>, Header)), request_body = gatehouse_gateway::config::RawApp, responses((status = 200, body = gatehouse_gateway::config::RawApp), (status = 412, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn replace(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app)): Path<(String, String)>,
        headers: HeaderMap,
        Body(body): Body<Value>,
    ) -> Result<Response> {
        resources::replace(&s, &c, Kind::App, Some(&tenant), &app, &headers, body).await
    }

    #[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/apps/{app}", tag = "apps", params(("tenant" = String, Path), ("app" = String, Path), ("If-Match" = Option<String>, Header)), responses((status = 204, description = "Deleted, with its keys and subscriptions")))]
    pub(crate) async fn delete(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app)): Path<(String, String)>,
        headers: HeaderMap,
    ) -> Result<Response> {
        resources::delete(&s, &c, Kind::App, Some(&tenant), &app, &headers).await
    }

    #[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/apps/{app}/keys", tag = "keys", params(("tenant" = String, Path), ("app" = String, Path)), responses((status = 200, description = "The app's keys (never the secrets)")))]
    pub(crate) async fn keys(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app)): Path<(String, String)>,
    ) -> Result<Json<Value>> {
        keys::list(&s, &c, &tenant, &app).await
    }

    #[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/apps/{app}/keys", tag = "keys", params(("tenant" = String, Path), ("app" = String, Path)), request_body = keys::NewKey, responses((status = 201, description = "The new key; `key` holds the secret, shown only this once")))]
    pub(crate) async fn create_key(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app)): Path<(String, String)>,
        Body(body): Body<keys::NewKey>,
    ) -> Result<Response> {
        keys::create(&s, &c, &tenant, &app, body).await
    }

    #[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/apps/{app}/keys/{id}", tag = "keys", params(("tenant" = String, Path), ("app" = String, Path), ("id" = String, Path)), responses((status = 200, description = "One key")))]
    pub(crate) async fn get_key(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app, id)): Path<(String, String, String)>,
    ) -> Result<Json<Value>> {
        keys::get(&s, &c, &tenant, &app, &id).await
    }

    #[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/apps/{app}/keys/{id}", tag = "keys", params(("tenant" = String, Path), ("app" = String, Path), ("id" = String, Path)), responses((status = 200, description = "The key, now revoked; it stops working within a second")))]
    pub(crate) async fn revoke_key(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app, id)): Path<(String, String, String)>,
    ) -> Result<Json<Value>> {
        keys::revoke(&s, &c, &tenant, &app, &id).await
    }

    #[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/apps/{app}/keys/{id}/rotate", tag = "keys", params(("tenant" = String, Path), ("app" = String, Path), ("id" = String, Path)), request_body = keys::Rotate, responses((status = 201, description = "The successor key (secret shown once); the old one works for the overlap")))]
    pub(crate) async fn rotate_key(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app, id)): Path<(String, String, String)>,
        Body(body): Body<keys::Rotate>,
    ) -> Result<Response> {
        keys::rotate(&s, &c, &tenant, &app, &id, body).await
    }

    #[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/apps/{app}/subscriptions", tag = "subscriptions", params(("tenant" = String, Path), ("app" = String, Path)), responses((status = 200, description = "The app's subscriptions")))]
    pub(crate) async fn subscriptions(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app)): Path<(String, String)>,
    ) -> Result<Json<Value>> {
        subscriptions::of_app(&s, &c, &tenant, &app).await
    }

    #[utoipa::path(post, path = "/admin/v1/tenants/{tenant}/apps/{app}/subscriptions", tag = "subscriptions", params(("tenant" = String, Path), ("app" = String, Path)), request_body = subscriptions::Ask, responses((status = 201, description = "The subscription: `approved`, or `pending` when the service requires approval"), (status = 409, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn subscribe(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, app)): Path<(String, String)>,
        Body(body): Body<subscriptions::Ask>,
    ) -> Result<Response> {
        subscriptions::ask(&s, &c, &tenant, &app, body).await
    }
}

/// Subscriptions as the approver (or either side) sees them.
pub(crate) mod subs {
    use super::*;

    #[utoipa::path(get, path = "/admin/v1/subscriptions", tag = "subscriptions", params(subscriptions::SubQuery), responses((status = 200, description = "Subscriptions of your tenants' apps and to your tenants' services")))]
    pub(crate) async fn list(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<subscriptions::SubQuery>,
    ) -> Result<Json<Value>> {
        subscriptions::list(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/subscriptions/{id}", tag = "subscriptions", params(("id" = String, Path)), responses((status = 200, description = "One subscription, with an ETag"), (status = 404, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn get(
        State(s): State<AdminState>,
        c: Caller,
        Path(id): Path<String>,
    ) -> Result<Response> {
        subscriptions::get(&s, &c, &id).await
    }

    async fn decide(
        s: AdminState,
        c: Caller,
        id: String,
        to: SubState,
        headers: HeaderMap,
        body: subscriptions::Decision,
    ) -> Result<Response> {
        subscriptions::decide(&s, &c, &id, to, &headers, body).await
    }

    #[utoipa::path(post, path = "/admin/v1/subscriptions/{id}/approve", tag = "subscriptions", params(("id" = String, Path), ("If-Match" = Option<String>, Header)), request_body = subscriptions::Decision, responses((status = 200, description = "Approved"), (status = 403, body = crate::openapi::ErrorDoc), (status = 409, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn approve(
        State(s): State<AdminState>,
        c: Caller,
        Path(id): Path<String>,
        headers: HeaderMap,
        Body(body): Body<subscriptions::Decision>,
    ) -> Result<Response> {
        decide(s, c, id, SubState::Approved, headers, body).await
    }

    #[utoipa::path(post, path = "/admin/v1/subscriptions/{id}/reject", tag = "subscriptions", params(("id" = String, Path), ("If-Match" = Option<String>, Header)), request_body = subscriptions::Decision, responses((status = 200, description = "Rejected"), (status = 403, body = crate::openapi::ErrorDoc), (status = 409, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn reject(
        State(s): State<AdminState>,
        c: Caller,
        Path(id): Path<String>,
        headers: HeaderMap,
        Body(body): Body<subscriptions::Decision>,
    ) -> Result<Response> {
        decide(s, c, id, SubState::Rejected, headers, body).await
    }

    #[utoipa::path(post, path = "/admin/v1/subscriptions/{id}/revoke", tag = "subscriptions", params(("id" = String, Path), ("If-Match" = Option<String>, Header)), request_body = subscriptions::Decision, responses((status = 200, description = "Revoked"), (status = 403, body = crate::openapi::ErrorDoc), (status = 409, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn revoke(
        State(s): State<AdminState>,
        c: Caller,
        Path(id): Path<String>,
        headers: HeaderMap,
        Body(body): Body<subscriptions::Decision>,
    ) -> Result<Response> {
        decide(s, c, id, SubState::Revoked, headers, body).await
    }
}

/// Sessions, users, members, tokens, the catalog and the audit log.
pub(crate) mod account {
    use super::*;

    #[utoipa::path(post, path = "/admin/v1/login", tag = "account", request_body = users::Login, security(()), responses((status = 200, description = "Signed in; a `gatehouse_session` cookie (HttpOnly, Secure, SameSite=Strict) is set"), (status = 401, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn login(
        State(s): State<AdminState>,
        Body(body): Body<users::Login>,
    ) -> Result<Response> {
        users::login(&s, body).await
    }

    #[utoipa::path(post, path = "/admin/v1/logout", tag = "account", responses((status = 204, description = "The session ends")))]
    pub(crate) async fn logout(
        State(s): State<AdminState>,
        headers: HeaderMap,
    ) -> Result<Response> {
        users::logout(&s, &headers).await
    }

    #[utoipa::path(get, path = "/admin/v1/me", tag = "account", responses((status = 200, description = "You and your roles by tenant"), (status = 401, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn me(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
        users::me(&s, &c).await
    }

    #[utoipa::path(get, path = "/admin/v1/users", tag = "users", responses((status = 200, description = "All users (owner only)")))]
    pub(crate) async fn users(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
        users::list_users(&s, &c).await
    }

    #[utoipa::path(post, path = "/admin/v1/users", tag = "users", request_body = users::NewUser, responses((status = 201, description = "The user; `password` is included once when it was generated")))]
    pub(crate) async fn create_user(
        State(s): State<AdminState>,
        c: Caller,
        Body(body): Body<users::NewUser>,
    ) -> Result<Response> {
        users::create_user(&s, &c, body).await
    }

    #[utoipa::path(delete, path = "/admin/v1/users/{username}", tag = "users", params(("username" = String, Path)), responses((status = 204, description = "Deleted")))]
    pub(crate) async fn delete_user(
        State(s): State<AdminState>,
        c: Caller,
        Path(username): Path<String>,
    ) -> Result<StatusCode> {
        users::delete_user(&s, &c, &username).await
    }

    #[utoipa::path(get, path = "/admin/v1/tenants/{tenant}/members", tag = "tenants", params(("tenant" = String, Path)), responses((status = 200, description = "The tenant's members and roles")))]
    pub(crate) async fn members(
        State(s): State<AdminState>,
        c: Caller,
        Path(tenant): Path<String>,
    ) -> Result<Json<Value>> {
        users::members(&s, &c, &tenant).await
    }

    #[utoipa::path(put, path = "/admin/v1/tenants/{tenant}/members/{username}", tag = "tenants", params(("tenant" = String, Path), ("username" = String, Path)), request_body = users::Membership, responses((status = 200, description = "The membership")))]
    pub(crate) async fn set_member(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, username)): Path<(String, String)>,
        Body(body): Body<users::Membership>,
    ) -> Result<Json<Value>> {
        users::set_member(&s, &c, &tenant, &username, body).await
    }

    #[utoipa::path(delete, path = "/admin/v1/tenants/{tenant}/members/{username}", tag = "tenants", params(("tenant" = String, Path), ("username" = String, Path)), responses((status = 204, description = "Removed")))]
    pub(crate) async fn remove_member(
        State(s): State<AdminState>,
        c: Caller,
        Path((tenant, username)): Path<(String, String)>,
    ) -> Result<StatusCode> {
        users::remove_member(&s, &c, &tenant, &username).await
    }

    #[utoipa::path(get, path = "/admin/v1/tokens", tag = "account", responses((status = 200, description = "Your admin API tokens (never the secrets)")))]
    pub(crate) async fn tokens(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
        users::list_tokens(&s, &c).await
    }

    #[utoipa::path(post, path = "/admin/v1/tokens", tag = "account", request_body = users::NewToken, responses((status = 201, description = "The token; `token` holds the secret, shown only this once")))]
    pub(crate) async fn create_token(
        State(s): State<AdminState>,
        c: Caller,
        Body(body): Body<users::NewToken>,
    ) -> Result<Response> {
        users::create_token(&s, &c, body).await
    }

    #[utoipa::path(delete, path = "/admin/v1/tokens/{id}", tag = "account", params(("id" = String, Path)), responses((status = 204, description = "Revoked")))]
    pub(crate) async fn revoke_token(
        State(s): State<AdminState>,
        c: Caller,
        Path(id): Path<String>,
    ) -> Result<StatusCode> {
        users::revoke_token(&s, &c, &id).await
    }

    #[utoipa::path(get, path = "/admin/v1/calls", tag = "calls", params(calls::CallQuery), responses((status = 200, description = "Call records, newest first: who, what, every attempt, status, duration, tokens, cost")))]
    pub(crate) async fn calls(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<calls::CallQuery>,
    ) -> Result<Json<Value>> {
        calls::list(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/calls/export", tag = "calls", params(calls::CallQuery), responses((status = 200, description = "Every matching record, streamed as JSON lines (`format=jsonl`, the default) or CSV (`format=csv`); bodies are left out")))]
    pub(crate) async fn export_calls(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<calls::CallQuery>,
    ) -> Result<Response> {
        calls::export(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/calls/{id}", tag = "calls", params(("id" = String, Path)), responses((status = 200, description = "One record in full, with the bodies its capture policy kept (redacted)"), (status = 404, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn call(
        State(s): State<AdminState>,
        c: Caller,
        Path(id): Path<String>,
    ) -> Result<Json<Value>> {
        calls::get(&s, &c, &id).await
    }

    #[utoipa::path(get, path = "/admin/v1/analytics/series", tag = "analytics", params(analytics::AnalyticsQuery), responses((status = 200, description = "Time series of requests, errors, tokens, cost, latency and TTFT percentiles, one per group")))]
    pub(crate) async fn series(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<analytics::AnalyticsQuery>,
    ) -> Result<Json<Value>> {
        analytics::series(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/analytics/totals", tag = "analytics", params(analytics::AnalyticsQuery), responses((status = 200, description = "Totals over the window, per group")))]
    pub(crate) async fn totals(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<analytics::AnalyticsQuery>,
    ) -> Result<Json<Value>> {
        analytics::totals(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/analytics/top", tag = "analytics", params(analytics::AnalyticsQuery), responses((status = 200, description = "The largest groups of one dimension (`by`) ranked by requests, errors, tokens or cost")))]
    pub(crate) async fn top(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<analytics::AnalyticsQuery>,
    ) -> Result<Json<Value>> {
        analytics::top(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/anomalies", tag = "analytics", params(insights::AnomalyQuery), responses((status = 200, description = "Anomalies the detector found (request rate, error rate, spend, tokens per key, app, tenant and model), newest first, with what was done")))]
    pub(crate) async fn anomalies(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<insights::AnomalyQuery>,
    ) -> Result<Json<Value>> {
        insights::anomalies(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/forecasts", tag = "analytics", params(insights::ForecastQuery), responses((status = 200, description = "Hourly spend and traffic forecast, and when each spend budget runs out at that pace")))]
    pub(crate) async fn forecasts(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<insights::ForecastQuery>,
    ) -> Result<Json<Value>> {
        insights::forecasts(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/health", tag = "routing", responses((status = 200, description = "Every target's circuit state (healthy, ejected, half_open, cooling_down) and adaptive concurrency"), (status = 403, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn health(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
        health::targets(&s, &c).await
    }

    #[utoipa::path(get, path = "/admin/v1/alerts", tag = "policies", params(alerts::AlertQuery), responses((status = 200, description = "Budget alerts, newest first, with their webhook delivery")))]
    pub(crate) async fn alerts(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<alerts::AlertQuery>,
    ) -> Result<Json<Value>> {
        alerts::list(&s, &c, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/policies/{name}/usage", tag = "policies", params(("name" = String, Path), usage::UsageQuery), responses((status = 200, description = "Each limit of the policy: used, of, remaining, resets_in_ms (spend in USD)"), (status = 404, body = crate::openapi::ErrorDoc)))]
    pub(crate) async fn policy_usage(
        State(s): State<AdminState>,
        c: Caller,
        Path(name): Path<String>,
        Query(q): Query<usage::UsageQuery>,
    ) -> Result<Json<Value>> {
        usage::usage(&s, &c, &name, q).await
    }

    #[utoipa::path(get, path = "/admin/v1/catalog", tag = "services", responses((status = 200, description = "Services your tenants may subscribe to")))]
    pub(crate) async fn catalog(State(s): State<AdminState>, c: Caller) -> Result<Json<Value>> {
        resources::catalog(&s, &c).await
    }

    #[utoipa::path(get, path = "/admin/v1/audit", tag = "audit", params(audit::AuditQuery), responses((status = 200, description = "Audit entries, newest first, secrets masked")))]
    pub(crate) async fn audit(
        State(s): State<AdminState>,
        c: Caller,
        Query(q): Query<audit::AuditQuery>,
    ) -> Result<Json<Value>> {
        audit::list(&s, &c, q).await
    }
}
