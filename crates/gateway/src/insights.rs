//! What the call log tells without being asked.
//!
//! The anomaly detector: every `interval`, the last complete 15-minute window of each key, app,
//! tenant and model is compared with its own history (see `gatehouse_store::insights`) for
//! request rate, error rate, spend and tokens. A finding is stored once across the cluster, sent
//! to the webhook, and — when configured — an app key whose spend jumped past
//! `revoke_keys_over` times its baseline is revoked.
//!
//! Budget forecasts: a scope's hourly spend, forecast ahead, against each spend budget's
//! counter, gives the hour the budget runs out. The admin API answers them on request; the
//! detector checks every budget once an hour and reports one that will run out within a week,
//! once a day.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_policy::{Measure, Status};
use gatehouse_store::insights::{ewma, forecast, seasonal, Score};
use gatehouse_store::{AggRow, Aggregate, Anomaly, Dim, Kind, Store};
use serde_json::json;

use crate::alerts::Alerter;
use crate::config::{AnomalyCfg, Dimension, RawPolicy};
use crate::snapshot::Snapshot;
use crate::stored::Stored;

/// The window the detector judges.
pub const WINDOW_MS: i64 = 15 * 60_000;
const DAY_MS: i64 = 86_400_000;
/// Earlier windows the short-history baseline (EWMA) reads: four hours.
const RECENT: i64 = 16;

/// Below these a window is too small to call anomalous, whatever its score.
const MIN_REQUESTS: f64 = 20.0;
const MIN_COST_USD: f64 = 0.01;
const MIN_TOKENS: f64 = 1000.0;
/// And it must be at least this many times its baseline.
const MIN_RATIO: f64 = 2.0;

/// Runs the detector until the process ends; budgets are checked once an hour.
pub async fn run(
    store: Store,
    alerter: Arc<Alerter>,
    cfg: AnomalyCfg,
    data: crate::snapshot::Shared,
) {
    let Some(every) = cfg.interval else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut budgets_checked = i64::MIN;
    loop {
        tick.tick().await;
        let now = gatehouse_store::ids::now_ms();
        match detect(&store, &alerter, &cfg, now).await {
            Ok(found) if !found.is_empty() => {
                tracing::info!(anomalies = found.len(), "anomaly detector: new findings");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "anomaly detector: cannot read the rollups"),
        }
        if now - budgets_checked >= HOUR_MS {
            budgets_checked = now;
            let snap = data.load_full();
            if let Err(e) = check_budgets(&store, &alerter, &cfg, &snap, now).await {
                tracing::warn!(error = %e, "budget forecast: cannot read the rollups");
            }
        }
    }
}

const HOUR_MS: i64 = 3_600_000;
/// Hourly history a forecast reads.
const HISTORY_HOURS: i64 = 28 * 24;

/// Hourly spend (nano-USD) and requests of a scope, from its first hour with traffic in the
/// last four weeks to the last complete hour.
pub async fn hourly_history(
    store: &Store,
    tenant_ids: Option<Vec<String>>,
    filters: Vec<(Dim, String)>,
    now: i64,
) -> Result<(Vec<f64>, Vec<f64>), gatehouse_store::StoreError> {
    let end = now - now.rem_euclid(HOUR_MS);
    let rows = store
        .aggregate(&Aggregate {
            from: end - HISTORY_HOURS * HOUR_MS,
            to: end,
            tenant_ids,
            filters,
            step_ms: Some(HOUR_MS),
            ..Aggregate::default()
        })
        .await?;
    let Some(first) = rows.iter().filter_map(|r| r.t).min() else {
        return Ok((Vec::new(), Vec::new()));
    };
    let hours = usize::try_from((end - first) / HOUR_MS).unwrap_or(0);
    let (mut cost, mut requests) = (vec![0.0; hours], vec![0.0; hours]);
    for r in &rows {
        if let Some(i) =
            r.t.and_then(|t| usize::try_from((t - first) / HOUR_MS).ok())
                .filter(|i| *i < hours)
        {
            cost[i] += r.cost_nano as f64;
            requests[i] += r.requests as f64;
        }
    }
    Ok((cost, requests))
}

fn tenant_id(stored: &Stored, name: &str) -> Option<String> {
    stored.row(Kind::Tenant, None, name).map(|r| r.id.clone())
}

