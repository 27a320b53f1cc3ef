//! The call log: search records (newest first), read one in full, export as CSV or JSON lines;
//! every query scoped to the tenants the caller may read.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use axum::Json;
use gatehouse_gateway::stored::{self, Stored};
use gatehouse_store::{CallFilter, CallRecord, Kind, StatusFilter};
use serde::Deserialize;
use serde_json::{json, Value};

use crate::auth::Caller;
use crate::error::ApiError;
use crate::handlers::resources::tenants_to_read;
use crate::view::time;
use crate::AdminState;

#[derive(Debug, Default, Clone, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallQuery {
    pub(crate) tenant: Option<String>,
    /// An app's name (within `tenant`, or the one app of that name the caller can read).
    pub(crate) app: Option<String>,
    /// The model name clients sent.
    pub(crate) model: Option<String>,
    /// A key's id (`gatehouse_<id>`) or a config key's name.
    pub(crate) key: Option<String>,
    /// The serving provider (REST: the service).
    pub(crate) provider: Option<String>,
    pub(crate) service: Option<String>,
    /// A status (`404`), a class (`5xx`) or `error` (400 and up).
    pub(crate) status: Option<String>,
    /// One of the tags the call carried (`x-gatehouse-tags`).
    pub(crate) tag: Option<String>,
    /// Text in the captured bodies or the error message.
    pub(crate) q: Option<String>,
    /// From this time (RFC 3339 or unix milliseconds), inclusive.
    pub(crate) from: Option<String>,
    /// To this time, exclusive.
    pub(crate) to: Option<String>,
    pub(crate) cursor: Option<String>,
    pub(crate) limit: Option<usize>,
    /// Exports: `jsonl` (default) or `csv`.
    pub(crate) format: Option<String>,
}

/// A time as RFC 3339 or unix milliseconds.
pub(crate) fn parse_time(field: &str, v: &str) -> Result<i64, ApiError> {
    if let Ok(ms) = v.parse::<i64>() {
        return Ok(ms);
    }
    v.parse::<jiff::Timestamp>()
        .map(|t| t.as_millisecond())
        .map_err(|e| {
            ApiError::field(
                field,
                format!("`{v}` is not a time: use RFC 3339 (2026-11-22T10:00:00Z) or unix milliseconds ({e})"),
            )
        })
}

/// The ids of the apps named `name` that the caller may read.
pub(crate) fn app_ids(
    stored: &Stored,
    tenant_ids: Option<&[String]>,
    name: &str,
) -> Result<Vec<String>, ApiError> {
    let ids: Vec<String> = stored
        .rows
        .values()
        .filter(|r| r.kind == Kind::App && r.name == name)
        .filter(|r| {
            tenant_ids.is_none_or(|ids| r.tenant_id.as_ref().is_some_and(|t| ids.contains(t)))
        })
        .map(|r| r.id.clone())
        .collect();
    if ids.is_empty() {
        return Err(ApiError::not_found("app", name));
    }
    Ok(ids)
}

async fn filter(
    state: &AdminState,
    caller: &Caller,
    q: CallQuery,
) -> Result<(CallFilter, Stored), ApiError> {
    let stored = stored::load(&state.store).await?;
    let tenant_ids = tenants_to_read(&stored, caller, q.tenant.as_deref())?;
    let app_id = match &q.app {
        None => None,
        Some(name) => {
            let ids = app_ids(&stored, tenant_ids.as_deref(), name)?;
            if ids.len() > 1 {
                return Err(ApiError::field(
                    "app",
                    format!("several tenants have an app named `{name}`: add `tenant`"),
                ));
            }
            ids.into_iter().next()
        }
    };
    let status = q
        .status
        .as_deref()
        .map(str::parse::<StatusFilter>)
        .transpose()
        .map_err(|e| ApiError::field("status", e))?;
    let from = q
        .from
        .as_deref()
        .map(|v| parse_time("from", v))
        .transpose()?;
    let to = q.to.as_deref().map(|v| parse_time("to", v)).transpose()?;
    Ok((
        CallFilter {
            tenant_ids,
            model: q.model,
            key_id: q.key,
            app_id,
            provider: q.provider,
            service: q.service,
            from,
            to,
            status,
            tag: q.tag,
            text: q.q.filter(|t| !t.is_empty()),
            before: q.cursor,
            limit: q.limit.unwrap_or(50),
        },
        stored,
    ))
}

/// A record as the API shows it: times as RFC 3339, the tenant's and app's names, cost in USD.
fn view(stored: &Stored, r: &CallRecord, full: bool) -> Value {
    let mut v = serde_json::to_value(r).unwrap_or(Value::Null);
    v["at"] = time(r.at);
    v["tenant"] = r
        .tenant_id
        .as_ref()
        .and_then(|t| stored.tenant_names.get(t))
        .map_or(Value::Null, |n| Value::from(n.clone()));
    v["app"] = r
        .app_id
        .as_ref()
        .and_then(|id| stored.rows.values().find(|row| &row.id == id))
        .map_or(Value::Null, |row| Value::from(row.name.clone()));
    v["cost_usd"] = Value::from(r.cost_nano as f64 / 1e9);
    if !full {
        if let Some(o) = v.as_object_mut() {
            o.remove("request_body");
            o.remove("response_body");
        }
    }
    v
}

