//! Budget alerts: when a call's spend carries a budget past one of its thresholds, a signed JSON
//! webhook — once per period per threshold, across the cluster — and a record in the store.
//!
//! Evaluated after a call settles, off the request path. "Once" is a mark in the limiter's back
//! end (Redis `SET NX` in a cluster), kept until the period ends. Deliveries are retried with
//! exponential backoff (1, 2, 4, 8 s) on connection errors, 5xx and 429; each one is signed
//! `x-gatehouse-signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.

use std::sync::Arc;
use std::time::Duration;

use gatehouse_policy::{Check, Limiter, Measure, Resolved};
use gatehouse_store::{AlertRecord, Store};
use ring::hmac;
use serde_json::json;

/// A policy's alert settings, compiled.
#[derive(Debug, Clone, PartialEq)]
pub struct AlertSpec {
    pub policy: String,
    pub tenant: Option<String>,
    pub tenant_id: Option<String>,
    pub thresholds: Vec<u32>,
    pub webhook: String,
    pub secret: Option<String>,
}

/// Sends alerts and keeps their history.
#[derive(Debug, Clone)]
pub struct Alerter {
    http: reqwest::Client,
    store: Option<Store>,
    backoff: Duration,
}

const ATTEMPTS: u32 = 5;

impl Alerter {
    pub fn new(store: Option<Store>) -> Self {
        Self {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .unwrap_or_default(),
            store,
            backoff: Duration::from_secs(1),
        }
    }

    /// The same, with a shorter backoff (tests).
    pub fn with_backoff(mut self, backoff: Duration) -> Self {
        self.backoff = backoff;
        self
    }

    /// After a call settled: fires the thresholds its budgets have crossed. `exhausted` is set
    /// when a call was refused for the budget: that is 100 %, even though reservations keep the
    /// spend itself just under the limit.
    pub async fn evaluate(
        &self,
        limiter: &Limiter,
        items: Vec<(Check, Resolved, Arc<AlertSpec>)>,
        exhausted: bool,
    ) {
        let now = gatehouse_policy::now_us();
        for (check, resolved, spec) in items {
            if check.rule.measure != Measure::Spend {
                continue;
            }
            let statuses = match limiter.peek(std::slice::from_ref(&resolved), now).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, policy = %spec.policy, "cannot read a budget for its alerts");
                    continue;
                }
            };
            let Some(s) = statuses.first() else { continue };
            let used = s.limit.saturating_sub(s.remaining);
            let mut percent = used.saturating_mul(100) / s.limit.max(1);
            if exhausted {
                percent = percent.max(100);
            }
            let period = resolved
                .key
                .split_once('@')
                .map_or("lifetime", |(_, p)| p)
                .to_owned();
            // Until the period ends (and a day), or ten years for lifetime budgets.
            let ttl = if s.reset_us > 0 {
                s.reset_us + 86_400_000_000
            } else {
                10 * 365 * 86_400_000_000
            };
            let mut thresholds = spec.thresholds.clone();
            thresholds.sort_unstable();
            for t in thresholds.into_iter().filter(|t| percent >= u64::from(*t)) {
                let mark = format!("alert:{}:{t}", resolved.key);
                match limiter.mark_once(&mark, ttl).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot mark an alert as sent; not sending it twice");
                        continue;
                    }
                }
                let record = AlertRecord {
                    id: gatehouse_store::ids::new_id("alr_"),
                    at: gatehouse_store::ids::now_ms(),
                    tenant_id: spec.tenant_id.clone(),
                    policy: spec.policy.clone(),
                    limit_label: check.label.clone(),
                    period: period.clone(),
                    threshold: i64::from(t),
                    used: i64::try_from(used).unwrap_or(i64::MAX),
                    of: i64::try_from(s.limit).unwrap_or(i64::MAX),
                    webhook: spec.webhook.clone(),
                    status: "pending".into(),
                    attempts: 0,
                    detail: None,
                };
                let body = json!({
                    "type": "budget.threshold",
                    "id": record.id,
                    "at": jiff::Timestamp::from_millisecond(record.at).map(|t| t.to_string()).unwrap_or_default(),
                    "policy": spec.policy,
                    "tenant": spec.tenant,
                    "limit": check.label,
                    "period": period,
                    "threshold_percent": t,
                    "used_usd": used as f64 / 1e9,
                    "limit_usd": s.limit as f64 / 1e9,
                });
                tracing::info!(policy = %spec.policy, threshold = t, %period, "budget alert");
                let me = self.clone();
                let secret = spec.secret.clone();
                tokio::spawn(async move { me.deliver(record, body, secret).await });
            }
        }
    }

    /// POSTs a JSON body to a webhook, signed when there is a secret, retrying connection
    /// errors, 5xx and 429 with exponential backoff; returns (delivered, attempts, detail).
    pub async fn post(
        &self,
        url: &str,
        id: &str,
        body: &serde_json::Value,
        secret: Option<&str>,
    ) -> (bool, u32, String) {
        let text = body.to_string();
        let mut detail = String::new();
        let mut attempts = 0;
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(self.backoff * 2u32.pow(attempt - 1)).await;
            }
            attempts = attempt + 1;
            let mut req = self
                .http
                .post(url)
                .header("content-type", "application/json")
                .header("x-gatehouse-alert-id", id);
            if let Some(secret) = secret {
                req = req.header("x-gatehouse-signature", signature(secret, &text));
            }
            match req.body(text.clone()).send().await {
                Ok(r) if r.status().is_success() => {
                    return (true, attempts, format!("HTTP {}", r.status().as_u16()));
                }
                Ok(r) => {
                    detail = format!("HTTP {}", r.status().as_u16());
                    let retry = r.status().is_server_error() || r.status().as_u16() == 429;
                    if !retry {
                        break;
                    }
                }
                Err(e) => detail = e.to_string(),
            }
        }
        (false, attempts, detail)
    }

    async fn deliver(&self, record: AlertRecord, body: serde_json::Value, secret: Option<String>) {
        if let Some(store) = &self.store {
            if let Err(e) = store.record_alert(&record).await {
                tracing::warn!(error = %e, "cannot record an alert");
            }
        }
        let (delivered, attempts, detail) = self
            .post(&record.webhook, &record.id, &body, secret.as_deref())
            .await;
        let status = if delivered { "delivered" } else { "failed" };
        if !delivered {
            tracing::warn!(webhook = %record.webhook, %detail, attempts, "budget alert not delivered");
        }
        if let Some(store) = &self.store {
            if let Err(e) = store
                .alert_delivery(&record.id, status, i64::from(attempts), Some(&detail))
                .await
            {
                tracing::warn!(error = %e, "cannot record an alert's delivery");
            }
        }
    }
}

/// `t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, body: &str) -> String {
    let t = gatehouse_store::ids::now_ms() / 1000;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let tag = hmac::sign(&key, format!("{t}.{body}").as_bytes());
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("t={t},v1={hex}")
}
