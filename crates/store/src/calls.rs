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
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
    /// The end user the client named (OpenAI's `user`, or `x-gatehouse-end-user`).
    #[serde(default)]
    pub end_user: Option<String>,
    #[serde(default)]
    pub client_ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
    /// The client's dialect: `openai`, `anthropic`, `rest`.
    #[serde(default = "openai")]
    pub dialect: String,
    /// The REST route that matched.
    #[serde(default)]
    pub route: Option<String>,
    #[serde(default)]
    pub error_message: Option<String>,
    /// Time spent waiting on upstreams (every attempt, to the last byte).
    #[serde(default)]
    pub upstream_ms: i64,
    /// The gateway's own share: total minus upstream time, in microseconds.
    #[serde(default)]
    pub overhead_us: i64,
    /// Streams: time to the first content byte sent to the client.
    #[serde(default)]
    pub ttft_ms: Option<i64>,
    #[serde(default)]
    pub reasoning_tokens: i64,
    /// From the `x-gatehouse-tags` header.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Captured by policy, size-capped and redacted.
    #[serde(default)]
    pub request_body: Option<String>,
    #[serde(default)]
    pub response_body: Option<String>,
}

fn openai() -> String {
    "openai".to_owned()
}

/// Which records to list.
#[derive(Debug, Clone, Default)]
pub struct CallFilter {
    pub tenant_ids: Option<Vec<String>>,
    pub model: Option<String>,
    pub key_id: Option<String>,
    pub app_id: Option<String>,
    pub provider: Option<String>,
    pub service: Option<String>,
    /// `at >= from` (unix ms).
    pub from: Option<i64>,
    /// `at < to` (unix ms).
    pub to: Option<i64>,
    pub status: Option<StatusFilter>,
    /// Records carrying this tag.
    pub tag: Option<String>,
    /// Text found in the captured bodies or the error message (case-insensitive).
    pub text: Option<String>,
    /// Records strictly older than this id (pages run newest first).
    pub before: Option<String>,
    pub limit: usize,
}

/// A status, a class (`4xx`), or every failure (`error`: status 400 and up).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StatusFilter {
    Exact(i64),
    Class(i64),
    Error,
}

impl std::str::FromStr for StatusFilter {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not a status: use a code (404), a class (4xx) or `error`");
        match s {
            "error" => Ok(Self::Error),
            _ if s.len() == 3 && s.ends_with("xx") => s[..1]
                .parse::<i64>()
                .ok()
                .filter(|c| (1..=5).contains(c))
                .map(Self::Class)
                .ok_or_else(bad),
            _ => s
                .parse::<i64>()
                .ok()
                .filter(|c| (100..=599).contains(c))
                .map(Self::Exact)
                .ok_or_else(bad),
        }
    }
}

const COLUMNS: &str = "id, request_id, at, tenant_id, app_id, key_id, surface, service, model_asked, model_served, provider, status, error_code, attempts, stream, duration_ms, input_tokens, output_tokens, cached_tokens, cost_nano, end_user, client_ip, user_agent, dialect, route, error_message, upstream_ms, overhead_us, ttft_ms, reasoning_tokens, tags, request_body, response_body";
/// How many columns a record has (binds per row).
const WIDTH: usize = 33;

