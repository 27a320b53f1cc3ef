//! The admin API's OpenAPI 3.1 document, generated from the handlers' annotations, and a docs
//! page that renders it with no network access (no CDN: the page is one self-contained file).

use axum::response::Html;
use axum::Json;
use serde::Serialize;
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};

use crate::handlers::{self, account, apps, models, policies, providers, services, subs, tenants};

/// The shape of every error answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorDoc {
    pub error: ErrorInner,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ErrorInner {
    pub status: u16,
    /// e.g. `not_found`, `invalid`, `conflict`, `file_managed`, `stale_revision`, `forbidden`.
    pub code: String,
    pub message: String,
    /// Validation errors: one per field, with its path in the request body.
    pub fields: Option<Vec<FieldDoc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct FieldDoc {
    pub path: String,
    pub message: String,
}

struct Security;

impl Modify for Security {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let c = api.components.get_or_insert_with(Default::default);
        c.add_security_scheme(
            "token",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some("An admin API token (POST /admin/v1/tokens)"))
                    .build(),
            ),
        );
        c.add_security_scheme(
            "session",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::new("gatehouse_session"))),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(title = "Gatehouse admin API", description = "Tenants, users and roles, providers, models, services, apps and keys, subscriptions and the audit log. Resources have the same fields as in gatehouse.yaml (docs/configuration.md)."),
    security(("token" = []), ("session" = [])),
    modifiers(&Security),
    paths(
        account::login, account::logout, account::me, account::tokens, account::create_token,
        account::revoke_token, account::users, account::create_user, account::delete_user,
        account::members, account::set_member, account::remove_member, account::catalog,
        account::audit, account::policy_usage, account::alerts, account::health, account::calls,
        account::export_calls, account::call, account::series, account::totals, account::top,
        account::anomalies, account::forecasts,
        tenants::list, tenants::get, tenants::create, tenants::replace, tenants::delete,
        providers::list, providers::get, providers::create, providers::replace, providers::delete,
        models::list, models::get, models::create, models::replace, models::delete,
        services::list, services::get, services::create, services::replace, services::delete,
        policies::list, policies::get, policies::create, policies::replace, policies::delete,
        apps::list, apps::get, apps::create, apps::replace, apps::delete, apps::keys,
        apps::create_key, apps::get_key, apps::revoke_key, apps::rotate_key, apps::subscriptions,
        apps::subscribe,
        subs::list, subs::get, subs::approve, subs::reject, subs::revoke,
    ),
    components(schemas(ErrorDoc, handlers::keys::NewKey, handlers::keys::Rotate,
        handlers::subscriptions::Ask, handlers::subscriptions::Decision, handlers::users::Login,
        handlers::users::NewUser, handlers::users::NewToken, handlers::users::Membership)),
)]
pub struct ApiDoc;

/// `GET /admin/v1/openapi.json`
pub async fn document() -> Json<utoipa::openapi::OpenApi> {
    Json(ApiDoc::openapi())
}

/// `GET /admin/v1/docs`
pub async fn page() -> Html<&'static str> {
    Html(include_str!("openapi/docs.html"))
}
