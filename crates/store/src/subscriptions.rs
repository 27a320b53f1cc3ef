//! Subscriptions: an app asks to call a service; the service's owner approves or rejects.
//!
//! States: `pending` → `approved` | `rejected`, and `approved` → `revoked`. A service that does
//! not require approval is approved on request. Each decision records who made it and why.

use serde_json::json;

use crate::db::{on, DbRow, Tx};
use crate::records::{Actor, AuditEntry, Page, Resource, SubState, Subscription};
use crate::resources::{bind_all, Bind};
use crate::{Store, StoreError};

/// Which subscriptions to list.
#[derive(Debug, Clone, Default)]
pub struct SubscriptionFilter {
    /// Subscriptions whose app belongs to one of these tenants…
    pub app_tenants: Option<Vec<String>>,
    /// …or whose service belongs to one of these (`None` in the list: the install's services).
    pub service_tenants: Option<Vec<Option<String>>>,
    pub app_id: Option<String>,
    pub state: Option<SubState>,
    pub after: Option<String>,
    pub limit: usize,
}

const SELECT: &str = "SELECT s.id, s.app_id, a.name AS app_name, a.tenant_id AS app_tenant_id, \
     s.service_id, v.name AS service_name, v.tenant_id AS service_tenant_id, s.state, \
     s.requested_by, s.decided_by, s.reason, s.revision, s.created_at, s.updated_at \
     FROM subscriptions s JOIN resources a ON a.id = s.app_id JOIN resources v ON v.id = s.service_id";

fn subscription(row: &impl DbRow) -> Result<Subscription, StoreError> {
    let id = row.text("id")?;
    let state = row.text("state")?;
    Ok(Subscription {
        state: SubState::parse(&state)
            .ok_or_else(|| StoreError::corrupt("subscription", format!("{id}: state {state}")))?,
        app_id: row.text("app_id")?,
        app_name: row.text("app_name")?,
        app_tenant_id: row.opt_text("app_tenant_id")?.unwrap_or_default(),
        service_id: row.text("service_id")?,
        service_name: row.text("service_name")?,
        service_tenant_id: row.opt_text("service_tenant_id")?,
        requested_by: row.text("requested_by")?,
        decided_by: row.opt_text("decided_by")?,
        reason: row.opt_text("reason")?,
        revision: row.int("revision")?,
        created_at: row.int("created_at")?,
        updated_at: row.int("updated_at")?,
        id,
    })
}

fn view(s: &Subscription) -> serde_json::Value {
    json!({"app": s.app_name, "service": s.service_name, "state": s.state,
           "decided_by": s.decided_by, "reason": s.reason})
}

