//! Tenants, providers, models, services and apps: one table, one set of verbs.
//!
//! Each write checks the revision the caller last saw (optimistic concurrency: the admin API's
//! `If-Match`), seals the secret under the row's own id, and records before/after in the audit
//! log with the secret masked.

use serde_json::json;

use crate::db::{on, DbRow, Tx};
use crate::records::{Actor, AuditEntry, Kind, Page, Resource, ResourceInput};
use crate::{Store, StoreError};

/// Which resources to list.
#[derive(Debug, Clone, Default)]
pub struct ListFilter {
    /// Only these tenants' resources (`None`: every tenant's).
    pub tenant_ids: Option<Vec<String>>,
    /// Whether the install's own resources (no tenant) are included.
    pub include_install: bool,
    /// Ids strictly after this one (the previous page's cursor).
    pub after: Option<String>,
    pub limit: usize,
}

const COLUMNS: &str =
    "id, kind, tenant_id, name, spec, secret, managed_by, revision, created_at, updated_at";

/// A bind value of a query assembled at run time.
#[derive(Debug, Clone)]
pub(crate) enum Bind {
    Text(String),
    Int(i64),
}

macro_rules! bind_all {
    ($q:expr, $binds:expr) => {{
        let mut q = $q;
        for b in $binds {
            q = match b {
                Bind::Text(s) => q.bind(s.clone()),
                Bind::Int(i) => q.bind(*i),
            };
        }
        q
    }};
}
pub(crate) use bind_all;

impl Store {
    fn resource(&self, row: &impl DbRow) -> Result<Resource, StoreError> {
        let kind = row.text("kind")?;
        let id = row.text("id")?;
        let spec = row.text("spec")?;
        let secret = match row.opt_bytes("secret")? {
            Some(sealed) => {
                let plain = self.key.open(&sealed, &format!("resource:{id}"))?;
                Some(
                    String::from_utf8(plain)
                        .map_err(|e| StoreError::corrupt("secret", format!("{id}: {e}")))?,
                )
            }
            None => None,
        };
        Ok(Resource {
            kind: Kind::parse(&kind)
                .ok_or_else(|| StoreError::corrupt("resource", format!("{id}: kind {kind}")))?,
            tenant_id: row.opt_text("tenant_id")?,
            name: row.text("name")?,
            spec: serde_json::from_str(&spec)
                .map_err(|e| StoreError::corrupt("resource", format!("{id}: spec: {e}")))?,
            secret,
            managed_by: row.opt_text("managed_by")?,
            revision: row.int("revision")?,
            created_at: row.int("created_at")?,
            updated_at: row.int("updated_at")?,
            id,
        })
    }

    fn seal(&self, id: &str, secret: Option<&String>) -> Result<Option<Vec<u8>>, StoreError> {
        secret
            .map(|s| self.key.seal(s.as_bytes(), &format!("resource:{id}")))
            .transpose()
    }

    /// Creates a resource; its name must be free in its namespace.
    pub async fn create_resource(
        &self,
        input: ResourceInput,
        actor: &Actor,
    ) -> Result<Resource, StoreError> {
        let now = crate::ids::now_ms();
        let res = Resource {
            id: crate::ids::new_id(input.kind.id_prefix()),
            kind: input.kind,
            tenant_id: input.tenant_id,
            name: input.name,
            spec: input.spec,
            secret: input.secret,
            managed_by: input.managed_by,
            revision: 1,
            created_at: now,
            updated_at: now,
        };
        let sealed = self.seal(&res.id, res.secret.as_ref())?;
        let audit = AuditEntry::new(
            actor,
            "create",
            res.kind.as_str(),
            &res.id,
            &res.name,
            audit_tenant(&res),
        )
        .after(Some(audit_view(&res)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query(&format!(
                "INSERT INTO resources ({COLUMNS}, ns) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)"
            ))
            .bind(&res.id)
            .bind(res.kind.as_str())
            .bind(&res.tenant_id)
            .bind(&res.name)
            .bind(res.spec.to_string())
            .bind(sealed)
            .bind(&res.managed_by)
            .bind(res.revision)
            .bind(res.created_at)
            .bind(res.updated_at)
            .bind(namespace(res.kind, res.tenant_id.as_deref()))
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, res.kind.as_str(), &res.name))?;
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(res)
    }