fn record(row: &impl DbRow) -> Result<CallRecord, StoreError> {
    let attempts = row.text("attempts")?;
    let tags = row.text("tags")?;
    Ok(CallRecord {
        tags: serde_json::from_str(&tags).map_err(|e| StoreError::corrupt("call record", e))?,
        end_user: row.opt_text("end_user")?,
        client_ip: row.opt_text("client_ip")?,
        user_agent: row.opt_text("user_agent")?,
        dialect: row.text("dialect")?,
        route: row.opt_text("route")?,
        error_message: row.opt_text("error_message")?,
        upstream_ms: row.int("upstream_ms")?,
        overhead_us: row.int("overhead_us")?,
        ttft_ms: row.opt_int("ttft_ms")?,
        reasoning_tokens: row.int("reasoning_tokens")?,
        request_body: row.opt_text("request_body")?,
        response_body: row.opt_text("response_body")?,
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
    /// Writes a batch of records in one transaction, with the per-minute rollups they add to.
    /// A record already written is skipped (and not counted again), so a batch replayed from the
    /// spill journal cannot duplicate anything.
    pub async fn insert_calls(&self, batch: &[CallRecord]) -> Result<(), StoreError> {
        if batch.is_empty() {
            return Ok(());
        }
        let backend = self.backend();
        let sql = insert_sql(batch.len(), backend);
        on!(self, pool => {
            let mut tx = pool.begin().await?;
            let mut q = sqlx::query(&sql);
            for r in batch {
                q = q
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
                    .bind(&r.end_user)
                    .bind(&r.client_ip)
                    .bind(&r.user_agent)
                    .bind(&r.dialect)
                    .bind(&r.route)
                    .bind(&r.error_message)
                    .bind(r.upstream_ms)
                    .bind(r.overhead_us)
                    .bind(r.ttft_ms)
                    .bind(r.reasoning_tokens)
                    .bind(serde_json::to_string(&r.tags).unwrap_or_else(|_| "[]".into()))
                    .bind(&r.request_body)
                    .bind(&r.response_body);
            }
            let rows = q.fetch_all(&mut *tx).await?;
            let mut new = std::collections::HashSet::with_capacity(rows.len());
            for row in &rows {
                new.insert(row.text("id")?);
            }
            for (table, width, keys) in crate::rollups::TABLES {
                let rollups: Vec<_> =
                    crate::rollups::of(batch.iter().filter(|r| new.contains(&r.id)), width, keys)
                        .into_iter()
                        .collect();
                for chunk in rollups.chunks(crate::rollups::ROWS) {
                    let sql = crate::rollups::upsert_sql(table, chunk.len(), backend);
                    let mut q = sqlx::query(&sql);
                    for (k, v) in chunk {
                        q = crate::rollups::bind(q, k, v);
                    }
                    q.execute(&mut *tx).await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// One record, in full.
    pub async fn get_call(&self, id: &str) -> Result<Option<CallRecord>, StoreError> {
        let sql = format!("SELECT {COLUMNS} FROM call_records WHERE id = $1");
        on!(self, pool => {
            let row = sqlx::query(&sql).bind(id).fetch_optional(pool).await?;
            row.as_ref().map(record).transpose()
        })
    }

    /// A page of records, newest first.
    pub async fn list_calls(&self, f: &CallFilter) -> Result<Page<CallRecord>, StoreError> {
        let mut q = Query::new(&format!("SELECT {COLUMNS} FROM call_records"));
        if let Some(ids) = &f.tenant_ids {
            q.any_of("tenant_id", ids);
        }
        for (col, v) in [
            ("model_asked", &f.model),
            ("key_id", &f.key_id),
            ("app_id", &f.app_id),
            ("provider", &f.provider),
            ("service", &f.service),
        ] {
            if let Some(v) = v {
                q.compare(col, "=", v);
            }
        }
        if let Some(from) = f.from {
            q.compare_int("at", ">=", from);
        }
        if let Some(to) = f.to {
            q.compare_int("at", "<", to);
        }
        match f.status {
            Some(StatusFilter::Exact(s)) => q.compare_int("status", "=", s),
            Some(StatusFilter::Class(c)) => {
                q.compare_int("status", ">=", c * 100);
                q.compare_int("status", "<", c * 100 + 100);
            }
            Some(StatusFilter::Error) => q.compare_int("status", ">=", 400),
            None => {}
        }
        if let Some(tag) = &f.tag {
            // Tags are stored as a JSON array of strings: match one whole element.
            let quoted = serde_json::to_string(tag).unwrap_or_default();
            q.contains(&["tags"], &quoted, false);
        }
        if let Some(text) = &f.text {
            let insensitive = matches!(self.backend(), crate::Backend::Postgres);
            q.contains(
                &["request_body", "response_body", "error_message"],
                text,
                insensitive,
            );
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

    /// Deletes up to `limit` records older than `before` (unix ms); returns how many went.
    /// Retention calls it in small chunks so writers never wait long behind it.
    pub async fn prune_calls(&self, before: i64, limit: i64) -> Result<u64, StoreError> {
        let sql = "DELETE FROM call_records WHERE id IN (SELECT id FROM call_records WHERE at < $1 ORDER BY at LIMIT $2)";
        Ok(on!(self, pool => {
            sqlx::query(sql).bind(before).bind(limit).execute(pool).await?.rows_affected()
        }))
    }
}

/// `INSERT … VALUES (…), (…) ON CONFLICT DO NOTHING RETURNING id`: one statement per batch,
/// which names the records it actually added.
fn insert_sql(rows: usize, backend: crate::Backend) -> String {
    let mut sql = format!("INSERT INTO call_records ({COLUMNS}) VALUES ");
    for r in 0..rows {
        if r > 0 {
            sql.push_str(", ");
        }
        sql.push('(');
        for c in 0..WIDTH {
            if c > 0 {
                sql.push_str(", ");
            }
            sql.push_str(&crate::db::param(backend, r * WIDTH + c + 1));
        }
        sql.push(')');
    }
    sql.push_str(" ON CONFLICT (id) DO NOTHING RETURNING id");
    sql
}