fn app_id(stored: &Stored, tenant: &str, app: &str) -> Option<String> {
    stored
        .rows
        .get(&crate::stored::row_key(Kind::App, Some(tenant), app))
        .map(|r| r.id.clone())
}

/// The rollup filters of a policy's scope (with the counted value of an `each` policy:
/// a tenant's name, or `tenant/app`); `None` when the scope names what does not exist.
pub fn policy_filters(
    stored: &Stored,
    p: &RawPolicy,
    each: Option<&str>,
) -> Option<Vec<(Dim, String)>> {
    let mut f = Vec::new();
    let scope = &p.applies_to;
    let tenant = scope.tenant.as_deref().or(p.tenant.as_deref());
    if let Some(t) = tenant {
        f.push((Dim::Tenant, tenant_id(stored, t)?));
    }
    if let Some(a) = &scope.app {
        f.push((Dim::App, app_id(stored, tenant?, a)?));
    }
    if let Some(k) = &scope.key {
        let id = if stored.keys.iter().any(|x| &x.key.id == k) {
            format!("{}{k}", gatehouse_store::KEY_PREFIX)
        } else {
            k.clone()
        };
        f.push((Dim::Key, id));
    }
    if let Some(m) = &scope.model {
        f.push((Dim::Model, m.clone()));
    }
    if let Some(s) = &scope.service {
        f.push((Dim::Service, s.clone()));
    }
    match (p.each, each) {
        (Some(Dimension::Tenant), Some(t)) => f.push((Dim::Tenant, tenant_id(stored, t)?)),
        (Some(Dimension::App), Some(ta)) => {
            let (t, a) = ta.split_once('/')?;
            f.push((Dim::App, app_id(stored, t, a)?));
        }
        (None, _) => {}
        _ => return None,
    }
    Some(f)
}

/// A policy's counters as they stand (for `each` policies: `value`'s), without charging.
pub async fn counters(
    snap: &Snapshot,
    p: &RawPolicy,
    value: Option<&str>,
) -> Result<Vec<(String, Status)>, String> {
    let checks = match (p.each, value) {
        (None, _) => snap.policies.fixed_checks(&p.name),
        (Some(dim), Some(v)) => {
            let dim = match dim {
                Dimension::Key => "key",
                Dimension::App => "app",
                Dimension::Tenant => "tenant",
                Dimension::Model => "model",
            };
            snap.policies.each_checks(&p.name, &format!("{dim}={v}"))
        }
        (Some(_), None) => return Err("this policy counts each value apart: name one".into()),
    }
    .unwrap_or_default();
    if checks.is_empty() {
        return Err(format!(
            "policy `{}` is not loaded on this node yet; try again in a second",
            p.name
        ));
    }
    let now = gatehouse_policy::now_us();
    let resolved = gatehouse_policy::resolve(&checks, &gatehouse_policy::Demand::default(), now)
        .map_err(|e| e.to_string())?;
    let statuses = snap
        .traffic
        .limiter
        .peek(&resolved, now)
        .await
        .map_err(|e| format!("cannot read the counters: {e}"))?;
    Ok(checks.into_iter().map(|c| c.label).zip(statuses).collect())
}

/// Where a spend budget is heading.
#[derive(Debug, Clone, PartialEq)]
pub struct Runout {
    pub policy: String,
    pub value: Option<String>,
    pub limit: String,
    pub used_usd: f64,
    pub limit_usd: f64,
    /// `None`: a lifetime budget.
    pub resets_at: Option<i64>,
    /// Spend projected at the reset, when the reset is within the horizon.
    pub projected_usd_at_reset: Option<f64>,
    /// The hour the budget runs out at the forecast pace, if within the horizon and the period.
    pub runs_out_at: Option<i64>,
    pub method: &'static str,
}