    /// A resource by id, of the given kind.
    pub async fn resource_by_id(&self, kind: Kind, id: &str) -> Result<Resource, StoreError> {
        let row = on!(self, pool => {
            let row = sqlx::query(&format!("SELECT {COLUMNS} FROM resources WHERE kind = $1 AND id = $2"))
                .bind(kind.as_str())
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(|r| self.resource(&r)).transpose()?
        });
        row.ok_or_else(|| not_found(kind, id))
    }

    /// A resource by name; `tenant_id` matters only for apps, named within their tenant.
    pub async fn resource_by_name(
        &self,
        kind: Kind,
        tenant_id: Option<&str>,
        name: &str,
    ) -> Result<Resource, StoreError> {
        let ns = namespace(kind, tenant_id);
        let row = on!(self, pool => {
            let row = sqlx::query(&format!(
                "SELECT {COLUMNS} FROM resources WHERE kind = $1 AND ns = $2 AND name = $3"
            ))
            .bind(kind.as_str())
            .bind(ns)
            .bind(name)
            .fetch_optional(pool)
            .await?;
            row.map(|r| self.resource(&r)).transpose()?
        });
        row.ok_or_else(|| not_found(kind, name))
    }

    /// A page of resources of one kind, in creation order.
    pub async fn list_resources(
        &self,
        kind: Kind,
        filter: &ListFilter,
    ) -> Result<Page<Resource>, StoreError> {
        let mut sql = format!("SELECT {COLUMNS} FROM resources WHERE kind = $1");
        let mut binds = vec![Bind::Text(kind.as_str().to_owned())];
        if let Some(ids) = &filter.tenant_ids {
            let mut alts = Vec::new();
            for id in ids {
                binds.push(Bind::Text(id.clone()));
                alts.push(format!("tenant_id = ${}", binds.len()));
            }
            if filter.include_install {
                alts.push("tenant_id IS NULL".to_owned());
            }
            if alts.is_empty() {
                alts.push("1 = 0".to_owned());
            }
            sql.push_str(&format!(" AND ({})", alts.join(" OR ")));
        } else if !filter.include_install {
            sql.push_str(" AND tenant_id IS NOT NULL");
        }
        if let Some(after) = &filter.after {
            binds.push(Bind::Text(after.clone()));
            sql.push_str(&format!(" AND id > ${}", binds.len()));
        }
        let limit = filter.limit.clamp(1, 1000);
        binds.push(Bind::Int(i64::try_from(limit).unwrap_or(1000) + 1));
        sql.push_str(&format!(" ORDER BY id LIMIT ${}", binds.len()));
        let items = on!(self, pool => {
            let rows = bind_all!(sqlx::query(&sql), &binds).fetch_all(pool).await?;
            rows.iter().map(|r| self.resource(r)).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::cut(items, limit, |r| &r.id))
    }

    /// Every resource of every kind: what a snapshot is built from.
    pub async fn all_resources(&self) -> Result<Vec<Resource>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query(&format!("SELECT {COLUMNS} FROM resources ORDER BY id"))
                .fetch_all(pool)
                .await?;
            rows.iter().map(|r| self.resource(r)).collect()
        })
    }

    /// Replaces a resource's name, spec, secret and management, if it is still at `expected`
    /// (`None`: whatever revision it is at).
    pub async fn update_resource(
        &self,
        id: &str,
        expected: Option<i64>,
        input: ResourceInput,
        actor: &Actor,
    ) -> Result<Resource, StoreError> {
        let before = self.resource_by_id(input.kind, id).await?;
        check_revision(&before, expected)?;
        let after = Resource {
            name: input.name,
            spec: input.spec,
            secret: input.secret,
            managed_by: input.managed_by,
            revision: before.revision + 1,
            updated_at: crate::ids::now_ms(),
            ..before.clone()
        };
        let sealed = self.seal(&after.id, after.secret.as_ref())?;
        let audit = AuditEntry::new(
            actor,
            "update",
            after.kind.as_str(),
            &after.id,
            &after.name,
            audit_tenant(&after),
        )
        .before(Some(audit_view(&before)))
        .after(Some(audit_view(&after)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query(
                "UPDATE resources SET name = $1, ns = $2, spec = $3, secret = $4, managed_by = $5, \
                 revision = $6, updated_at = $7 WHERE id = $8 AND revision = $9",
            )
            .bind(&after.name)
            .bind(namespace(after.kind, after.tenant_id.as_deref()))
            .bind(after.spec.to_string())
            .bind(sealed)
            .bind(&after.managed_by)
            .bind(after.revision)
            .bind(after.updated_at)
            .bind(&after.id)
            .bind(before.revision)
            .execute(&mut *tx)
            .await
            .map_err(|e| StoreError::unique(e, after.kind.as_str(), &after.name))?;
            if done.rows_affected() == 0 {
                return Err(self.stale(&before).await);
            }
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(after)
    }

    /// Deletes a resource (and, through foreign keys, what hangs off it).
    pub async fn delete_resource(
        &self,
        kind: Kind,
        id: &str,
        expected: Option<i64>,
        actor: &Actor,
    ) -> Result<Resource, StoreError> {
        let before = self.resource_by_id(kind, id).await?;
        check_revision(&before, expected)?;
        let audit = AuditEntry::new(
            actor,
            "delete",
            kind.as_str(),
            &before.id,
            &before.name,
            audit_tenant(&before),
        )
        .before(Some(audit_view(&before)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("DELETE FROM resources WHERE id = $1 AND revision = $2")
                .bind(&before.id)
                .bind(before.revision)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(self.stale(&before).await);
            }
            tx.finish(&audit).await?
        });
        self.announce(rev);
        Ok(before)
    }

    async fn stale(&self, before: &Resource) -> StoreError {
        match self.resource_by_id(before.kind, &before.id).await {
            Ok(now) => StoreError::Stale {
                kind: before.kind.to_string(),
                name: before.name.clone(),
                current: now.revision,
                expected: before.revision,
            },
            Err(e) => e,
        }
    }
}

