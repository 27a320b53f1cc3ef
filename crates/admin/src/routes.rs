//! Admin paths to handlers, and the middleware around them. Nothing else.

use axum::extract::Request;
use axum::extract::State;
use axum::http::HeaderValue;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::Router;

use crate::error::ApiError;
use crate::handlers::{account, apps, models, policies, providers, services, subs, tenants};
use crate::{openapi, AdminState};

/// The admin API under `/admin/v1`.
pub fn router(state: AdminState) -> Router {
    let v1 = Router::new()
        .route("/login", post(account::login))
        .route("/logout", post(account::logout))
        .route("/me", get(account::me))
        .route("/users", get(account::users).post(account::create_user))
        .route(
            "/users/{username}",
            axum::routing::delete(account::delete_user),
        )
        .route("/tokens", get(account::tokens).post(account::create_token))
        .route("/tokens/{id}", axum::routing::delete(account::revoke_token))
        .route("/tenants", get(tenants::list).post(tenants::create))
        .route(
            "/tenants/{tenant}",
            get(tenants::get)
                .put(tenants::replace)
                .delete(tenants::delete),
        )
        .route("/tenants/{tenant}/members", get(account::members))
        .route(
            "/tenants/{tenant}/members/{username}",
            put(account::set_member).delete(account::remove_member),
        )
        .route("/tenants/{tenant}/apps", get(apps::list).post(apps::create))
        .route(
            "/tenants/{tenant}/apps/{app}",
            get(apps::get).put(apps::replace).delete(apps::delete),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/keys",
            get(apps::keys).post(apps::create_key),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/keys/{id}",
            get(apps::get_key).delete(apps::revoke_key),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/keys/{id}/rotate",
            post(apps::rotate_key),
        )
        .route(
            "/tenants/{tenant}/apps/{app}/subscriptions",
            get(apps::subscriptions).post(apps::subscribe),
        )
        .route("/providers", get(providers::list).post(providers::create))
        .route(
            "/providers/{name}",
            get(providers::get)
                .put(providers::replace)
                .delete(providers::delete),
        )
        .route("/models", get(models::list).post(models::create))
        .route(
            "/models/{name}",
            get(models::get).put(models::replace).delete(models::delete),
        )
        .route("/services", get(services::list).post(services::create))
        .route(
            "/services/{name}",
            get(services::get)
                .put(services::replace)
                .delete(services::delete),
        )
        .route("/policies", get(policies::list).post(policies::create))
        .route(
            "/policies/{name}",
            get(policies::get)
                .put(policies::replace)
                .delete(policies::delete),
        )
        .route("/policies/{name}/usage", get(account::policy_usage))
        .route("/alerts", get(account::alerts))
        .route("/health", get(account::health))
        .route("/calls", get(account::calls))
        .route("/calls/export", get(account::export_calls))
        .route("/calls/{id}", get(account::call))
        .route("/analytics/series", get(account::series))
        .route("/analytics/totals", get(account::totals))
        .route("/analytics/top", get(account::top))
        .route("/anomalies", get(account::anomalies))
        .route("/forecasts", get(account::forecasts))
        .route("/catalog", get(account::catalog))
        .route("/subscriptions", get(subs::list))
        .route("/subscriptions/{id}", get(subs::get))
        .route("/subscriptions/{id}/approve", post(subs::approve))
        .route("/subscriptions/{id}/reject", post(subs::reject))
        .route("/subscriptions/{id}/revoke", post(subs::revoke))
        .route("/audit", get(account::audit))
        .route("/openapi.json", get(openapi::document))
        .route("/docs", get(openapi::page));
    Router::new()
        .nest("/admin/v1", v1)
        // Prometheus scrapes the admin listener (loopback by default) without credentials.
        .route("/metrics", get(metrics))
        .fallback(no_route)
        .method_not_allowed_fallback(no_route)
        // Outermost: admin answers are never cached by browsers or proxies.
        .layer(middleware::from_fn(no_store))
        .with_state(state)
}

/// A node without a store has no admin API, but Prometheus still scrapes it.
pub(crate) fn metrics_only(data: gatehouse_gateway::snapshot::Shared) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(
                |State(data): State<gatehouse_gateway::snapshot::Shared>| async move {
                    exposition(&data)
                },
            ),
        )
        .fallback(|req: Request| async move {
            ApiError::NoRoute(format!(
                "{} {} (this node has no store: its admin listener serves /metrics alone)",
                req.method(),
                req.uri().path()
            ))
        })
        .layer(middleware::from_fn(no_store))
        .with_state(data)
}

fn exposition(data: &gatehouse_gateway::snapshot::Shared) -> Response {
    let snap = data.load();
    let text = snap.traffic.metrics.render(&snap);
    let mut resp = text.into_response();
    resp.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("application/openmetrics-text; version=1.0.0; charset=utf-8"),
    );
    resp
}

async fn metrics(State(state): State<AdminState>) -> Result<Response, ApiError> {
    let Some(data) = &state.data else {
        return Err(ApiError::Conflict(
            "this node serves no gateway, so it has no metrics".into(),
        ));
    };
    Ok(exposition(data))
}

async fn no_route(req: Request) -> ApiError {
    ApiError::NoRoute(format!("{} {}", req.method(), req.uri().path()))
}

async fn no_store(req: Request, next: Next) -> Response {
    let mut resp = next.run(req).await;
    resp.headers_mut()
        .insert("cache-control", HeaderValue::from_static("no-store"));
    resp
}