/// Forecasts a spend policy's budgets (for `each` policies: `value`'s) `horizon` hours ahead.
pub async fn budget(
    store: &Store,
    snap: &Snapshot,
    stored: &Stored,
    p: &RawPolicy,
    value: Option<&str>,
    horizon: usize,
    now: i64,
) -> Result<Vec<Runout>, String> {
    let filters = policy_filters(stored, p, value)
        .ok_or_else(|| format!("policy `{}` names what does not exist", p.name))?;
    let counters = counters(snap, p, value).await?;
    let (spend, _) = hourly_history(store, None, filters, now)
        .await
        .map_err(|e| e.to_string())?;
    let pace = forecast(&spend, horizon);
    let start = now - now.rem_euclid(HOUR_MS) + HOUR_MS;
    let horizon_end = start + i64::try_from(horizon).unwrap_or(0) * HOUR_MS;
    Ok(counters
        .iter()
        .filter(|(_, s)| s.measure == Measure::Spend)
        .map(|(label, s)| {
            let used = s.limit.saturating_sub(s.remaining) as f64;
            // A lifetime budget never resets (its counter reports no reset time).
            let resets_at = (s.reset_us > 0).then(|| now + s.reset_us / 1000);
            let left = s.remaining as f64;
            let mut spent = 0.0;
            let mut runs_out_at = None;
            for (i, v) in pace.values.iter().enumerate() {
                let t = start + i64::try_from(i).unwrap_or(0) * HOUR_MS;
                if resets_at.is_some_and(|r| t > r) {
                    break;
                }
                spent += v;
                if runs_out_at.is_none() && spent >= left {
                    runs_out_at = Some(t);
                }
            }
            Runout {
                policy: p.name.clone(),
                value: value.map(str::to_owned),
                limit: label.clone(),
                used_usd: used / 1e9,
                limit_usd: s.limit as f64 / 1e9,
                resets_at,
                projected_usd_at_reset: resets_at
                    .filter(|r| *r <= horizon_end)
                    .map(|_| (used + spent) / 1e9),
                runs_out_at,
                method: pace.method,
            }
        })
        .collect())
}

/// Reports, once a day each, the budgets (of policies without `each`) that run out within a
/// week at the forecast pace; returns how many it reported.
pub async fn check_budgets(
    store: &Store,
    alerter: &Alerter,
    cfg: &AnomalyCfg,
    snap: &Snapshot,
    now: i64,
) -> Result<usize, gatehouse_store::StoreError> {
    let stored = crate::stored::load(store).await?;
    let day = now - now.rem_euclid(DAY_MS);
    let mut reported = 0;
    for p in stored
        .config
        .policies
        .iter()
        .filter(|p| p.each.is_none() && p.limits.iter().any(|l| l.spend_usd.is_some()))
    {
        let budgets = match budget(store, snap, &stored, p, None, 7 * 24, now).await {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!(policy = %p.name, error = %e, "budget forecast skipped");
                continue;
            }
        };
        for b in budgets {
            let Some(at) = b.runs_out_at else { continue };
            let tenant_id = p
                .applies_to
                .tenant
                .as_deref()
                .or(p.tenant.as_deref())
                .and_then(|t| tenant_id(&stored, t));
            let mut a = Anomaly {
                id: gatehouse_store::ids::new_id("anm_"),
                at: now,
                window_start: day,
                window_end: at,
                dimension: "policy".into(),
                value: format!("{}: {}", p.name, b.limit),
                tenant_id,
                metric: "budget_runout".into(),
                observed: b.used_usd,
                baseline: b.limit_usd,
                score: (at - now) as f64 / HOUR_MS as f64,
                method: b.method.to_owned(),
                action: None,
                delivery: None,
            };
            if !store.record_anomaly(&a).await? {
                continue;
            }
            reported += 1;
            tracing::warn!(policy = %p.name, limit = %b.limit, runs_out_at = at, "a budget will run out at the current pace");
            if let Some(url) = &cfg.webhook {
                let ts = |ms: i64| {
                    jiff::Timestamp::from_millisecond(ms)
                        .map(|t| t.to_string())
                        .unwrap_or_default()
                };
                let body = json!({
                    "type": "budget.runout",
                    "id": a.id,
                    "policy": p.name,
                    "limit": b.limit,
                    "used_usd": b.used_usd,
                    "limit_usd": b.limit_usd,
                    "runs_out_at": ts(at),
                    "resets_at": b.resets_at.map(ts),
                    "method": b.method,
                });
                let (ok, attempts, detail) =
                    alerter.post(url, &a.id, &body, cfg.secret.as_deref()).await;
                a.delivery = Some(if ok {
                    "delivered".to_owned()
                } else {
                    format!("failed after {attempts} attempts: {detail}")
                });
                store
                    .anomaly_outcome(&a.id, None, a.delivery.as_deref())
                    .await?;
            }
        }
    }
    Ok(reported)
}

