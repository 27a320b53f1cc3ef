//! Traffic control in the data plane: which policies apply to a call, admitting it against all of
//! their limits at once, and settling what it really used.
//!
//! `Policies` is compiled into each snapshot; the `Limiter` (memory or Redis) outlives snapshots
//! so counters survive reloads. `admit` counts the prompt, reserves the output (`max_tokens`, or
//! `server.limits.default_output_tokens`) and the estimated cost (catalog prices), and returns an
//! `Admission`. The admission travels with the response — into the stream driver for streams —
//! and is settled with the real usage when the call ends; if the client goes away first, what was
//! used so far is charged (the prompt, and the streamed output). The rate-limit headers of every
//! admitted call come from the admission too.

use std::sync::Arc;

use gatehouse_llm::catalog::ModelInfo;
use gatehouse_policy::period::Period;
use gatehouse_policy::{
    self as policy, Check, Demand, Limiter, Measure, Rule, Status, TokenCount, Used, Verdict,
    Window,
};
use http::{HeaderMap, HeaderValue};

use crate::access::{Principal, Who};
use crate::alerts::{AlertSpec, Alerter};
use crate::config::{Config, Dimension, LimitSpec, RawPolicy, SpendPeriod, TokenKind};
use crate::error::GatewayError;

/// The limiter and the alerter of a node: they outlive snapshots, so counters and alert marks
/// survive reloads.
#[derive(Debug, Clone)]
pub struct Traffic {
    pub limiter: Arc<Limiter>,
    pub alerter: Arc<Alerter>,
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The call log, with a store.
    pub calls: Option<Arc<crate::record::CallLog>>,
    /// The OTLP exporter, when tracing is on.
    pub tracer: Option<Arc<crate::trace::Tracer>>,
}

impl Traffic {
    /// In-process counters, alerts without a history.
    pub fn local() -> Self {
        Self {
            limiter: Arc::new(Limiter::memory()),
            alerter: Arc::new(Alerter::new(None)),
            metrics: Arc::default(),
            calls: None,
            tracer: None,
        }
    }
}

/// A policy ready to match calls.
#[derive(Debug)]
struct Compiled {
    policy: RawPolicy,
    rules: Vec<(Arc<Rule>, String)>,
    alerts: Option<Arc<AlertSpec>>,
}

impl Compiled {
    /// This policy's counters, labelled by rule alone (for reading them, not for a call).
    fn plain_checks(&self, each: Option<&str>) -> Vec<Check> {
        self.rules
            .iter()
            .enumerate()
            .map(|(i, (rule, label))| Check {
                counter: counter_key(&self.policy.name, i, each),
                rule: Arc::clone(rule),
                label: label.clone(),
            })
            .collect()
    }
}

/// The policies of a snapshot.
#[derive(Debug, Default)]
pub struct Policies {
    compiled: Vec<Compiled>,
    default_output_tokens: u32,
}

/// What a call is, for matching policies.
#[derive(Debug, Clone, Copy)]
pub struct CallScope<'a> {
    pub principal: &'a Principal,
    pub model: &'a str,
    pub service: Option<&'a str>,
}

impl CallScope<'_> {
    fn key(&self) -> &str {
        let name = &*self.principal.key_name;
        name.strip_prefix(gatehouse_store::KEY_PREFIX)
            .unwrap_or(name)
    }

    fn app(&self) -> Option<&str> {
        match &self.principal.who {
            Who::App { app, .. } => Some(app),
            Who::Operator => None,
        }
    }

    fn tenant(&self) -> Option<&str> {
        match &self.principal.who {
            Who::App { tenant, .. } => Some(tenant),
            Who::Operator => None,
        }
    }
}

fn describe(spec: &LimitSpec) -> String {
    match spec {
        LimitSpec::Requests { limit, window } => format!("{limit} requests per {}", human(*window)),
        LimitSpec::Tokens {
            limit,
            window,
            count,
        } => {
            let which = match count {
                TokenKind::Input => "input ",
                TokenKind::Output => "output ",
                TokenKind::Total => "",
            };
            format!("{limit} {which}tokens per {}", human(*window))
        }
        LimitSpec::Concurrent { limit } => format!("{limit} concurrent requests"),
        LimitSpec::Spend { limit, per } => {
            let per = match per {
                SpendPeriod::Hour => "hour",
                SpendPeriod::Day => "day",
                SpendPeriod::Week => "week",
                SpendPeriod::Month => "month",
                SpendPeriod::Lifetime => "lifetime",
            };
            format!("${:.2} per {per}", *limit as f64 / 1e9)
        }
    }
}