/// Owners read every record (the file's static keys' included); members their tenants'.
pub(crate) async fn list(
    state: &AdminState,
    caller: &Caller,
    q: CallQuery,
) -> Result<Json<Value>, ApiError> {
    let (f, stored) = filter(state, caller, q).await?;
    let page = state.store.list_calls(&f).await?;
    let items: Vec<Value> = page.items.iter().map(|r| view(&stored, r, false)).collect();
    Ok(Json(
        json!({"items": items, "next_cursor": page.next_cursor}),
    ))
}

/// One record in full, bodies included (when its capture policy kept them).
pub(crate) async fn get(
    state: &AdminState,
    caller: &Caller,
    id: &str,
) -> Result<Json<Value>, ApiError> {
    let stored = stored::load(&state.store).await?;
    let r = state
        .store
        .get_call(id)
        .await?
        .ok_or_else(|| ApiError::not_found("call", id))?;
    // A record of another tenant is as absent as one that does not exist.
    if !caller.sees(r.tenant_id.as_deref()) {
        return Err(ApiError::not_found("call", id));
    }
    Ok(Json(view(&stored, &r, true)))
}

const CSV_COLUMNS: &[&str] = &[
    "id",
    "request_id",
    "at",
    "tenant",
    "app",
    "key_id",
    "end_user",
    "client_ip",
    "surface",
    "service",
    "route",
    "model_asked",
    "model_served",
    "provider",
    "status",
    "error_code",
    "stream",
    "duration_ms",
    "upstream_ms",
    "overhead_us",
    "ttft_ms",
    "input_tokens",
    "output_tokens",
    "cached_tokens",
    "reasoning_tokens",
    "cost_usd",
    "tags",
];

fn csv_row(v: &Value) -> Vec<String> {
    CSV_COLUMNS
        .iter()
        .map(|c| match &v[*c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            Value::Array(a) => a
                .iter()
                .filter_map(Value::as_str)
                .collect::<Vec<_>>()
                .join(","),
            other => other.to_string(),
        })
        .collect()
}

fn csv_line(fields: &[String]) -> Result<Vec<u8>, ApiError> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(fields)
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    w.into_inner()
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Every matching record, streamed page by page (newest first) as CSV or JSON lines, so an
/// export of millions of records holds one page in memory.
pub(crate) async fn export(
    state: &AdminState,
    caller: &Caller,
    q: CallQuery,
) -> Result<Response, ApiError> {
    let csv = match q.format.as_deref() {
        None | Some("jsonl") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(ApiError::field(
                "format",
                format!("`{other}`: use csv or jsonl"),
            ))
        }
    };
    let cq = CallQuery {
        cursor: None,
        limit: Some(1000),
        ..q
    };
    let (f, stored) = filter(state, caller, cq).await?;
    let store = state.store.clone();
    let header = if csv {
        let cols: Vec<String> = CSV_COLUMNS.iter().map(|c| (*c).to_owned()).collect();
        Some(csv_line(&cols)?)
    } else {
        None
    };
    let pages = futures_util::stream::unfold((Some(f), header), move |(f, header)| {
        let store = store.clone();
        let stored = stored.clone();
        async move {
            if let Some(h) = header {
                return Some((Ok::<_, std::io::Error>(h), (f, None)));
            }
            let mut f = f?;
            let page = match store.list_calls(&f).await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "call export: the store failed mid-export");
                    return Some((Err(std::io::Error::other(e.to_string())), (None, None)));
                }
            };
            let mut out = Vec::new();
            for r in &page.items {
                let v = view(&stored, r, false);
                if csv {
                    match csv_line(&csv_row(&v)) {
                        Ok(line) => out.extend(line),
                        Err(e) => {
                            return Some((Err(std::io::Error::other(e.to_string())), (None, None)))
                        }
                    }
                } else {
                    out.extend(v.to_string().into_bytes());
                    out.push(b'\n');
                }
            }
            let next = page.next_cursor.map(|c| {
                f.before = Some(c);
                f
            });
            Some((Ok(out), (next, None)))
        }
    });
    let (ctype, ext) = if csv {
        ("text/csv; charset=utf-8", "csv")
    } else {
        ("application/x-ndjson", "jsonl")
    };
    Ok((
        [
            (http::header::CONTENT_TYPE, ctype.to_owned()),
            (
                http::header::CONTENT_DISPOSITION,
                format!("attachment; filename=\"calls.{ext}\""),
            ),
        ],
        Body::from_stream(pages),
    )
        .into_response())
}