/// One value of a window for each measure.
fn measures(r: &AggRow) -> [(&'static str, f64); 4] {
    let requests = r.requests as f64;
    [
        ("requests", requests),
        (
            "error_rate",
            if r.requests > 0 {
                r.errors as f64 / requests
            } else {
                0.0
            },
        ),
        ("cost_usd", r.cost_nano as f64 / 1e9),
        ("tokens", (r.input_tokens + r.output_tokens) as f64),
    ]
}

fn big_enough(metric: &str, x: f64, requests: f64) -> bool {
    match metric {
        "requests" | "error_rate" => requests >= MIN_REQUESTS,
        "cost_usd" => x >= MIN_COST_USD,
        _ => x >= MIN_TOKENS,
    }
}

/// Judges the last complete window before `now`; returns the findings this call recorded.
pub async fn detect(
    store: &Store,
    alerter: &Alerter,
    cfg: &AnomalyCfg,
    now: i64,
) -> Result<Vec<Anomaly>, gatehouse_store::StoreError> {
    let end = now - now.rem_euclid(WINDOW_MS);
    let start = end - WINDOW_MS;
    let mut found = Vec::new();
    for (dim, group_by) in [
        (Dim::Key, vec![Dim::Key, Dim::App, Dim::Tenant]),
        (Dim::App, vec![Dim::App, Dim::Tenant]),
        (Dim::Tenant, vec![Dim::Tenant]),
        (Dim::Model, vec![Dim::Model]),
    ] {
        // The windows a judgement reads: the last four hours and this one, and this one's
        // time on each of the seven days before (not the whole week: a few hundred minutes
        // of rollups, however busy the install).
        let mut rows = store
            .aggregate(&Aggregate {
                from: start - RECENT * WINDOW_MS,
                to: end,
                group_by: group_by.clone(),
                step_ms: Some(WINDOW_MS),
                ..Aggregate::default()
            })
            .await?;
        for d in 1..=7 {
            rows.extend(
                store
                    .aggregate(&Aggregate {
                        from: start - d * DAY_MS,
                        to: end - d * DAY_MS,
                        group_by: group_by.clone(),
                        step_ms: Some(WINDOW_MS),
                        ..Aggregate::default()
                    })
                    .await?,
            );
        }
        // Per series: its windows by start time.
        let mut series: HashMap<&[String], HashMap<i64, &AggRow>> = HashMap::new();
        for r in &rows {
            if let Some(t) = r.t {
                series.entry(&r.group).or_default().insert(t, r);
            }
        }
        for (group, windows) in &series {
            let Some(now_row) = windows.get(&start) else {
                continue;
            };
            let value = &group[0];
            if value.is_empty() {
                continue;
            }
            let current = measures(now_row);
            let requests_now = now_row.requests as f64;
            for (i, &(metric, x)) in current.iter().enumerate() {
                if !big_enough(metric, x, requests_now) {
                    continue;
                }
                let at = |t: i64| windows.get(&t).map(|r| measures(r)[i].1);
                let same_time: Vec<f64> = (1..=7).filter_map(|d| at(start - d * DAY_MS)).collect();
                let recent: Vec<f64> = (1..=RECENT)
                    .rev()
                    .map(|k| at(start - k * WINDOW_MS).unwrap_or(0.0))
                    .collect();
                let seen_recently = recent.iter().filter(|v| **v > 0.0).count() >= 4;
                let score: Option<Score> = seasonal(x, &same_time)
                    .or_else(|| seen_recently.then(|| ewma(x, &recent, 0.3)).flatten());
                let Some(score) = score else { continue };
                let ratio = if score.baseline > 0.0 {
                    x / score.baseline
                } else {
                    f64::INFINITY
                };
                if score.z < cfg.threshold || ratio < MIN_RATIO {
                    continue;
                }
                let tenant_id = match dim {
                    Dim::Tenant => Some(value.clone()),
                    Dim::Model => None,
                    _ => group.last().filter(|t| !t.is_empty()).cloned(),
                };
                let a = Anomaly {
                    id: gatehouse_store::ids::new_id("anm_"),
                    at: now,
                    window_start: start,
                    window_end: end,
                    dimension: dim.name().to_owned(),
                    value: value.clone(),
                    tenant_id,
                    metric: metric.to_owned(),
                    observed: x,
                    baseline: score.baseline,
                    score: if score.z.is_finite() { score.z } else { 1e9 },
                    method: score.method.to_owned(),
                    action: None,
                    delivery: None,
                };
                if !store.record_anomaly(&a).await? {
                    continue;
                }
                tracing::warn!(dimension = %a.dimension, value = %a.value, metric, observed = x, baseline = score.baseline, z = a.score, "anomaly");
                let mut a = a;
                if dim == Dim::Key && metric == "cost_usd" {
                    if let Some(over) = revoke_threshold(store, cfg, group).await {
                        if ratio >= over {
                            a.action = revoke(store, group).await;
                        }
                    }
                }
                if let Some(url) = &cfg.webhook {
                    let body = json!({
                        "type": "anomaly",
                        "id": a.id,
                        "window_start": jiff::Timestamp::from_millisecond(start).map(|t| t.to_string()).unwrap_or_default(),
                        "window_end": jiff::Timestamp::from_millisecond(end).map(|t| t.to_string()).unwrap_or_default(),
                        "dimension": a.dimension,
                        "value": a.value,
                        "tenant_id": a.tenant_id,
                        "metric": metric,
                        "observed": x,
                        "baseline": score.baseline,
                        "score": a.score,
                        "method": score.method,
                        "action": a.action,
                    });
                    let (ok, attempts, detail) =
                        alerter.post(url, &a.id, &body, cfg.secret.as_deref()).await;
                    a.delivery = Some(if ok {
                        "delivered".to_owned()
                    } else {
                        format!("failed after {attempts} attempts: {detail}")
                    });
                }
                if a.action.is_some() || a.delivery.is_some() {
                    store
                        .anomaly_outcome(&a.id, a.action.as_deref(), a.delivery.as_deref())
                        .await?;
                }
                found.push(a);
            }
        }
    }
    Ok(found)
}

/// The spend ratio past which a `[key, app, tenant]` group's key is revoked: the lowest of the
/// node's `revoke_keys_over` and the `on_anomaly` of every policy whose tenant, app or key scope
/// covers the key (its model and service scopes do not narrow a key's spend).
async fn revoke_threshold(store: &Store, cfg: &AnomalyCfg, group: &[String]) -> Option<f64> {
    let mut over = cfg.revoke_keys_over;
    let stored = match crate::stored::load(store).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "anomaly detector: cannot read the policies");
            return over;
        }
    };
    let (key, app, tenant) = (group.first()?, group.get(1)?, group.get(2)?);
    for p in &stored.config.policies {
        let Some(o) = &p.on_anomaly else { continue };
        // Whom the policy covers, whatever it counts each of.
        let scope = RawPolicy {
            each: None,
            ..p.clone()
        };
        let Some(filters) = policy_filters(&stored, &scope, None) else {
            continue;
        };
        let covers = filters.iter().all(|(d, v)| match d {
            Dim::Key => v == key,
            Dim::App => v == app,
            Dim::Tenant => v == tenant,
            _ => true,
        });
        if covers {
            over = Some(over.map_or(o.revoke_keys_over, |x| x.min(o.revoke_keys_over)));
        }
    }
    over
}

/// Revokes the app key of a `[key, app, tenant]` group; returns what was done.
async fn revoke(store: &Store, group: &[String]) -> Option<String> {
    let (key, app) = (group.first()?, group.get(1)?);
    let id = key.strip_prefix(gatehouse_store::KEY_PREFIX)?;
    if app.is_empty() {
        return None;
    }
    let actor = gatehouse_store::Actor("anomaly-detector".into());
    match store.revoke_key(app, id, &actor).await {
        Ok(_) => {
            tracing::warn!(key = %key, "anomaly detector revoked a key whose spend jumped");
            Some("key_revoked".into())
        }
        Err(e) => {
            tracing::warn!(error = %e, key = %key, "anomaly detector could not revoke a key");
            Some(format!("key_revoke_failed: {e}"))
        }
    }
}