fn namespace(kind: Kind, tenant_id: Option<&str>) -> String {
    if kind.tenant_scoped_name() {
        tenant_id.unwrap_or_default().to_owned()
    } else {
        String::new()
    }
}

fn not_found(kind: Kind, name: &str) -> StoreError {
    StoreError::NotFound {
        kind: kind.to_string(),
        name: name.to_owned(),
    }
}

fn check_revision(current: &Resource, expected: Option<i64>) -> Result<(), StoreError> {
    match expected {
        Some(e) if e != current.revision => Err(StoreError::Stale {
            kind: current.kind.to_string(),
            name: current.name.clone(),
            current: current.revision,
            expected: e,
        }),
        _ => Ok(()),
    }
}

/// The tenant an audit entry is filed under: a tenant's own id for tenants.
fn audit_tenant(r: &Resource) -> Option<&str> {
    match r.kind {
        Kind::Tenant => Some(&r.id),
        _ => r.tenant_id.as_deref(),
    }
}

/// What the audit log keeps of a resource: everything but the secret, which is masked.
pub(crate) fn audit_view(r: &Resource) -> serde_json::Value {
    json!({
        "id": r.id,
        "kind": r.kind,
        "tenant_id": r.tenant_id,
        "name": r.name,
        "spec": r.spec,
        "secret": r.secret.as_ref().map(|_| "[redacted]"),
        "managed_by": r.managed_by,
        "revision": r.revision,
    })
}
