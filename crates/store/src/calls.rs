//! Call records: written in batches by the gateway's call log, read by the admin API.

use serde::{Deserialize, Serialize};

use crate::db::{on, DbRow};
use crate::query::Query;
use crate::records::Page;
use crate::resources::{bind_all, Bind};
use crate::{Store, StoreError};

/// One upstream attempt of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub provider: String,
    pub model: String,
    /// `ok`, an HTTP status, `timeout`, `unreachable`, `shed`…
    pub outcome: String,
}

/// One call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallRecord {
    /// Time-ordered (`cal_…`): pages follow it.
    pub id: String,
    /// The call's `x-request-id`.
    pub request_id: String,
    pub at: i64,
    pub tenant_id: Option<String>,
    pub app_id: Option<String>,
    pub key_id: String,
    /// `chat`, `completions`, `embeddings`, `rest`.
    pub surface: String,
    pub service: Option<String>,
    pub model_asked: String,
    pub model_served: Option<String>,
    pub provider: Option<String>,
    pub status: i64,
    pub error_code: Option<String>,
    pub attempts: Vec<Attempt>,
    pub stream: bool,
    pub duration_ms: i64,
    pub input_tokens: i64,
    pub output_tokens: i64,
    pub cached_tokens: i64,
    pub cost_nano: i64,
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub tenant_ids: Option<Vec<String>>,
    pub model: Option<String>,
    pub key_id: Option<String>,
    /// Records strictly older than this id (pages run newest first).
    pub before: Option<String>,
    pub limit: usize,
}

const COLUMNS: &str = "id, request_id, at, tenant_id, app_id, key_id, surface, service, model_asked, model_served, provider, status, error_code, attempts, stream, duration_ms, input_tokens, output_tokens, cached_tokens, cost_nano";

fn record(row: &impl DbRow) -> Result<CallRecord, StoreError> {
    let attempts = row.text("attempts")?;
    Ok(CallRecord {
        attempts: serde_json::from_str(&attempts)
            .map_err(|e| StoreError::corrupt("call record", e))?,
        id: row.text("id")?,
        request_id: row.text("request_id")?,
        at: row.int("at")?,
        tenant_id: row.opt_text("tenant_id")?,
        app_id: row.opt_text("app_id")?,
        key_id: row.text("key_id")?,
        surface: row.text("surface")?,
        service: row.opt_text("service")?,
        model_asked: row.text("model_asked")?,
        model_served: row.opt_text("model_served")?,
        provider: row.opt_text("provider")?,
        status: row.int("status")?,
        error_code: row.opt_text("error_code")?,
        stream: row.flag("stream")?,
        duration_ms: row.int("duration_ms")?,
        input_tokens: row.int("input_tokens")?,
        output_tokens: row.int("output_tokens")?,
        cached_tokens: row.int("cached_tokens")?,
        cost_nano: row.int("cost_nano")?,
    })
}

impl Store {
    /// Writes a batch of records in one transaction; a record already written is skipped, so a
    /// batch replayed from the spill journal cannot duplicate anything.
    pub async fn insert_calls(&self, batch: &[CallRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        on!(self, pool => {
            let mut tx = pool.begin().await?;
            for r in batch {
                sqlx::query(&format!(
                    "INSERT INTO call_records ({COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) ON CONFLICT (id) DO NOTHING"
                ))
                .bind(&r.id)
                .bind(&r.request_id)
                .bind(r.at)
                .bind(&r.tenant_id)
                .bind(&r.app_id)
                .bind(&r.key_id)
                .bind(&r.surface)
                .bind(&r.service)
                .bind(&r.model_asked)
                .bind(&r.model_served)
                .bind(&r.provider)
                .bind(r.status)
                .bind(&r.error_code)
                .bind(serde_json::to_string(&r.attempts).unwrap_or_else(|_| "[]".into()))
                .bind(r.stream)
                .bind(r.duration_ms)
                .bind(r.input_tokens)
                .bind(r.output_tokens)
                .bind(r.cached_tokens)
                .bind(r.cost_nano)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// A page of records, newest first.
    pub async fn list_calls(&self, f: &CallFilter) -> Result<Page<CallRecord>, StoreError> {
        let mut q = Query::new(&format!("SELECT {COLUMNS} FROM call_records"));
        if let Some(ids) = &f.tenant_ids {
            q.any_of("tenant_id", ids);
        }
        if let Some(m) = &f.model {
            q.compare("model_asked", "=", m);
        }
        if let Some(k) = &f.key_id {
            q.compare("key_id", "=", k);
        }
        if let Some(before) = &f.before {
            q.compare("id", "<", before);
        }
        let limit = q.page("id DESC", f.limit);
        let items = on!(self, pool => {
            let rows = bind_all!(sqlx::query(&q.sql), &q.binds).fetch_all(pool).await?;
            rows.iter().map(record).collect::<Result<Vec<_>, _>>()?
        });
        Ok(Page::cut(items, limit, |r| &r.id))
    }
}