impl Store {
    /// Asks for `app` to call `service`; approved at once unless the service requires approval.
    /// Asking again after a rejection or revocation reopens the same subscription.
    pub async fn subscribe(
        &self,
        app: &Resource,
        service: &Resource,
        requires_approval: bool,
        actor: &Actor,
    ) -> Result<Subscription, StoreError> {
        let state = if requires_approval {
            SubState::Pending
        } else {
            SubState::Approved
        };
        let existing = self.subscription_of(&app.id, &service.id).await?;
        if let Some(s) = &existing {
            if matches!(s.state, SubState::Pending | SubState::Approved) {
                return Err(StoreError::Conflict {
                    kind: "subscription".into(),
                    name: format!("{} → {} ({})", app.name, service.name, s.state.as_str()),
                });
            }
        }
        let now = crate::ids::now_ms();
        let id = existing
            .as_ref()
            .map_or_else(|| crate::ids::new_id("sub_"), |s| s.id.clone());
        let decided_by = (!requires_approval).then(|| "auto".to_owned());
        let audit = AuditEntry::new(
            actor,
            "request",
            "subscription",
            &id,
            &format!("{} → {}", app.name, service.name),
            app.tenant_id.as_deref(),
        )
        .before(existing.as_ref().map(view))
        .after(Some(
            json!({"app": app.name, "service": service.name, "state": state}),
        ));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            sqlx::query("INSERT INTO subscriptions (id, app_id, service_id, state, requested_by, decided_by, reason, revision, created_at, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, NULL, 1, $7, $8) \
                         ON CONFLICT (app_id, service_id) DO UPDATE SET state = excluded.state, requested_by = excluded.requested_by, \
                         decided_by = excluded.decided_by, reason = NULL, revision = subscriptions.revision + 1, updated_at = excluded.updated_at")
                .bind(&id)
                .bind(&app.id)
                .bind(&service.id)
                .bind(state.as_str())
                .bind(&actor.0)
                .bind(&decided_by)
                .bind(now)
                .bind(now)
                .execute(&mut *tx)
                .await?;
            tx.finish(&audit).await?
        });
        self.announce(rev);
        self.subscription(&id).await
    }

    /// Moves a subscription to `to` (approved, rejected or revoked), if the move is allowed and
    /// the subscription is still at `expected` (`None`: any revision).
    pub async fn decide(
        &self,
        id: &str,
        to: SubState,
        expected: Option<i64>,
        reason: Option<&str>,
        actor: &Actor,
    ) -> Result<Subscription, StoreError> {
        let before = self.subscription(id).await?;
        let allowed = matches!(
            (before.state, to),
            (SubState::Pending, SubState::Approved | SubState::Rejected)
                | (SubState::Rejected, SubState::Approved)
                | (SubState::Approved | SubState::Pending, SubState::Revoked)
        );
        if !allowed {
            return Err(StoreError::Conflict {
                kind: "subscription".into(),
                name: format!(
                    "{} → {} is {}; it cannot become {}",
                    before.app_name,
                    before.service_name,
                    before.state.as_str(),
                    to.as_str()
                ),
            });
        }
        if let Some(e) = expected.filter(|e| *e != before.revision) {
            return Err(StoreError::Stale {
                kind: "subscription".into(),
                name: id.to_owned(),
                current: before.revision,
                expected: e,
            });
        }
        let action = match to {
            SubState::Approved => "approve",
            SubState::Rejected => "reject",
            SubState::Revoked => "revoke",
            SubState::Pending => "request",
        };
        let mut after = before.clone();
        after.state = to;
        after.decided_by = Some(actor.0.clone());
        after.reason = reason.map(str::to_owned);
        let audit = AuditEntry::new(
            actor,
            action,
            "subscription",
            id,
            &format!("{} → {}", before.app_name, before.service_name),
            Some(&before.app_tenant_id),
        )
        .before(Some(view(&before)))
        .after(Some(view(&after)));
        let rev = on!(self, pool => {
            let mut tx = pool.begin().await?;
            let done = sqlx::query("UPDATE subscriptions SET state = $1, decided_by = $2, reason = $3, \
                                    revision = revision + 1, updated_at = $4 WHERE id = $5 AND revision = $6")
                .bind(to.as_str())
                .bind(&actor.0)
                .bind(reason)
                .bind(crate::ids::now_ms())
                .bind(id)
                .bind(before.revision)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Err(StoreError::Stale { kind: "subscription".into(), name: id.to_owned(), current: before.revision + 1, expected: before.revision });
            }
            tx.finish(&audit).await?
        });
        self.announce(rev);
        self.subscription(id).await
    }

    pub async fn subscription(&self, id: &str) -> Result<Subscription, StoreError> {
        let found = on!(self, pool => {
            let row = sqlx::query(&format!("{SELECT} WHERE s.id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?;
            row.map(|r| subscription(&r)).transpose()?
        });
        found.ok_or_else(|| StoreError::NotFound {
            kind: "subscription".into(),
            name: id.to_owned(),
        })
    }

    async fn subscription_of(
        &self,
        app_id: &str,
        service_id: &str,
    ) -> Result<Option<Subscription>, StoreError> {
        on!(self, pool => {
            let row = sqlx::query(&format!("{SELECT} WHERE s.app_id = $1 AND s.service_id = $2"))
                .bind(app_id)
                .bind(service_id)
                .fetch_optional(pool)
                .await?;
            row.map(|r| subscription(&r)).transpose()
        })
    }

    /// A page of subscriptions matching `filter`, in creation order.
    pub async fn list_subscriptions(
        &self,
        filter: &SubscriptionFilter,
    ) -> Result<Page<Subscription>, StoreError> {
        let mut sql = format!("{SELECT} WHERE 1 = 1");
        let mut binds = Vec::new();
        let mut sides = Vec::new();
        if let Some(tenants) = &filter.app_tenants {
            for t in tenants {
                binds.push(Bind::Text(t.clone()));
                sides.push(format!("a.tenant_id = ${}", binds.len()));
            }
        }
        if let Some(tenants) = &filter.service_tenants {
            for t in tenants {
                match t {
                    Some(t) => {
                        binds.push(Bind::Text(t.clone()));
                        sides.push(format!("v.tenant_id = ${}", binds.len()));
                    }
                    None => sides.push("v.tenant_id IS NULL".to_owned()),
                }
            }
        }
        if filter.app_tenants.is_some() || filter.service_tenants.is_some() {
            if sides.is_empty() {
                sides.push("1 = 0".to_owned());
            }
            sql.push_str(&format!(" AND ({})", sides.join(" OR ")));
        }
        if let Some(app) = &filter.app_id {
            binds.push(Bind::Text(app.clone()));
            sql.push_str(&format!(" AND s.app_id = ${}", binds.len()));
        }
        if let Some(state) = filter.state {
            binds.push(Bind::Text(state.as_str().to_owned()));
            sql.push_str(&format!(" AND s.state = ${}", binds.len()));
        }
        if let Some(after) = &filter.after {
            binds.push(Bind::Text(after.clone()));
            sql.push_str(&format!(" AND s.id > ${}", binds.len()));
        }
        let limit = filter.limit.clamp(1, 1000);
        binds.push(Bind::Int(i64::try_from(limit).unwrap_or(1000) + 1));
        sql.push_str(&format!(" ORDER BY s.id LIMIT ${}", binds.len()));
        let items = on!(self, pool => {
            let rows = bind_all!(sqlx::query(&sql), &binds).fetch_all(pool).await?;
            rows.iter().map(subscription).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::cut(items, limit, |s| &s.id))
    }

    /// Every subscription, whatever its state: for the snapshot, which explains refusals.
    pub async fn all_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query(&format!("{SELECT} ORDER BY s.id"))
                .fetch_all(pool)
                .await?;
            rows.iter().map(subscription).collect()
        })
    }

    /// Every approved subscription.
    pub async fn approved_subscriptions(&self) -> Result<Vec<Subscription>, StoreError> {
        on!(self, pool => {
            let rows = sqlx::query(&format!("{SELECT} WHERE s.state = 'approved'"))
                .fetch_all(pool)
                .await?;
            rows.iter().map(subscription).collect()
        })
    }
}
