//! Signing in and out, users, tenant members and admin tokens.

use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_gateway::stored;
use gatehouse_store::{AdminToken, Role, User};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::{cookie, Caller, SESSION_COOKIE};
use crate::error::ApiError;
use crate::handlers::resources::tenant_id;
use crate::view::{opt_time, time};
use crate::AdminState;

/// How long a console session lasts.
pub(crate) const SESSION_TTL_MS: i64 = 12 * 3600 * 1000;

/// The fixed start of admin API tokens, distinct from client keys.
pub(crate) const ADMIN_TOKEN_PREFIX: &str = "gatehouse_admin_";

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Login {
    pub(crate) username: String,
    pub(crate) password: String,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewUser {
    pub(crate) username: String,
    /// Chosen by the owner; a random one is generated (and shown once) when absent.
    pub(crate) password: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct NewToken {
    pub(crate) name: String,
    /// e.g. `90d`, `12h`; default: until revoked.
    pub(crate) expires_in: Option<String>,
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct Membership {
    /// `viewer`, `developer` or `admin`.
    #[schema(value_type = String)]
    pub(crate) role: Role,
}

fn user_json(u: &User) -> Value {
    json!({"id": u.id, "username": u.username, "is_owner": u.is_owner, "created_at": time(u.created_at)})
}

fn token_json(t: &AdminToken) -> Value {
    json!({"id": t.id, "name": t.name, "created_at": time(t.created_at),
           "expires_at": opt_time(t.expires_at), "revoked_at": opt_time(t.revoked_at)})
}

pub(crate) async fn login(state: &AdminState, body: Login) -> Result<Response, ApiError> {
    let user = state
        .store
        .check_password(&body.username, &body.password)
        .await?
        .ok_or(ApiError::BadCredentials)?;
    let session = gatehouse_store::ids::random_base62(43)?;
    state
        .store
        .create_session(
            &user.id,
            &session,
            gatehouse_store::ids::now_ms() + SESSION_TTL_MS,
        )
        .await?;
    let cookie = format!(
        "{SESSION_COOKIE}={session}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age={}",
        SESSION_TTL_MS / 1000
    );
    let mut resp = Json(json!({"user": user_json(&user)})).into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_str(&cookie).map_err(|e| ApiError::Internal(e.to_string()))?,
    );
    Ok(resp)
}

pub(crate) async fn logout(state: &AdminState, headers: &HeaderMap) -> Result<Response, ApiError> {
    if let Some(session) = cookie(headers, SESSION_COOKIE) {
        state.store.delete_session(session).await?;
    }
    let mut resp = StatusCode::NO_CONTENT.into_response();
    resp.headers_mut().insert(
        header::SET_COOKIE,
        HeaderValue::from_static(
            "gatehouse_session=; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=0",
        ),
    );
    Ok(resp)
}

pub(crate) async fn me(state: &AdminState, caller: &Caller) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenants: Vec<Value> = caller
        .roles
        .iter()
        .map(|(id, role)| json!({"tenant": stored.tenant_names.get(id), "role": role}))
        .collect();
    Ok(Json(
        json!({"user": user_json(&caller.user), "tenants": tenants}),
    ))
}

pub(crate) async fn list_users(
    state: &AdminState,
    caller: &Caller,
) -> Result<Json<Value>, ApiError> {
    caller.require_owner()?;
    let users = state.store.list_users().await?;
    Ok(Json(
        json!({"items": users.iter().map(user_json).collect::<Vec<_>>()}),
    ))
}

pub(crate) async fn create_user(
    state: &AdminState,
    caller: &Caller,
    body: NewUser,
) -> Result<Response, ApiError> {
    caller.require_owner()?;
    if !gatehouse_gateway::config::valid_slug(&body.username) {
        return Err(ApiError::field(
            "username",
            "must be 1–64 characters of letters, digits, '.', '_' or '-'",
        ));
    }
    let (password, generated) = match body.password {
        Some(p) if p.chars().count() < 12 => {
            return Err(ApiError::field(
                "password",
                "must be at least 12 characters",
            ))
        }
        Some(p) => (p, false),
        None => (gatehouse_store::ids::random_base62(24)?, true),
    };
    let user = state
        .store
        .create_user(&body.username, &password, false, &caller.actor())
        .await?;
    let mut v = user_json(&user);
    if generated {
        v["password"] = Value::from(password);
    }
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub(crate) async fn delete_user(
    state: &AdminState,
    caller: &Caller,
    username: &str,
) -> Result<StatusCode, ApiError> {
    caller.require_owner()?;
    let user = state.store.user_by_name(username).await?;
    if user.is_owner {
        return Err(ApiError::Conflict("the owner cannot be deleted".into()));
    }
    state.store.delete_user(&user.id, &caller.actor()).await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn members(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let id = tenant_id(&stored, tenant).ok_or_else(|| ApiError::not_found("tenant", tenant))?;
    caller.require(Some(&id), Role::Viewer, "tenant", tenant)?;
    let members = state.store.members_of(&id).await?;
    let items: Vec<Value> = members
        .iter()
        .map(|m| json!({"username": m.username, "role": m.role}))
        .collect();
    Ok(Json(json!({ "items": items })))
}

pub(crate) async fn set_member(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    username: &str,
    body: Membership,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let id = tenant_id(&stored, tenant).ok_or_else(|| ApiError::not_found("tenant", tenant))?;
    caller.require(Some(&id), Role::Admin, "tenant", tenant)?;
    let user = state.store.user_by_name(username).await?;
    let m = state
        .store
        .set_member(&id, &user, body.role, &caller.actor())
        .await?;
    Ok(Json(
        json!({"tenant": tenant, "username": m.username, "role": m.role}),
    ))
}

pub(crate) async fn remove_member(
    state: &AdminState,
    caller: &Caller,
    tenant: &str,
    username: &str,
) -> Result<StatusCode, ApiError> {
    let stored = stored::load(&state.store).await?;
    let id = tenant_id(&stored, tenant).ok_or_else(|| ApiError::not_found("tenant", tenant))?;
    caller.require(Some(&id), Role::Admin, "tenant", tenant)?;
    let user = state.store.user_by_name(username).await?;
    state
        .store
        .remove_member(&id, &user, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

pub(crate) async fn list_tokens(
    state: &AdminState,
    caller: &Caller,
) -> Result<Json<Value>, ApiError> {
    let tokens = state.store.admin_tokens_of(&caller.user.id).await?;
    Ok(Json(
        json!({"items": tokens.iter().map(token_json).collect::<Vec<_>>()}),
    ))
}

pub(crate) async fn create_token(
    state: &AdminState,
    caller: &Caller,
    body: NewToken,
) -> Result<Response, ApiError> {
    if body.name.trim().is_empty() {
        return Err(ApiError::field("name", "must not be empty"));
    }
    let expires_at = match body.expires_in.as_deref() {
        None => None,
        Some(s) => Some(
            gatehouse_store::ids::now_ms().saturating_add(super::keys::millis("expires_in", s)?),
        ),
    };
    let secret = format!(
        "{ADMIN_TOKEN_PREFIX}{}",
        gatehouse_store::ids::random_base62(40)?
    );
    let t = state
        .store
        .create_admin_token(
            &caller.user,
            body.name.trim(),
            &secret,
            expires_at,
            &caller.actor(),
        )
        .await?;
    let mut v = token_json(&t);
    v["token"] = Value::from(secret);
    Ok((StatusCode::CREATED, Json(v)).into_response())
}

pub(crate) async fn revoke_token(
    state: &AdminState,
    caller: &Caller,
    id: &str,
) -> Result<StatusCode, ApiError> {
    state
        .store
        .revoke_admin_token(&caller.user.id, id, &caller.actor())
        .await?;
    Ok(StatusCode::NO_CONTENT)
}