fn human(d: std::time::Duration) -> String {
    let s = d.as_secs();
    match s {
        0 => format!("{}ms", d.as_millis()),
        s if s % 3600 == 0 => format!("{}h", s / 3600),
        s if s % 60 == 0 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

impl Policies {
    /// Compiles validated policies (a limit that does not compile is skipped: validation
    /// already refused it). `tenant_ids` maps tenant names to store ids, for alert records.
    pub fn build(cfg: &Config, tenant_ids: &std::collections::HashMap<String, String>) -> Self {
        let compiled = cfg
            .policies
            .iter()
            .map(|p| {
                let tz = p
                    .time_zone
                    .as_deref()
                    .and_then(|z| policy::period::zone(z).ok())
                    .unwrap_or(jiff::tz::TimeZone::UTC);
                let rules = p
                    .limits
                    .iter()
                    .filter_map(|l| crate::config::compile_limit(l).ok())
                    .map(|spec| {
                        let label = describe(&spec);
                        let rule = match spec {
                            LimitSpec::Requests { limit, window } => Rule {
                                measure: Measure::Requests,
                                limit,
                                window: Window::Rolling(window.as_micros() as f64),
                            },
                            LimitSpec::Tokens {
                                limit,
                                window,
                                count,
                            } => Rule {
                                measure: Measure::Tokens(match count {
                                    TokenKind::Input => TokenCount::Input,
                                    TokenKind::Output => TokenCount::Output,
                                    TokenKind::Total => TokenCount::Total,
                                }),
                                limit,
                                window: Window::Rolling(window.as_micros() as f64),
                            },
                            LimitSpec::Concurrent { limit } => Rule {
                                measure: Measure::Concurrent,
                                limit,
                                window: Window::InFlight,
                            },
                            LimitSpec::Spend { limit, per } => Rule {
                                measure: Measure::Spend,
                                limit,
                                window: match per {
                                    SpendPeriod::Hour => Window::Calendar(Period::Hour, tz.clone()),
                                    SpendPeriod::Day => Window::Calendar(Period::Day, tz.clone()),
                                    SpendPeriod::Week => Window::Calendar(Period::Week, tz.clone()),
                                    SpendPeriod::Month => {
                                        Window::Calendar(Period::Month, tz.clone())
                                    }
                                    SpendPeriod::Lifetime => Window::Lifetime,
                                },
                            },
                        };
                        (Arc::new(rule), label)
                    })
                    .collect();
                let alerts = p.alerts.as_ref().map(|a| {
                    Arc::new(AlertSpec {
                        policy: p.name.clone(),
                        tenant: p.tenant.clone(),
                        tenant_id: p.tenant.as_ref().and_then(|t| tenant_ids.get(t)).cloned(),
                        thresholds: a.thresholds.clone(),
                        webhook: a.webhook.clone(),
                        secret: a.secret.clone(),
                    })
                });
                Compiled {
                    policy: p.clone(),
                    rules,
                    alerts,
                }
            })
            .collect();
        Self {
            compiled,
            default_output_tokens: cfg.server.default_output_tokens,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.compiled.is_empty()
    }

    /// The checks that apply to a call, each with its policy's alerts.
    pub fn checks(&self, call: &CallScope<'_>) -> Vec<(Check, Option<Arc<AlertSpec>>)> {
        let mut out = Vec::new();
        for c in &self.compiled {
            let p = &c.policy;
            let s = &p.applies_to;
            let tenant = s.tenant.as_deref().or(p.tenant.as_deref());
            let matches = tenant.is_none_or(|t| call.tenant() == Some(t))
                && s.key.as_deref().is_none_or(|k| k == call.key())
                && s.app.as_deref().is_none_or(|a| call.app() == Some(a))
                && s.model.as_deref().is_none_or(|m| m == call.model)
                && s.service.as_deref().is_none_or(|v| call.service == Some(v));
            if !matches {
                continue;
            }
            let each = match p.each {
                None => None,
                Some(Dimension::Key) => Some(format!("key={}", call.key())),
                Some(Dimension::App) => Some(format!(
                    "app={}/{}",
                    call.tenant().unwrap_or("-"),
                    call.app().unwrap_or("-")
                )),
                Some(Dimension::Tenant) => Some(format!("tenant={}", call.tenant().unwrap_or("-"))),
                Some(Dimension::Model) => Some(format!("model={}", call.model)),
            };
            let scope = scope_text(p, each.as_deref());
            for (i, (rule, label)) in c.rules.iter().enumerate() {
                out.push((
                    Check {
                        counter: counter_key(&p.name, i, each.as_deref()),
                        rule: Arc::clone(rule),
                        label: format!("policy `{}` allows {label} for {scope}", p.name),
                    },
                    c.alerts.clone(),
                ));
            }
        }
        out
    }

    /// The counters of an `each` policy for one value (`key=abc`, `app=acme/web`…).
    pub fn each_checks(&self, name: &str, each: &str) -> Option<Vec<Check>> {
        let c = self.compiled.iter().find(|c| c.policy.name == name)?;
        Some(c.plain_checks(Some(each)))
    }

    /// Every counter of a policy that exists regardless of calls (not `each` ones).
    pub fn fixed_checks(&self, name: &str) -> Option<Vec<Check>> {
        let c = self.compiled.iter().find(|c| c.policy.name == name)?;
        if c.policy.each.is_some() {
            return None;
        }
        Some(c.plain_checks(None))
    }
}

/// The shared-store key of one rule's counter: `policy:rule[:each]`.
fn counter_key(policy: &str, rule: usize, each: Option<&str>) -> String {
    match each {
        Some(e) => format!("{policy}:{rule}:{e}"),
        None => format!("{policy}:{rule}"),
    }
}

fn scope_text(p: &RawPolicy, each: Option<&str>) -> String {
    let s = &p.applies_to;
    let mut parts = Vec::new();
    if let Some(t) = s.tenant.as_ref().or(p.tenant.as_ref()) {
        parts.push(format!("tenant {t}"));
    }
    if let Some(a) = &s.app {
        parts.push(format!("app {a}"));
    }
    if let Some(k) = &s.key {
        parts.push(format!("key {k}"));
    }
    if let Some(m) = &s.model {
        parts.push(format!("model {m}"));
    }
    if let Some(v) = &s.service {
        parts.push(format!("service {v}"));
    }
    if let Some(e) = each {
        parts.push(format!("each {}", e.replace('=', " ")));
    }
    if parts.is_empty() {
        "every call".into()
    } else {
        parts.join(", ")
    }
}

/// What the pipeline knows of a call when it admits it.
pub struct Ask<'a> {
    pub checks: Vec<(Check, Option<Arc<AlertSpec>>)>,
    pub prompt_tokens: u64,
    pub max_output: Option<u32>,
    pub price: Option<&'a ModelInfo>,
    pub lease_ttl: std::time::Duration,
    pub request_id: &'a str,
}

/// Whether a call's checks need its tokens counted (token or spend limits).
pub fn needs_tokens(checks: &[(Check, Option<Arc<AlertSpec>>)]) -> bool {
    checks
        .iter()
        .any(|(c, _)| matches!(c.rule.measure, Measure::Tokens(_) | Measure::Spend))
}

fn nano(price_per_million: f64, tokens: u64) -> u64 {
    // USD per 1M tokens → nano-USD per token is price × 1000.
    (tokens as f64 * price_per_million * 1000.0).round() as u64
}

/// Admits a call against its checks, or refuses it with the limit that is full.
pub async fn admit(
    traffic: &Traffic,
    policies: &Policies,
    ask: Ask<'_>,
) -> Result<Admission, GatewayError> {
    let limiter = &traffic.limiter;
    let (checks, alerts): (Vec<Check>, Vec<Option<Arc<AlertSpec>>>) =
        ask.checks.into_iter().unzip();
    let output = u64::from(ask.max_output.unwrap_or(policies.default_output_tokens));
    let cost = ask
        .price
        .map(|m| nano(m.input, ask.prompt_tokens) + nano(m.output, output))
        .unwrap_or(0);
    let demand = Demand {
        input_tokens: ask.prompt_tokens,
        output_tokens: output,
        cost_nano: cost,
        lease: ask.request_id.to_owned(),
        lease_ttl_us: i64::try_from(ask.lease_ttl.as_micros()).unwrap_or(i64::MAX),
    };
    let now = policy::now_us();
    let resolved = policy::resolve(&checks, &demand, now)
        .map_err(|e| GatewayError::LimitsUnavailable(e.to_string()))?;
    let verdict = limiter
        .admit(&resolved, &demand.lease, now)
        .await
        .map_err(|e| {
            traffic.metrics.rejected("limits_unavailable");
            GatewayError::LimitsUnavailable(e.to_string())
        })?;
    match verdict {
        Verdict::Admitted(statuses) => Ok(Admission {
            limiter: Arc::clone(limiter),
            alerter: Arc::clone(&traffic.alerter),
            alerts,
            checks,
            resolved,
            demand,
            statuses,
            price: ask
                .price
                .map(|m| (m.input, m.output, m.cached_input.unwrap_or(m.input))),
            extra_input: 0,
            settled: false,
        }),
        Verdict::Refused {
            index,
            retry_after_us,
            statuses,
        } => {
            let check = &checks[index];
            let retry_secs = (retry_after_us.max(0) as u64).div_ceil(1_000_000).max(1);
            let mut headers = HeaderMap::new();
            rate_headers(&statuses, &mut headers);
            let budget = check.rule.measure == Measure::Spend;
            traffic.metrics.rejected(if budget {
                "budget_exceeded"
            } else {
                "rate_limit_exceeded"
            });
            if let (true, Some(spec)) = (budget, alerts[index].clone()) {
                let (limiter, alerter) = (Arc::clone(limiter), Arc::clone(&traffic.alerter));
                let item = (check.clone(), resolved[index].clone(), spec);
                tokio::spawn(async move { alerter.evaluate(&limiter, vec![item], true).await });
            }
            let message = if budget {
                let reset = jiff::Timestamp::from_microsecond(now.saturating_add(retry_after_us))
                    .map(|t| t.to_string())
                    .unwrap_or_else(|_| "never (a lifetime budget)".into());
                format!("budget exceeded: {}; it resets at {reset}", check.label)
            } else {
                format!(
                    "rate limit exceeded: {}; retry in {retry_secs} s",
                    check.label
                )
            };
            Err(GatewayError::RateLimited {
                code: if budget {
                    "budget_exceeded"
                } else {
                    "rate_limit_exceeded"
                },
                message,
                retry_after: retry_secs.min(365 * 86_400),
                headers: Box::new(headers),
            })
        }
    }
}

/// An admitted call's reservations, settled exactly once: explicitly, or on drop.
#[derive(Debug)]
pub struct Admission {
    limiter: Arc<Limiter>,
    alerter: Arc<Alerter>,
    /// The alerts of each check's policy (aligned with `checks`).
    alerts: Vec<Option<Arc<AlertSpec>>>,
    checks: Vec<Check>,
    resolved: Vec<policy::Resolved>,
    demand: Demand,
    statuses: Vec<Status>,
    /// Input, output and cached-input prices (USD per 1M tokens).
    price: Option<(f64, f64, f64)>,
    /// Prompts of earlier attempts that timed out, charged on top of the final usage.
    extra_input: u64,
    settled: bool,
}

/// Token counts of a finished (or abandoned) call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Tokens {
    pub input: u64,
    pub cached: u64,
    pub output: u64,
    /// Of `output`, the tokens spent reasoning (for records; limits count `output`).
    pub reasoning: u64,
}

impl Admission {
    /// The `x-ratelimit-*` headers of this call.
    pub fn headers(&self, h: &mut HeaderMap) {
        rate_headers(&self.statuses, h);
    }

    /// The prompt tokens counted at admission.
    pub fn prompt_tokens(&self) -> u64 {
        self.demand.input_tokens
    }

    /// Charges the prompt once more: an attempt that may have consumed it was abandoned for the
    /// next target.
    pub fn charge_attempt(&mut self) {
        self.extra_input += self.demand.input_tokens;
    }

    /// The output tokens reserved at admission.
    pub fn reserved_output(&self) -> u64 {
        self.demand.output_tokens
    }

    /// Charges what the call used and releases its reservation and lease.
    pub fn settle(mut self, t: Tokens) {
        self.finish(t);
    }

    fn finish(&mut self, t: Tokens) {
        if self.settled || self.checks.is_empty() {
            self.settled = true;
            return;
        }
        self.settled = true;
        let t = Tokens {
            input: t.input + self.extra_input,
            ..t
        };
        let cost = self
            .price
            .map(|(i, o, c)| {
                let cached = t.cached.min(t.input);
                nano(i, t.input - cached) + nano(c, cached) + nano(o, t.output)
            })
            .unwrap_or(0);
        let used = Used {
            input_tokens: t.input,
            output_tokens: t.output,
            cost_nano: cost,
        };
        let deltas = policy::corrections(&self.checks, &self.resolved, &used);
        let now = policy::now_us();
        let watched: Vec<(Check, policy::Resolved, Arc<AlertSpec>)> = self
            .checks
            .iter()
            .zip(&self.resolved)
            .zip(&self.alerts)
            .filter(|((c, _), _)| c.rule.measure == Measure::Spend)
            .filter_map(|((c, r), a)| a.clone().map(|a| (c.clone(), r.clone(), a)))
            .collect();
        let settled = self
            .limiter
            .settle_now(&self.resolved, &deltas, &self.demand.lease, now);
        if settled && watched.is_empty() {
            return;
        }
        let limiter = Arc::clone(&self.limiter);
        let alerter = Arc::clone(&self.alerter);
        let resolved = std::mem::take(&mut self.resolved);
        let lease = std::mem::take(&mut self.demand.lease);
        let settle = async move {
            if !settled {
                limiter.settle(&resolved, &deltas, &lease, now).await;
            }
            if !watched.is_empty() {
                alerter.evaluate(&limiter, watched, false).await;
            }
        };
        match tokio::runtime::Handle::try_current() {
            Ok(h) => {
                h.spawn(settle);
            }
            Err(_) => tracing::warn!("no runtime to settle a call's limits on"),
        }
    }
}

impl Drop for Admission {
    /// A call dropped before it settled (the client went away before the answer): its prompt
    /// was sent, so it is charged; the output reservation is given back.
    fn drop(&mut self) {
        if !self.settled {
            let input = self.demand.input_tokens;
            self.finish(Tokens {
                input,
                cached: 0,
                output: 0,
                reasoning: 0,
            });
        }
    }
}

/// `x-ratelimit-{limit,remaining,reset}-{requests,tokens}`: the tightest of each kind.
fn rate_headers(statuses: &[Status], h: &mut HeaderMap) {
    let tightest = |want: fn(&Measure) -> bool| {
        statuses
            .iter()
            .filter(|s| want(&s.measure))
            .min_by_key(|s| s.remaining)
    };
    for (suffix, s) in [
        ("requests", tightest(|m| *m == Measure::Requests)),
        ("tokens", tightest(|m| matches!(m, Measure::Tokens(_)))),
    ] {
        let Some(s) = s else { continue };
        let values = [
            ("limit", s.limit.to_string()),
            ("remaining", s.remaining.to_string()),
            ("reset", reset_text(s.reset_us)),
        ];
        for (what, v) in values {
            if let (Ok(name), Ok(v)) = (
                http::HeaderName::try_from(format!("x-ratelimit-{what}-{suffix}")),
                HeaderValue::from_str(&v),
            ) {
                h.insert(name, v);
            }
        }
    }
}

/// OpenAI's reset format: `20ms`, `1s`, `6m0s`, `1h2m3s`.
fn reset_text(us: i64) -> String {
    let ms = us.max(0) / 1000;
    if ms < 1000 {
        return format!("{ms}ms");
    }
    let s = (ms + 999) / 1000;
    let (h, m, s) = (s / 3600, (s % 3600) / 60, s % 60);
    match (h, m) {
        (0, 0) => format!("{s}s"),
        (0, m) => format!("{m}m{s}s"),
        (h, m) => format!("{h}h{m}m{s}s"),
    }
}

/// Usage of an OpenAI-shaped response body, if it reports one.
///
/// Reads the usage of every dialect a client may be answered in: OpenAI chat
/// (`prompt_tokens`…), OpenAI Responses (`input_tokens` with `input_tokens_details`) and
/// Anthropic (`input_tokens` beside `cache_read_input_tokens` and `cache_creation_input_tokens`,
/// which Anthropic does not count as input).
pub fn usage_of(body: &[u8]) -> Option<Tokens> {
    #[derive(serde::Deserialize)]
    struct Body {
        usage: Option<Loose>,
    }
    #[derive(serde::Deserialize)]
    struct Loose {
        prompt_tokens: Option<u64>,
        completion_tokens: Option<u64>,
        prompt_tokens_details: Option<Details>,
        completion_tokens_details: Option<Details>,
        input_tokens: Option<u64>,
        output_tokens: Option<u64>,
        input_tokens_details: Option<Details>,
        output_tokens_details: Option<Details>,
        cache_read_input_tokens: Option<u64>,
        cache_creation_input_tokens: Option<u64>,
    }
    #[derive(serde::Deserialize)]
    struct Details {
        #[serde(default)]
        cached_tokens: Option<u64>,
        #[serde(default)]
        reasoning_tokens: Option<u64>,
    }
    let u = serde_json::from_slice::<Body>(body).ok()?.usage?;
    let cached = |d: &Option<Details>| d.as_ref().and_then(|d| d.cached_tokens);
    let reasoning = |d: &Option<Details>| d.as_ref().and_then(|d| d.reasoning_tokens);
    if let Some(prompt) = u.prompt_tokens {
        return Some(Tokens {
            input: prompt,
            cached: cached(&u.prompt_tokens_details).unwrap_or(0),
            output: u.completion_tokens.unwrap_or(0),
            reasoning: reasoning(&u.completion_tokens_details).unwrap_or(0),
        });
    }
    let read = u.cache_read_input_tokens.unwrap_or(0);
    Some(Tokens {
        input: u.input_tokens? + read + u.cache_creation_input_tokens.unwrap_or(0),
        cached: u
            .cache_read_input_tokens
            .or(cached(&u.input_tokens_details))
            .unwrap_or(0),
        output: u.output_tokens.unwrap_or(0),
        reasoning: reasoning(&u.output_tokens_details).unwrap_or(0),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_is_read_in_every_dialect_a_client_is_answered_in() {
        let t = |body: serde_json::Value| usage_of(body.to_string().as_bytes()).unwrap();
        let chat = t(
            serde_json::json!({"usage": {"prompt_tokens": 120, "completion_tokens": 7,
            "prompt_tokens_details": {"cached_tokens": 100}, "completion_tokens_details": {"reasoning_tokens": 3}}}),
        );
        assert_eq!(
            (chat.input, chat.cached, chat.output, chat.reasoning),
            (120, 100, 7, 3)
        );
        // Anthropic leaves cache reads and writes out of input_tokens.
        let anthropic = t(
            serde_json::json!({"usage": {"input_tokens": 20, "output_tokens": 7,
            "cache_read_input_tokens": 100, "cache_creation_input_tokens": 5}}),
        );
        assert_eq!(
            (anthropic.input, anthropic.cached, anthropic.output),
            (125, 100, 7)
        );
        let responses = t(
            serde_json::json!({"usage": {"input_tokens": 120, "output_tokens": 7,
            "input_tokens_details": {"cached_tokens": 100}, "output_tokens_details": {"reasoning_tokens": 3},
            "total_tokens": 127}}),
        );
        assert_eq!(
            (
                responses.input,
                responses.cached,
                responses.output,
                responses.reasoning
            ),
            (120, 100, 7, 3)
        );
        assert!(usage_of(b"{\"usage\": null}").is_none());
        assert!(usage_of(b"{}").is_none());
    }

    #[test]
    fn resets_read_like_openais() {
        assert_eq!(reset_text(20_000), "20ms");
        assert_eq!(reset_text(1_000_000), "1s");
        assert_eq!(reset_text(360_000_000), "6m0s");
        assert_eq!(reset_text(3_723_000_000), "1h2m3s");
    }

    #[test]
    fn usage_is_read_from_openai_bodies() {
        let body = br#"{"id":"x","usage":{"prompt_tokens":10,"completion_tokens":5,"total_tokens":15,"prompt_tokens_details":{"cached_tokens":4}}}"#;
        assert_eq!(
            usage_of(body),
            Some(Tokens {
                input: 10,
                cached: 4,
                output: 5,
                reasoning: 0,
            })
        );
        assert_eq!(usage_of(b"{}"), None);
    }
}
