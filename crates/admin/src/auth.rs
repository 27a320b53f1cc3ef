//! Who is calling the admin API, and what their roles let them do.
//!
//! A caller signs in with an admin token (`Authorization: Bearer`) or a console session cookie;
//! both are looked up by keyed hash. The install's `owner` may do everything. In a tenant, a
//! `viewer` reads, a `developer` also manages apps, keys and subscriptions, and an `admin` also
//! manages the tenant's providers, models, services, members and approvals. Resources of a tenant
//! the caller is not a member of answer 404, as if they did not exist, so nothing leaks.

use std::collections::HashMap;

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{header, HeaderMap};
use gatehouse_store::{Actor, Role, User};

use crate::error::ApiError;
use crate::AdminState;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "gatehouse_session";

/// A signed-in user and their roles by tenant id.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user: User,
    pub roles: HashMap<String, Role>,
}

impl Caller {
    pub fn actor(&self) -> Actor {
        Actor(self.user.username.clone())
    }

    pub fn is_owner(&self) -> bool {
        self.user.is_owner
    }

    /// The tenants the caller belongs to (all of them for the owner: `None`).
    pub fn tenant_ids(&self) -> Option<Vec<String>> {
        (!self.is_owner()).then(|| self.roles.keys().cloned().collect())
    }

    /// Whether the caller may see what belongs to `tenant` (`None`: the install's own).
    pub fn sees(&self, tenant: Option<&str>) -> bool {
        self.is_owner() || tenant.is_some_and(|t| self.roles.contains_key(t))
    }

    /// Requires at least `min` in `tenant` (the owner for install-level things). A caller who
    /// cannot even see the tenant gets `NotFound` for `(kind, name)`; one with too small a role
    /// gets `Forbidden`.
    pub fn require(
        &self,
        tenant: Option<&str>,
        min: Role,
        kind: &str,
        name: &str,
    ) -> Result<(), ApiError> {
        if self.is_owner() {
            return Ok(());
        }
        match tenant.and_then(|t| self.roles.get(t)) {
            None => Err(ApiError::not_found(kind, name)),
            Some(role) if *role >= min => Ok(()),
            Some(role) => Err(ApiError::Forbidden(format!(
                "your role in this tenant is {}; this needs {}",
                role.as_str(),
                min.as_str()
            ))),
        }
    }

    /// Requires the install's owner.
    pub fn require_owner(&self) -> Result<(), ApiError> {
        if self.is_owner() {
            Ok(())
        } else {
            Err(ApiError::Forbidden(
                "only the install's owner may do this".into(),
            ))
        }
    }
}

impl FromRequestParts<AdminState> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AdminState,
    ) -> Result<Self, Self::Rejection> {
        let store = &state.store;
        let user = if let Some(token) = bearer(&parts.headers) {
            store.user_by_admin_token(token).await?
        } else if let Some(session) = cookie(&parts.headers, SESSION_COOKIE) {
            store.user_by_session(session).await?
        } else {
            None
        };
        let user = user.ok_or(ApiError::Unauthenticated)?;
        let roles = store
            .memberships(&user.id)
            .await?
            .into_iter()
            .map(|m| (m.tenant_id, m.role))
            .collect();
        Ok(Self { user, roles })
    }
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    v.strip_prefix("Bearer ")
        .or_else(|| v.strip_prefix("bearer "))
        .map(str::trim)
}

/// A cookie's value from the `Cookie` headers.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn caller(owner: bool, roles: &[(&str, Role)]) -> Caller {
        Caller {
            user: User {
                id: "u".into(),
                username: "u".into(),
                is_owner: owner,
                created_at: 0,
            },
            roles: roles.iter().map(|(t, r)| ((*t).to_owned(), *r)).collect(),
        }
    }

    #[test]
    fn roles_rank_and_strangers_see_nothing() {
        let dev = caller(false, &[("a", Role::Developer)]);
        assert!(dev.require(Some("a"), Role::Viewer, "app", "x").is_ok());
        assert!(dev.require(Some("a"), Role::Developer, "app", "x").is_ok());
        assert!(matches!(
            dev.require(Some("a"), Role::Admin, "app", "x"),
            Err(ApiError::Forbidden(_))
        ));
        assert!(matches!(
            dev.require(Some("b"), Role::Viewer, "app", "x"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(matches!(
            dev.require(None, Role::Viewer, "provider", "x"),
            Err(ApiError::NotFound { .. })
        ));
        assert!(dev.require_owner().is_err());
        let owner = caller(true, &[]);
        assert!(owner.require(Some("b"), Role::Admin, "app", "x").is_ok());
        assert!(owner.sees(None));
        assert!(!dev.sees(None));
    }

    #[test]
    fn cookies_are_found_among_others() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            "a=1; gatehouse_session=xyz; b=2".parse().unwrap(),
        );
        assert_eq!(cookie(&h, SESSION_COOKIE), Some("xyz"));
        assert_eq!(cookie(&h, "c"), None);
    }
}
