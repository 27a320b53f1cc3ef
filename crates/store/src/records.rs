//! The records the store keeps, as the rest of Gatehouse sees them.

use serde::{Deserialize, Serialize};

/// The kinds of declarative resource, stored alike in one table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Tenant,
    Provider,
    Model,
    Service,
    App,
    Policy,
}

impl Kind {
    pub const ALL: [Kind; 6] = [
        Kind::Tenant,
        Kind::Provider,
        Kind::Model,
        Kind::Service,
        Kind::App,
        Kind::Policy,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tenant => "tenant",
            Self::Provider => "provider",
            Self::Model => "model",
            Self::Service => "service",
            Self::App => "app",
            Self::Policy => "policy",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    pub(crate) fn id_prefix(self) -> &'static str {
        match self {
            Self::Tenant => "ten_",
            Self::Provider => "prv_",
            Self::Model => "mdl_",
            Self::Service => "svc_",
            Self::App => "app_",
            Self::Policy => "pol_",
        }
    }

    /// Apps are named within their tenant; everything else has one install-wide name.
    pub(crate) fn tenant_scoped_name(self) -> bool {
        matches!(self, Self::App)
    }
}

impl std::fmt::Display for Kind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A stored resource. `secret` is already opened (plain text) here; it is sealed in the store.
#[derive(Debug, Clone, PartialEq)]
pub struct Resource {
    pub id: String,
    pub kind: Kind,
    /// The owning tenant's id; `None` for the install's own resources (and for tenants).
    pub tenant_id: Option<String>,
    pub name: String,
    pub spec: serde_json::Value,
    pub secret: Option<String>,
    /// `Some("file")` when the resource comes from `gatehouse.yaml` and the API must not edit it.
    pub managed_by: Option<String>,
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// A resource to create or to replace an existing one's content with.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceInput {
    pub kind: Kind,
    pub tenant_id: Option<String>,
    pub name: String,
    pub spec: serde_json::Value,
    pub secret: Option<String>,
    pub managed_by: Option<String>,
}

/// Who made a change: the audit log's actor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actor(pub String);

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct User {
    pub id: String,
    pub username: String,
    pub is_owner: bool,
    pub created_at: i64,
}

/// A user's role in one tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    Viewer,
    Developer,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Developer => "developer",
            Self::Admin => "admin",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Viewer, Self::Developer, Self::Admin]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Member {
    pub tenant_id: String,
    pub user_id: String,
    pub username: String,
    pub role: Role,
}

/// An admin API token (the token itself is only ever shown at creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AdminToken {
    pub id: String,
    pub user_id: String,
    pub name: String,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A client API key of an app; the key itself is only ever shown at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApiKey {
    /// Short and visible: the key reads `gatehouse_<id>_<secret>`.
    pub id: String,
    pub app_id: String,
    pub tenant_id: String,
    pub name: String,
    /// Services or models the key is limited to; empty means whatever its app may call.
    pub scopes: Vec<String>,
    /// Higher leaves an overloaded provider's queue first (default 0).
    pub priority: i64,
    pub created_at: i64,
    pub expires_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// A live key and its keyed hash, for the data plane's snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ActiveKey {
    pub hash: Vec<u8>,
    pub key: ApiKey,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SubState {
    Pending,
    Approved,
    Rejected,
    Revoked,
}

impl SubState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Approved => "approved",
            Self::Rejected => "rejected",
            Self::Revoked => "revoked",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Pending, Self::Approved, Self::Rejected, Self::Revoked]
            .into_iter()
            .find(|r| r.as_str() == s)
    }
}

/// An app's subscription to a service, with the names on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Subscription {
    pub id: String,
    pub app_id: String,
    pub app_name: String,
    pub app_tenant_id: String,
    pub service_id: String,
    pub service_name: String,
    /// The service owner's tenant; `None` for the install's services.
    pub service_tenant_id: Option<String>,
    pub state: SubState,
    pub requested_by: String,
    pub decided_by: Option<String>,
    pub reason: Option<String>,
    pub revision: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// One admin change.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AuditEntry {
    pub id: String,
    pub at: i64,
    pub actor: String,
    pub tenant_id: Option<String>,
    pub action: String,
    pub resource_kind: String,
    pub resource_id: String,
    pub resource_name: String,
    pub before: Option<serde_json::Value>,
    pub after: Option<serde_json::Value>,
}

impl AuditEntry {
    pub(crate) fn new(
        actor: &Actor,
        action: &str,
        kind: &str,
        id: &str,
        name: &str,
        tenant_id: Option<&str>,
    ) -> Self {
        Self {
            id: crate::ids::new_id("aud_"),
            at: crate::ids::now_ms(),
            actor: actor.0.clone(),
            tenant_id: tenant_id.map(str::to_owned),
            action: action.to_owned(),
            resource_kind: kind.to_owned(),
            resource_id: id.to_owned(),
            resource_name: name.to_owned(),
            before: None,
            after: None,
        }
    }

    pub(crate) fn before(mut self, v: Option<serde_json::Value>) -> Self {
        self.before = v;
        self
    }

    pub(crate) fn after(mut self, v: Option<serde_json::Value>) -> Self {
        self.after = v;
        self
    }
}

/// A page of results and the cursor of the next one.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// Cuts a list fetched with `limit + 1` rows into a page, by an id-ordered cursor.
    pub(crate) fn cut(mut items: Vec<T>, limit: usize, id: impl Fn(&T) -> &str) -> Self {
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            items.last().map(|t| id(t).to_owned())
        } else {
            None
        };
        Self { items, next_cursor }
    }
}
