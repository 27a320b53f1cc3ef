//! The anomaly detector: every `interval`, the last complete 15-minute window of each key, app,
//! tenant and model is compared with its own history (see `gatehouse_store::insights`) for
//! request rate, error rate, spend and tokens. A finding is stored once across the cluster, sent
//! to the webhook, and — when configured — an app key whose spend jumped past
//! `revoke_keys_over` times its baseline is revoked.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_store::insights::{ewma, seasonal, Score};
use gatehouse_store::{AggRow, Aggregate, Anomaly, Dim, Store};
use serde_json::json;

use crate::alerts::Alerter;
use crate::config::AnomalyCfg;

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

/// Runs the detector until the process ends.
pub async fn run(store: Store, alerter: Arc<Alerter>, cfg: AnomalyCfg) {
    let Some(every) = cfg.interval else {
        return;
    };
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match detect(&store, &alerter, &cfg, gatehouse_store::ids::now_ms()).await {
            Ok(found) if !found.is_empty() => {
                tracing::info!(anomalies = found.len(), "anomaly detector: new findings");
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "anomaly detector: cannot read the rollups"),
        }
    }
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
                    if let Some(over) = cfg.revoke_keys_over {
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
