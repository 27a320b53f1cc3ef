//! Reading the audit log (entries are written by each change's own transaction, in `db`).

use crate::db::{on, DbRow};
use crate::query::Query;
use crate::records::{AuditEntry, Page};
use crate::resources::{bind_all, Bind};
use crate::{Store, StoreError};

/// Which audit entries to read.
#[derive(Debug, Clone, Default)]
pub struct AuditFilter {
    /// Only entries filed under these tenants (`None`: all, install-level ones included).
    pub tenant_ids: Option<Vec<String>>,
    /// Entries strictly older than this id (pages run newest first).
    pub before: Option<String>,
    pub limit: usize,
}

fn entry(row: &impl DbRow) -> Result<AuditEntry, StoreError> {
    let json = |col: &str| -> Result<Option<serde_json::Value>, StoreError> {
        row.opt_text(col)?
            .map(|t| serde_json::from_str(&t).map_err(|e| StoreError::corrupt("audit entry", e)))
            .transpose()
    };
    Ok(AuditEntry {
        id: row.text("id")?,
        at: row.int("at")?,
        actor: row.text("actor")?,
        tenant_id: row.opt_text("tenant_id")?,
        action: row.text("action")?,
        resource_kind: row.text("resource_kind")?,
        resource_id: row.text("resource_id")?,
        resource_name: row.text("resource_name")?,
        before: json("before")?,
        after: json("after")?,
    })
}

impl Store {
    /// A page of audit entries, newest first.
    pub async fn list_audit(&self, filter: &AuditFilter) -> Result<Page<AuditEntry>, StoreError> {
        let mut q = Query::new(
            "SELECT id, at, actor, tenant_id, action, resource_kind, resource_id, \
             resource_name, before, after FROM audit",
        );
        if let Some(ids) = &filter.tenant_ids {
            q.any_of("tenant_id", ids);
        }
        if let Some(before) = &filter.before {
            q.compare("id", "<", before);
        }
        let limit = q.page("id DESC", filter.limit);
        let items = on!(self, pool => {
            let rows = bind_all!(sqlx::query(&q.sql), &q.binds).fetch_all(pool).await?;
            rows.iter().map(entry).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::cut(items, limit, |e| &e.id))
    }
}
