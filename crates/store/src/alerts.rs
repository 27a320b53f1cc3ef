//! Budget alerts: which threshold of which limit was crossed in which period, and whether its
//! webhook was delivered. Not admin changes: no audit entry, no revision bump.

use serde::Serialize;

use crate::db::{on, DbRow};
use crate::query::Query;
use crate::records::Page;
use crate::resources::{bind_all, Bind};
use crate::{Store, StoreError};

/// One alert.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AlertRecord {
    pub id: String,
    pub at: i64,
    pub tenant_id: Option<String>,
    pub policy: String,
    pub limit_label: String,
    /// The calendar period (`2026-11`), or `lifetime`.
    pub period: String,
    /// Percent of the limit.
    pub threshold: i64,
    /// Nano-USD used and allowed when the alert fired.
    pub used: i64,
    pub of: i64,
    pub webhook: String,
    /// `pending`, `delivered` or `failed`.
    pub status: String,
    pub attempts: i64,
    pub detail: Option<String>,
}

/// Which alerts to list.
#[derive(Debug, Clone, Default)]
pub struct AlertFilter {
    /// Only these tenants' alerts (`None`: all, the install's included).
    pub tenant_ids: Option<Vec<String>>,
    pub before: Option<String>,
    pub limit: usize,
}

const COLUMNS: &str = "id, at, tenant_id, policy, limit_label, period, threshold, used, of, webhook, status, attempts, detail";

fn alert(row: &impl DbRow) -> Result<AlertRecord, StoreError> {
    Ok(AlertRecord {
        id: row.text("id")?,
        at: row.int("at")?,
        tenant_id: row.opt_text("tenant_id")?,
        policy: row.text("policy")?,
        limit_label: row.text("limit_label")?,
        period: row.text("period")?,
        threshold: row.int("threshold")?,
        used: row.int("used")?,
        of: row.int("of")?,
        webhook: row.text("webhook")?,
        status: row.text("status")?,
        attempts: row.int("attempts")?,
        detail: row.opt_text("detail")?,
    })
}

impl Store {
    pub async fn record_alert(&self, a: &AlertRecord) -> Result<(), StoreError> {
        on!(self, pool => {
            sqlx::query(&format!("INSERT INTO alerts ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"))
                .bind(&a.id)
                .bind(a.at)
                .bind(&a.tenant_id)
                .bind(&a.policy)
                .bind(&a.limit_label)
                .bind(&a.period)
                .bind(a.threshold)
                .bind(a.used)
                .bind(a.of)
                .bind(&a.webhook)
                .bind(&a.status)
                .bind(a.attempts)
                .bind(&a.detail)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    pub async fn alert_delivery(
        &self,
        id: &str,
        status: &str,
        attempts: i64,
        detail: Option<&str>,
    ) -> Result<(), StoreError> {
        on!(self, pool => {
            sqlx::query("UPDATE alerts SET status = $1, attempts = $2, detail = $3 WHERE id = $4")
                .bind(status)
                .bind(attempts)
                .bind(detail)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// A page of alerts, newest first.
    pub async fn list_alerts(&self, filter: &AlertFilter) -> Result<Page<AlertRecord>, StoreError> {
        let mut q = Query::new(&format!("SELECT {COLUMNS} FROM alerts"));
        if let Some(ids) = &filter.tenant_ids {
            q.any_of("tenant_id", ids);
        }
        if let Some(before) = &filter.before {
            q.compare("id", "<", before);
        }
        let limit = q.page("id DESC", filter.limit);
        let items = on!(self, pool => {
            let rows = bind_all!(sqlx::query(&q.sql), &q.binds).fetch_all(pool).await?;
            rows.iter().map(alert).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::cut(items, limit, |a| &a.id))
    }
}
