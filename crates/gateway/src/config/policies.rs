//! Policies: limits and budgets attached to a scope (a key, an app, a tenant, a model, a service,
//! a combination, or everything), as the file, `apply` and the admin API write them.

use serde::{Deserialize, Serialize};

use super::{parse_duration, Problems, RawConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawPolicy {
    pub name: String,
    /// The owning tenant: its admins manage the policy, and it applies only to the tenant's calls.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// Which calls it counts; every field given must match (none given: every call).
    #[serde(default, skip_serializing_if = "Scope::is_empty")]
    pub applies_to: Scope,
    /// One counter per distinct value of this dimension (e.g. `key`: each key gets the limits).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub each: Option<Dimension>,
    /// For calendar periods (`per: day`, `month`…): an IANA zone, default `UTC`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub time_zone: Option<String>,
    pub limits: Vec<RawLimit>,
    /// Budget alerts: a webhook when spend crosses each threshold, once per period.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<RawAlerts>,
    /// What the anomaly detector does about keys this policy's tenant, app or key scope covers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub on_anomaly: Option<RawOnAnomaly>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawOnAnomaly {
    /// Revoke an app key whose 15-minute spend reaches this many times its baseline.
    pub revoke_keys_over: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAlerts {
    /// Percent of each spend limit (default 50, 80 and 100).
    #[serde(default = "default_thresholds")]
    pub thresholds: Vec<u32>,
    /// Where the JSON alert is POSTed.
    pub webhook: String,
    /// Signs each delivery: `x-gatehouse-signature: t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`.
    /// Stored encrypted; shown masked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

fn default_thresholds() -> Vec<u32> {
    vec![50, 80, 100]
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Scope {
    /// A key's id (the part after `gatehouse_`) or a config key's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// The model name clients send.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// The service through which the call was allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
}

impl Scope {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Dimension {
    Key,
    App,
    Tenant,
    Model,
}

/// One limit: exactly one of `requests`, `tokens`, `concurrent`, `spend_usd`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLimit {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requests: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tokens: Option<u64>,
    /// For `tokens`: `input`, `output` or `total` (default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<TokenKind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concurrent: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spend_usd: Option<f64>,
    /// Requests and tokens: a rolling window (`1s`, `1m`, `1h`, `24h`). Spend: `hour`, `day`,
    /// `week`, `month` (calendar, in `time_zone`) or `lifetime`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub per: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum TokenKind {
    Input,
    Output,
    Total,
}

/// Checks every policy's scope references and limits.
pub(super) fn check(cfg: &RawConfig, p: &mut Problems) {
    let mut names = std::collections::HashSet::new();
    for (i, pol) in cfg.policies.iter().enumerate() {
        let at = format!("policies[{i}]");
        if !super::valid_slug(&pol.name) {
            p.add(
                &format!("{at}.name"),
                format!("{:?} is not a valid name", pol.name),
            );
        }
        if !names.insert(pol.name.as_str()) {
            p.add(
                &format!("{at}.name"),
                format!("policy {:?} is defined twice", pol.name),
            );
        }
        let tenant_known = |t: &str| cfg.tenants.iter().any(|x| x.name == t);
        if let Some(t) = &pol.tenant {
            if !tenant_known(t) {
                p.add(&format!("{at}.tenant"), format!("no tenant named {t:?}"));
            }
            if pol.applies_to.tenant.as_ref().is_some_and(|s| s != t) {
                p.add(
                    &format!("{at}.applies_to.tenant"),
                    "a tenant's policy applies only to its own tenant".into(),
                );
            }
        }
        let s = &pol.applies_to;
        if let Some(t) = &s.tenant {
            if !tenant_known(t) {
                p.add(
                    &format!("{at}.applies_to.tenant"),
                    format!("no tenant named {t:?}"),
                );
            }
        }
        if let Some(m) = &s.model {
            if !cfg.models.iter().any(|x| &x.name == m) && !m.contains('/') {
                p.add(
                    &format!("{at}.applies_to.model"),
                    format!("no model named {m:?}"),
                );
            }
        }
        if let Some(v) = &s.service {
            if !cfg.services.iter().any(|x| &x.name == v) {
                p.add(
                    &format!("{at}.applies_to.service"),
                    format!("no service named {v:?}"),
                );
            }
        }
        if let Some(a) = &s.app {
            let owner = s.tenant.as_ref().or(pol.tenant.as_ref());
            let found = cfg
                .apps
                .iter()
                .any(|x| &x.name == a && owner.is_none_or(|t| &x.tenant == t));
            if !found {
                p.add(
                    &format!("{at}.applies_to.app"),
                    format!("no app named {a:?}"),
                );
            }
        }
        if let Some(z) = &pol.time_zone {
            if gatehouse_policy::period::zone(z).is_err() {
                p.add(
                    &format!("{at}.time_zone"),
                    format!("{z:?} is not an IANA time zone like Europe/Paris"),
                );
            }
        }
        if pol.limits.is_empty() {
            p.add(
                &format!("{at}.limits"),
                "a policy needs at least one limit".into(),
            );
        }
        for (j, l) in pol.limits.iter().enumerate() {
            if let Err(e) = compile_limit(l) {
                p.add(&format!("{at}.limits[{j}]"), e);
            }
        }
        if let Some(o) = &pol.on_anomaly {
            if !(o.revoke_keys_over.is_finite() && o.revoke_keys_over > 1.0) {
                p.add(
                    &format!("{at}.on_anomaly.revoke_keys_over"),
                    "a ratio above 1 (e.g. 20)".into(),
                );
            }
        }
        if let Some(a) = &pol.alerts {
            match url::Url::parse(&a.webhook) {
                Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {}
                _ => p.add(
                    &format!("{at}.alerts.webhook"),
                    format!("{:?} is not an http(s) URL", a.webhook),
                ),
            }
            if a.thresholds.is_empty() || a.thresholds.iter().any(|t| *t == 0 || *t > 1000) {
                p.add(
                    &format!("{at}.alerts.thresholds"),
                    "percentages between 1 and 1000".into(),
                );
            }
            if !pol.limits.iter().any(|l| l.spend_usd.is_some()) {
                p.add(
                    &format!("{at}.alerts"),
                    "alerts watch spend limits; this policy has none".into(),
                );
            }
        }
    }
}

/// What a limit counts and over what, validated.
#[derive(Debug, Clone, PartialEq)]
pub enum LimitSpec {
    Requests {
        limit: u64,
        window: std::time::Duration,
    },
    Tokens {
        limit: u64,
        window: std::time::Duration,
        count: TokenKind,
    },
    Concurrent {
        limit: u64,
    },
    /// In nano-USD.
    Spend {
        limit: u64,
        per: SpendPeriod,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpendPeriod {
    Hour,
    Day,
    Week,
    Month,
    Lifetime,
}

pub fn compile_limit(l: &RawLimit) -> Result<LimitSpec, String> {
    let given = [
        l.requests.is_some(),
        l.tokens.is_some(),
        l.concurrent.is_some(),
        l.spend_usd.is_some(),
    ]
    .iter()
    .filter(|b| **b)
    .count();
    if given != 1 {
        return Err("give exactly one of requests, tokens, concurrent, spend_usd".into());
    }
    if l.count.is_some() && l.tokens.is_none() {
        return Err("count belongs to a tokens limit".into());
    }
    let window = || -> Result<std::time::Duration, String> {
        let per = l
            .per
            .as_deref()
            .ok_or("needs per: a window like 1m or 1h")?;
        let d = parse_duration(per)?;
        if d.is_zero() {
            return Err("per must be longer than 0".into());
        }
        Ok(d)
    };
    if let Some(n) = l.requests {
        return Ok(LimitSpec::Requests {
            limit: n.max(1),
            window: window()?,
        });
    }
    if let Some(n) = l.tokens {
        return Ok(LimitSpec::Tokens {
            limit: n.max(1),
            window: window()?,
            count: l.count.unwrap_or(TokenKind::Total),
        });
    }
    if let Some(n) = l.concurrent {
        if l.per.is_some() {
            return Err("a concurrent limit has no per: it counts calls in flight".into());
        }
        return Ok(LimitSpec::Concurrent { limit: n.max(1) });
    }
    let usd = l.spend_usd.unwrap_or_default();
    if !(usd.is_finite() && usd > 0.0) {
        return Err("spend_usd must be a positive amount".into());
    }
    let per = match l.per.as_deref() {
        Some("hour") => SpendPeriod::Hour,
        Some("day") => SpendPeriod::Day,
        Some("week") => SpendPeriod::Week,
        Some("month") => SpendPeriod::Month,
        Some("lifetime") => SpendPeriod::Lifetime,
        _ => return Err("a spend limit needs per: hour, day, week, month or lifetime".into()),
    };
    Ok(LimitSpec::Spend {
        limit: (usd * 1e9).round() as u64,
        per,
    })
}
