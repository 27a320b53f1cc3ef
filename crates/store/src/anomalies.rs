//! Anomalies found in the rollups: kept so they can be listed, and recorded once per series,
//! measure and window however many nodes found them.

use serde::Serialize;

use crate::db::{on, DbRow};
use crate::query::Query;
use crate::records::Page;
use crate::resources::{bind_all, Bind};
use crate::{Store, StoreError};

/// One finding.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub id: String,
    pub at: i64,
    pub window_start: i64,
    pub window_end: i64,
    /// `key`, `app`, `tenant` or `model`.
    pub dimension: String,
    /// The key id, app id, tenant id or model name.
    pub value: String,
    pub tenant_id: Option<String>,
    /// `requests`, `error_rate`, `cost_usd` or `tokens`.
    pub metric: String,
    pub observed: f64,
    pub baseline: f64,
    pub score: f64,
    /// `seasonal` or `ewma`.
    pub method: String,
    /// What was done (`key_revoked`), if anything.
    pub action: Option<String>,
    /// The webhook's outcome, when one is configured.
    pub delivery: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct AnomalyFilter {
    pub tenant_ids: Option<Vec<String>>,
    pub before: Option<String>,
    pub limit: usize,
}

const COLUMNS: &str = "id, at, window_start, window_end, dimension, value, tenant_id, metric, observed, baseline, score, method, action, delivery";

fn anomaly(row: &impl DbRow) -> Result<Anomaly, StoreError> {
    Ok(Anomaly {
        id: row.text("id")?,
        at: row.int("at")?,
        window_start: row.int("window_start")?,
        window_end: row.int("window_end")?,
        dimension: row.text("dimension")?,
        value: row.text("value")?,
        tenant_id: row.opt_text("tenant_id")?,
        metric: row.text("metric")?,
        observed: row.float("observed")?,
        baseline: row.float("baseline")?,
        score: row.float("score")?,
        method: row.text("method")?,
        action: row.opt_text("action")?,
        delivery: row.opt_text("delivery")?,
    })
}

impl Store {
    /// Records a finding; false when this series, measure and window was already recorded
    /// (by this node or another), so exactly one node reports it.
    pub async fn record_anomaly(&self, a: &Anomaly) -> Result<bool, StoreError> {
        let sql = format!(
            "INSERT INTO anomalies ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) \
             ON CONFLICT (dimension, value, metric, window_start) DO NOTHING"
        );
        Ok(on!(self, pool => {
            sqlx::query(&sql)
                .bind(&a.id)
                .bind(a.at)
                .bind(a.window_start)
                .bind(a.window_end)
                .bind(&a.dimension)
                .bind(&a.value)
                .bind(&a.tenant_id)
                .bind(&a.metric)
                .bind(a.observed)
                .bind(a.baseline)
                .bind(a.score)
                .bind(&a.method)
                .bind(&a.action)
                .bind(&a.delivery)
                .execute(pool)
                .await?
                .rows_affected()
                == 1
        }))
    }

    /// Notes what was done about a finding and how its webhook went.
    pub async fn anomaly_outcome(
        &self,
        id: &str,
        action: Option<&str>,
        delivery: Option<&str>,
    ) -> Result<(), StoreError> {
        on!(self, pool => {
            sqlx::query("UPDATE anomalies SET action = COALESCE($1, action), delivery = COALESCE($2, delivery) WHERE id = $3")
                .bind(action)
                .bind(delivery)
                .bind(id)
                .execute(pool)
                .await?;
        });
        Ok(())
    }

    /// Findings, newest first.
    pub async fn list_anomalies(&self, f: &AnomalyFilter) -> Result<Page<Anomaly>, StoreError> {
        let mut q = Query::new(&format!("SELECT {COLUMNS} FROM anomalies"));
        if let Some(ids) = &f.tenant_ids {
            q.any_of("tenant_id", ids);
        }
        if let Some(before) = &f.before {
            q.compare("id", "<", before);
        }
        let limit = q.page("id DESC", f.limit);
        let items = on!(self, pool => {
            let rows = bind_all!(sqlx::query(&q.sql), &q.binds).fetch_all(pool).await?;
            rows.iter().map(anomaly).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::cut(items, limit, |a| &a.id))
    }
}
