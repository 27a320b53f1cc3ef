//! `gatehouse.yaml`: plain deserialisation (`RawConfig`), then validation into `Config`.
//!
//! Step one reads YAML, substitutes `${ENV}` / `${ENV:-default}` in every string and deserialises
//! with unknown fields rejected; step two checks references, URLs, durations and sizes and reports
//! every problem at once, each with its path in the file (`models[2].targets[0].provider: …`).

mod kinds;
mod policies;
mod resources;

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use gatehouse_llm::catalog::CatalogFile;
use serde::{Deserialize, Serialize};
use serde_norway::Value;

use crate::error::ConfigError;

pub use kinds::{Named, ProviderKind, NAMED};

pub use policies::{
    compile_limit, Dimension, LimitSpec, RawAlerts, RawLimit, RawPolicy, Scope, SpendPeriod,
    TokenKind,
};
pub use resources::{
    valid_slug, Lifecycle, RawApp, RawCors, RawHealthCheck, RawJsonEdit, RawRoute, RawService,
    RawTenant, RawUpstreamNode, RetryMethods, ServiceKind, Visibility,
};

/// The config file as written.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    #[serde(default)]
    pub server: RawServer,
    #[serde(default)]
    pub keys: Vec<RawKey>,
    #[serde(default)]
    pub providers: Vec<RawProvider>,
    #[serde(default)]
    pub models: Vec<RawModel>,
    /// Additions to and overrides of the built-in model catalog.
    #[serde(default)]
    pub catalog: Vec<CatalogFile>,
    /// Tenants, services and apps need a store (`server.data_dir` or `server.store`): they are
    /// applied to it at start and managed by this file.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tenants: Vec<RawTenant>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub services: Vec<RawService>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub apps: Vec<RawApp>,
    /// Limits and budgets (with a store or without).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<RawPolicy>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    /// Largest request body, e.g. `32MiB`.
    pub max_body: Option<String>,
    /// How long in-flight requests may run after SIGTERM, e.g. `30s`.
    pub drain_timeout: Option<String>,
    /// Listen address of the admin API (default `127.0.0.1:8090`); used when there is a store.
    pub admin_listen: Option<String>,
    /// The directory `gatehouse init` made: the SQLite store and the master key live there.
    pub data_dir: Option<PathBuf>,
    /// The store's URL, when it is not the SQLite file in `data_dir` (e.g. `postgres://…`).
    pub store: Option<String>,
    /// The master key file (default `<data_dir>/master.key`).
    pub master_key_file: Option<PathBuf>,
    /// Redis shared by a cluster's nodes (`redis://…`, `rediss://…`); the limits backend reads it.
    pub redis: Option<String>,
    /// Which request and response bodies call records keep.
    pub capture_bodies: Option<CaptureBodies>,
    /// Body size cap and retention of the call log.
    #[serde(default)]
    pub call_log: RawCallLog,
    /// Anomaly detection over the call log's rollups.
    #[serde(default)]
    pub anomalies: RawAnomalies,
    /// OpenTelemetry traces (off unless `otlp_endpoint` or `OTEL_EXPORTER_OTLP_ENDPOINT` is set).
    #[serde(default)]
    pub tracing: RawTracing,
    /// How limits behave.
    #[serde(default)]
    pub limits: RawLimitSettings,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawLimitSettings {
    /// When Redis cannot be reached: `fail_closed` (refuse calls that have limits, the default)
    /// or `fail_open` (count on this node alone until it is back).
    pub on_redis_error: Option<OnRedisError>,
    /// Output tokens reserved for a call that sets no `max_tokens` (default 1024).
    pub default_output_tokens: Option<u32>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawCallLog {
    /// Largest body a record keeps, e.g. `16KiB` (default); the rest is cut and marked.
    pub body_limit: Option<String>,
    /// How long raw records are kept, e.g. `30d` (default).
    pub keep_records: Option<String>,
    /// How long per-minute rollups are kept, e.g. `400d` (default).
    pub keep_rollups: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTracing {
    /// OTLP/HTTP base URL, e.g. `http://127.0.0.1:4318`; spans are POSTed to `/v1/traces`.
    pub otlp_endpoint: Option<String>,
    /// `service.name` of the spans (default `gatehouse`).
    pub service_name: Option<String>,
    /// Headers sent to the collector (e.g. an API key).
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAnomalies {
    /// How often the detector looks at the last 15 minutes (default `5m`; `0s` turns it off).
    pub interval: Option<String>,
    /// How far from its baseline (in robust standard deviations) a window must be (default 4).
    pub threshold: Option<f64>,
    /// Findings are POSTed here as JSON, signed like budget alerts when `secret` is set.
    pub webhook: Option<String>,
    pub secret: Option<String>,
    /// Revoke an app key whose spend in a window reaches this many times its baseline (off by
    /// default).
    pub revoke_keys_over: Option<f64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnRedisError {
    #[default]
    FailClosed,
    FailOpen,
}

/// Which bodies call records keep: for the node (`server.capture_bodies`), overridden per tenant
/// and then per service. Kept bodies are size-capped and redacted (see `record::seal`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CaptureBodies {
    /// Metadata only: no bodies (`metadata` is accepted too).
    #[default]
    #[serde(alias = "metadata")]
    Off,
    /// Bodies of failed calls.
    Errors,
    /// Every body.
    #[serde(alias = "all")]
    Full,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawKey {
    pub name: String,
    pub key: String,
    /// Higher leaves an overloaded provider's queue first (default 0).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority: Option<i64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawProvider {
    pub name: String,
    /// The owning tenant; absent for the install's providers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub kind: ProviderKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub api_keys: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "RawTimeouts::is_unset")]
    pub timeouts: RawTimeouts,
    /// `max_tokens` sent to providers that require one when the client set none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_max_tokens: Option<u32>,
    /// Upstream models to list in `GET /v1/models` (else the catalog's models of this kind).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Learn how many calls the provider takes at once, and queue or shed the rest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<RawAdaptive>,
    /// Azure OpenAI: the `api-version` query parameter (default `2024-10-21`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub api_version: Option<String>,
    /// How the key is sent: `header` (the kind's own: `api-key` for Azure, `x-api-key` for
    /// Anthropic…; the default) or `bearer` (`Authorization: Bearer`, e.g. an Entra ID token).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<KeyAuth>,
    /// Bedrock: the AWS region (default `AWS_REGION`, then `AWS_DEFAULT_REGION`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Bedrock: static AWS credentials; without them the environment and the shared
    /// credentials file are used, as the AWS SDKs do.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_access_key_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_secret_access_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws_session_token: Option<String>,
}

/// How a provider's key is sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum KeyAuth {
    #[default]
    Header,
    Bearer,
}

/// The Azure OpenAI API version used unless a provider sets `api_version`.
pub const AZURE_API_VERSION: &str = "2024-10-21";

/// Adaptive concurrency of one provider (see the configuration reference).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAdaptive {
    /// Calls at once to start with (default 20).
    pub initial: Option<u32>,
    /// Never fewer than this (default 1).
    pub min: Option<u32>,
    /// Never more than this (default 500).
    pub max: Option<u32>,
    /// Calls that may wait for a slot (default 100); more are shed at once.
    pub max_queue: Option<u32>,
    /// How long a call may wait (default `5s`).
    pub queue_timeout: Option<String>,
    /// Latency above this many times the provider's usual counts as overload (default 2.0).
    pub tolerance: Option<f64>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTimeouts {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connect: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_byte: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total: Option<String>,
}

impl RawTimeouts {
    fn is_unset(&self) -> bool {
        *self == Self::default()
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawModel {
    pub name: String,
    /// The owning tenant, whose apps may call it without a subscription.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    /// An install-wide model every app may call without a subscription.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub open: bool,
    pub targets: Vec<RawTarget>,
    /// How a tier's targets are ordered (default `weighted`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<Strategy>,
    /// A request header (e.g. `x-session-id`) whose value keeps a conversation on one target
    /// while that target is healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity_header: Option<String>,
    /// Logical models to try, in order, when every target of this one failed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallbacks: Vec<String>,
    /// Most upstream attempts per call, across targets and fallbacks (default 3).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempts: Option<u32>,
    /// Wait before the second attempt, doubling each time, with ±50 % jitter (default `100ms`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_backoff: Option<String>,
    /// What moves a call to the next target: any of `connect`, `timeout`, `429`, `5xx`
    /// (default all four). Refusals for the context window or content are always retried.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retry_on: Vec<String>,
}

/// Which failures move a call to the next target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryOn {
    pub connect: bool,
    pub timeout: bool,
    pub rate_limited: bool,
    pub server_error: bool,
}

impl Default for RetryOn {
    fn default() -> Self {
        Self {
            connect: true,
            timeout: true,
            rate_limited: true,
            server_error: true,
        }
    }
}

impl RetryOn {
    /// From validated names (empty: all).
    pub fn from_list(list: &[String]) -> Self {
        if list.is_empty() {
            return Self::default();
        }
        let has = |n: &str| list.iter().any(|x| x == n);
        Self {
            connect: has("connect"),
            timeout: has("timeout"),
            rate_limited: has("429"),
            server_error: has("5xx"),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub provider: String,
    pub model: String,
    #[serde(default = "default_weight")]
    pub weight: u32,
    /// Lower tiers are tried first; a tier's targets share its traffic by weight.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub tier: u32,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

pub(crate) fn default_weight() -> u32 {
    1
}

/// How the targets of one tier are ordered for a call.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Strategy {
    /// At random in proportion to `weight` (A/B tests and canaries).
    #[default]
    Weighted,
    /// In turn.
    RoundRobin,
    /// The target with the fewest calls in flight first.
    LeastInFlight,
    /// Two targets at random, the one with the lower latency average first (power of two
    /// choices), then by latency.
    LowestLatency,
    /// The cheapest first, by the catalog's prices.
    LowestCost,
    /// As listed.
    Ordered,
}

/// The validated config.
#[derive(Debug, Clone)]
pub struct Config {
    pub server: Server,
    pub keys: Vec<RawKey>,
    pub providers: Vec<Provider>,
    pub models: Vec<RawModel>,
    pub catalog: Vec<CatalogFile>,
    pub tenants: Vec<RawTenant>,
    pub services: Vec<RawService>,
    pub apps: Vec<RawApp>,
    pub policies: Vec<RawPolicy>,
}

#[derive(Debug, Clone)]
pub struct Server {
    pub listen: SocketAddr,
    pub max_body: usize,
    pub drain_timeout: Duration,
    pub admin_listen: SocketAddr,
    pub data_dir: Option<PathBuf>,
    pub store: Option<String>,
    pub master_key_file: Option<PathBuf>,
    pub redis: Option<String>,
    pub capture_bodies: CaptureBodies,
    pub call_log: CallLogCfg,
    pub anomalies: AnomalyCfg,
    pub tracing: Option<crate::trace::TracingCfg>,
    pub on_redis_error: OnRedisError,
    pub default_output_tokens: u32,
}

/// The anomaly detector's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct AnomalyCfg {
    /// `None`: off.
    pub interval: Option<Duration>,
    pub threshold: f64,
    pub webhook: Option<String>,
    pub secret: Option<String>,
    pub revoke_keys_over: Option<f64>,
}

/// The call log's settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallLogCfg {
    pub body_limit: usize,
    pub keep_records: Duration,
    pub keep_rollups: Duration,
}

impl Default for CallLogCfg {
    fn default() -> Self {
        Self {
            body_limit: 16 * 1024,
            keep_records: Duration::from_secs(30 * 86_400),
            keep_rollups: Duration::from_secs(400 * 86_400),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Provider {
    pub name: String,
    pub tenant: Option<String>,
    pub kind: ProviderKind,
    pub base_url: String,
    pub api_keys: Vec<String>,
    pub headers: BTreeMap<String, String>,
    pub timeouts: Timeouts,
    pub default_max_tokens: u32,
    pub models: Vec<String>,
    pub adaptive: Option<crate::adaptive::AdaptiveCfg>,
    /// Azure OpenAI's `api-version`.
    pub api_version: String,
    pub auth: KeyAuth,
    /// Bedrock's region and static credentials, if any.
    pub aws: Option<crate::aws::AwsCfg>,
}

/// Upstream timeouts; see the configuration reference for what each one bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Timeouts {
    pub connect: Duration,
    pub first_byte: Duration,
    pub idle: Duration,
    pub total: Duration,
}

impl Default for Timeouts {
    fn default() -> Self {
        Self {
            connect: Duration::from_secs(10),
            first_byte: Duration::from_secs(120),
            idle: Duration::from_secs(60),
            total: Duration::from_secs(600),
        }
    }
}

pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_ADMIN_LISTEN: &str = "127.0.0.1:8090";
pub const DEFAULT_MAX_BODY: usize = 32 * 1024 * 1024;

impl RawConfig {
    /// Parses YAML text, substituting `${ENV}` from `env`.
    pub fn parse(text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let mut value: Value =
            serde_norway::from_str(text).map_err(|e| ConfigError::one("", e.to_string()))?;
        if value.is_null() {
            value = Value::Mapping(Default::default());
        }
        let mut errors = Vec::new();
        interpolate(&mut value, &mut String::new(), env, &mut errors);
        if !errors.is_empty() {
            return Err(ConfigError { problems: errors });
        }
        serde_path_to_error::deserialize(value).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigError::one(&path, e.into_inner().to_string())
        })
    }

    /// Reads and parses a file with the process environment.
    pub fn load(path: &std::path::Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| ConfigError::one("", format!("cannot read {}: {e}", path.display())))?;
        Self::parse(&text, &|k| std::env::var(k).ok())
    }

    /// Validates everything and reports every problem found.
    pub fn validate(self) -> Result<Config, ConfigError> {
        let mut p = Problems::default();
        let listen = self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN);
        let listen = listen
            .parse::<SocketAddr>()
            .map_err(|e| {
                p.add(
                    "server.listen",
                    format!("{listen:?} is not an address like 127.0.0.1:8080: {e}"),
                )
            })
            .unwrap_or_else(|()| SocketAddr::from(([127, 0, 0, 1], 8080)));
        let max_body = match &self.server.max_body {
            None => DEFAULT_MAX_BODY,
            Some(s) => parse_size(s).unwrap_or_else(|e| {
                p.add("server.max_body", e);
                DEFAULT_MAX_BODY
            }),
        };
        let call_log = {
            let d = CallLogCfg::default();
            let raw = &self.server.call_log;
            CallLogCfg {
                body_limit: match &raw.body_limit {
                    None => d.body_limit,
                    Some(s) => parse_size(s).unwrap_or_else(|e| {
                        p.add("server.call_log.body_limit", e);
                        d.body_limit
                    }),
                },
                keep_records: p.duration(
                    "server.call_log.keep_records",
                    raw.keep_records.as_deref(),
                    d.keep_records,
                ),
                keep_rollups: p.duration(
                    "server.call_log.keep_rollups",
                    raw.keep_rollups.as_deref(),
                    d.keep_rollups,
                ),
            }
        };
        let anomalies = {
            let raw = &self.server.anomalies;
            let interval = p.duration(
                "server.anomalies.interval",
                raw.interval.as_deref(),
                Duration::from_secs(300),
            );
            let threshold = raw.threshold.unwrap_or(4.0);
            if !(threshold.is_finite() && threshold > 0.0) {
                p.add("server.anomalies.threshold", "a number above 0".into());
            }
            if raw
                .revoke_keys_over
                .is_some_and(|r| !(r.is_finite() && r > 1.0))
            {
                p.add(
                    "server.anomalies.revoke_keys_over",
                    "a ratio above 1 (e.g. 20)".into(),
                );
            }
            if let Some(w) = &raw.webhook {
                if !(w.starts_with("http://") || w.starts_with("https://"))
                    || url::Url::parse(w).is_err()
                {
                    p.add(
                        "server.anomalies.webhook",
                        format!("{w:?} is not an http(s) URL"),
                    );
                }
            }
            AnomalyCfg {
                interval: (!interval.is_zero()).then_some(interval),
                threshold,
                webhook: raw.webhook.clone(),
                secret: raw.secret.clone(),
                revoke_keys_over: raw.revoke_keys_over,
            }
        };
        let tracing = {
            let raw = &self.server.tracing;
            let endpoint = raw
                .otlp_endpoint
                .clone()
                .or_else(|| std::env::var("OTEL_EXPORTER_OTLP_ENDPOINT").ok())
                .filter(|e| !e.is_empty());
            endpoint.and_then(|endpoint| {
                if url::Url::parse(&endpoint).is_err() || !endpoint.starts_with("http") {
                    p.add(
                        "server.tracing.otlp_endpoint",
                        format!("{endpoint:?} is not an http(s) URL"),
                    );
                    return None;
                }
                Some(crate::trace::TracingCfg {
                    endpoint,
                    service_name: raw
                        .service_name
                        .clone()
                        .or_else(|| std::env::var("OTEL_SERVICE_NAME").ok())
                        .unwrap_or_else(|| "gatehouse".into()),
                    headers: raw
                        .headers
                        .iter()
                        .map(|(k, v)| (k.clone(), v.clone()))
                        .collect(),
                })
            })
        };
        let drain_timeout = p.duration(
            "server.drain_timeout",
            self.server.drain_timeout.as_deref(),
            Duration::from_secs(30),
        );
        let admin = self
            .server
            .admin_listen
            .as_deref()
            .unwrap_or(DEFAULT_ADMIN_LISTEN);
        let admin_listen = admin
            .parse::<SocketAddr>()
            .map_err(|e| {
                p.add(
                    "server.admin_listen",
                    format!("{admin:?} is not an address like 127.0.0.1:8090: {e}"),
                )
            })
            .unwrap_or_else(|()| SocketAddr::from(([127, 0, 0, 1], 8090)));
        if let Some(r) = &self.server.redis {
            match url::Url::parse(r) {
                Ok(u) if matches!(u.scheme(), "redis" | "unix") => {}
                Ok(u) if u.scheme() == "rediss" => p.add(
                    "server.redis",
                    "TLS to Redis (rediss://) is not built in yet: reach Redis through a TLS tunnel and use redis://".into(),
                ),
                _ => p.add(
                    "server.redis",
                    format!("{r:?} is not a Redis URL like redis://127.0.0.1:6379"),
                ),
            }
        }
        let stored = self.server.data_dir.is_some() || self.server.store.is_some();
        if !stored {
            // Services work without a store (the file's keys may call them); tenants and apps
            // need one (their keys and subscriptions live there).
            for (what, n) in [("tenants", self.tenants.len()), ("apps", self.apps.len())] {
                if n > 0 {
                    p.add(
                        what,
                        "needs a store: set server.data_dir (see `gatehouse init`) or server.store"
                            .into(),
                    );
                }
            }
        }
        resources::check(&self, &mut p);
        policies::check(&self, &mut p);

        if self.keys.is_empty() && !stored {
            p.add(
                "keys",
                "at least one client key is required (keys: [{name, key}])".into(),
            );
        }
        let mut seen = HashSet::new();
        for (i, k) in self.keys.iter().enumerate() {
            if k.key.len() < 16 {
                p.add(
                    &format!("keys[{i}].key"),
                    "a client key must be at least 16 characters".into(),
                );
            }
            if !seen.insert(&k.key) {
                p.add(
                    &format!("keys[{i}].key"),
                    format!(
                        "the same key is given twice (also for another entry than {:?})",
                        k.name
                    ),
                );
            }
        }

        let mut providers = Vec::new();
        let mut names = HashSet::new();
        for (i, raw) in self.providers.into_iter().enumerate() {
            let at = format!("providers[{i}]");
            if !names.insert(raw.name.clone()) {
                p.add(
                    &format!("{at}.name"),
                    format!("provider {:?} is defined twice", raw.name),
                );
            }
            if raw.name.is_empty() || raw.name.contains('/') {
                p.add(
                    &format!("{at}.name"),
                    "a provider name must be non-empty and contain no '/'".into(),
                );
            }
            let region = (raw.kind == ProviderKind::Bedrock).then(|| {
                raw.region
                    .clone()
                    .or_else(|| std::env::var("AWS_REGION").ok())
                    .or_else(|| std::env::var("AWS_DEFAULT_REGION").ok())
                    .filter(|r| !r.is_empty())
            });
            if let Some(None) = &region {
                p.add(
                    &format!("{at}.region"),
                    "required for kind bedrock (or set AWS_REGION)".into(),
                );
            }
            let region = region.flatten();
            let base_url = match raw
                .base_url
                .or_else(|| raw.kind.default_base_url().map(str::to_owned))
                .or_else(|| {
                    region
                        .as_ref()
                        .map(|r| format!("https://bedrock-runtime.{r}.amazonaws.com"))
                }) {
                Some(u) => match url::Url::parse(&u) {
                    Ok(parsed)
                        if matches!(parsed.scheme(), "http" | "https")
                            && parsed.host().is_some() =>
                    {
                        u.trim_end_matches('/').to_owned()
                    }
                    Ok(_) => {
                        p.add(
                            &format!("{at}.base_url"),
                            format!("{u:?} is not an http(s) URL with a host"),
                        );
                        String::new()
                    }
                    Err(e) => {
                        p.add(
                            &format!("{at}.base_url"),
                            format!("{u:?} is not a valid URL: {e}"),
                        );
                        String::new()
                    }
                },
                None => {
                    p.add(
                        &format!("{at}.base_url"),
                        format!(
                            "required for kind {} ({})",
                            raw.kind,
                            if raw.kind == ProviderKind::AzureOpenai {
                                "the resource's endpoint, e.g. https://my-resource.openai.azure.com"
                            } else {
                                "the server's OpenAI-compatible base URL, e.g. http://127.0.0.1:8000/v1"
                            }
                        ),
                    );
                    String::new()
                }
            };
            let mut api_keys = raw.api_keys;
            api_keys.extend(raw.api_key);
            api_keys.retain(|k| !k.is_empty());
            if api_keys.is_empty() && raw.kind.needs_key() {
                p.add(
                    &format!("{at}.api_keys"),
                    "at least one API key is required for this kind".into(),
                );
            }
            let d = Timeouts::default();
            let t = &raw.timeouts;
            let timeouts = Timeouts {
                connect: p.duration(
                    &format!("{at}.timeouts.connect"),
                    t.connect.as_deref(),
                    d.connect,
                ),
                first_byte: p.duration(
                    &format!("{at}.timeouts.first_byte"),
                    t.first_byte.as_deref(),
                    d.first_byte,
                ),
                idle: p.duration(&format!("{at}.timeouts.idle"), t.idle.as_deref(), d.idle),
                total: p.duration(&format!("{at}.timeouts.total"), t.total.as_deref(), d.total),
            };
            for name in raw.headers.keys() {
                if http::HeaderName::from_bytes(name.as_bytes()).is_err() {
                    p.add(
                        &format!("{at}.headers"),
                        format!("{name:?} is not a valid header name"),
                    );
                }
            }
            let adaptive = raw.adaptive.as_ref().map(|a| {
                let min = f64::from(a.min.unwrap_or(1).max(1));
                let max = f64::from(a.max.unwrap_or(500)).max(min);
                crate::adaptive::AdaptiveCfg {
                    initial: f64::from(a.initial.unwrap_or(20)).clamp(min, max),
                    min,
                    max,
                    max_queue: a.max_queue.unwrap_or(100) as usize,
                    queue_timeout: p.duration(
                        &format!("{at}.adaptive.queue_timeout"),
                        a.queue_timeout.as_deref(),
                        Duration::from_secs(5),
                    ),
                    tolerance: a.tolerance.filter(|t| *t > 1.0).unwrap_or(2.0),
                }
            });
            providers.push(Provider {
                name: raw.name,
                tenant: raw.tenant,
                adaptive,
                kind: raw.kind,
                base_url,
                api_keys,
                headers: raw.headers,
                timeouts,
                default_max_tokens: raw.default_max_tokens.unwrap_or(4096),
                models: raw.models,
                api_version: raw
                    .api_version
                    .unwrap_or_else(|| AZURE_API_VERSION.to_owned()),
                auth: raw.auth.unwrap_or_default(),
                aws: region.map(|region| crate::aws::AwsCfg {
                    region,
                    static_credentials: match (raw.aws_access_key_id, raw.aws_secret_access_key) {
                        (Some(id), Some(secret)) if !id.is_empty() && !secret.is_empty() => {
                            Some(crate::aws::Credentials {
                                access_key_id: id,
                                secret_access_key: secret,
                                session_token: raw.aws_session_token.filter(|t| !t.is_empty()),
                            })
                        }
                        _ => None,
                    },
                }),
            });
        }

        let mut model_names = HashSet::new();
        for (i, m) in self.models.iter().enumerate() {
            if !model_names.insert(&m.name) {
                p.add(
                    &format!("models[{i}].name"),
                    format!("model {:?} is defined twice", m.name),
                );
            }
            if m.targets.is_empty() {
                p.add(
                    &format!("models[{i}].targets"),
                    "a model needs at least one target".into(),
                );
            }
            if !m.targets.is_empty() && m.targets.iter().all(|t| t.weight == 0) {
                p.add(
                    &format!("models[{i}].targets"),
                    "at least one target needs a weight above 0".into(),
                );
            }
            for (j, f) in m.fallbacks.iter().enumerate() {
                if f == &m.name || !self.models.iter().any(|o| &o.name == f) {
                    p.add(
                        &format!("models[{i}].fallbacks[{j}]"),
                        format!("no other model named {f:?}"),
                    );
                }
            }
            if let Some(h) = &m.affinity_header {
                if http::HeaderName::from_bytes(h.as_bytes()).is_err() {
                    p.add(
                        &format!("models[{i}].affinity_header"),
                        format!("{h:?} is not a header name"),
                    );
                }
            }
            for (j, r) in m.retry_on.iter().enumerate() {
                if !["connect", "timeout", "429", "5xx"].contains(&r.as_str()) {
                    p.add(
                        &format!("models[{i}].retry_on[{j}]"),
                        format!("{r:?}: use connect, timeout, 429 or 5xx"),
                    );
                }
            }
            if m.attempts.is_some_and(|a| a == 0 || a > 10) {
                p.add(&format!("models[{i}].attempts"), "between 1 and 10".into());
            }
            if let Some(b) = &m.retry_backoff {
                if let Err(e) = parse_duration(b) {
                    p.add(&format!("models[{i}].retry_backoff"), e);
                }
            }
            for (j, t) in m.targets.iter().enumerate() {
                if !names.contains(&t.provider) {
                    p.add(
                        &format!("models[{i}].targets[{j}].provider"),
                        format!("no provider named {:?}", t.provider),
                    );
                }
            }
        }
        p.finish()?;
        Ok(Config {
            server: Server {
                listen,
                max_body,
                drain_timeout,
                admin_listen,
                data_dir: self.server.data_dir,
                store: self.server.store,
                master_key_file: self.server.master_key_file,
                redis: self.server.redis,
                capture_bodies: self.server.capture_bodies.unwrap_or_default(),
                call_log,
                anomalies,
                tracing,
                on_redis_error: self.server.limits.on_redis_error.unwrap_or_default(),
                default_output_tokens: self.server.limits.default_output_tokens.unwrap_or(1024),
            },
            keys: self.keys,
            providers,
            models: self.models,
            catalog: self.catalog,
            tenants: self.tenants,
            services: self.services,
            apps: self.apps,
            policies: self.policies,
        })
    }
}

#[derive(Default)]
pub(crate) struct Problems(Vec<(String, String)>);

impl Problems {
    fn add(&mut self, path: &str, message: String) {
        self.0.push((path.to_owned(), message));
    }

    fn duration(&mut self, path: &str, value: Option<&str>, default: Duration) -> Duration {
        match value {
            None => default,
            Some(v) => parse_duration(v).unwrap_or_else(|e| {
                self.add(path, e);
                default
            }),
        }
    }

    fn finish(self) -> Result<(), ConfigError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ConfigError { problems: self.0 })
        }
    }
}

/// Replaces `${NAME}` and `${NAME:-default}` in every string, recording unset variables.
fn interpolate(
    v: &mut Value,
    path: &mut String,
    env: &dyn Fn(&str) -> Option<String>,
    errors: &mut Vec<(String, String)>,
) {
    match v {
        Value::String(s) if s.contains("${") => match substitute(s, env) {
            Ok(out) => *s = out,
            Err(e) => errors.push((path.clone(), e)),
        },
        Value::Sequence(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let len = path.len();
                path.push_str(&format!("[{i}]"));
                interpolate(item, path, env, errors);
                path.truncate(len);
            }
        }
        Value::Mapping(map) => {
            for (k, item) in map.iter_mut() {
                let len = path.len();
                if !path.is_empty() {
                    path.push('.');
                }
                path.push_str(k.as_str().unwrap_or("?"));
                interpolate(item, path, env, errors);
                path.truncate(len);
            }
        }
        _ => {}
    }
}

fn substitute(s: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<String, String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("unclosed ${{ in {s:?}"))?;
        let expr = &after[..end];
        let (name, default) = match expr.split_once(":-") {
            Some((n, d)) => (n, Some(d)),
            None => (expr, None),
        };
        match (env(name), default) {
            (Some(v), _) => out.push_str(&v),
            (None, Some(d)) => out.push_str(d),
            (None, None) => return Err(format!("environment variable {name} is not set")),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// Parses `500ms`, `30s`, `5m`, `1h`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let bad = || format!("{s:?} is not a duration like 500ms, 30s, 5m, 1h or 30d");
    let n: u64 = num.parse().map_err(|_| bad())?;
    let secs_per = match unit.trim() {
        "ms" => return Ok(Duration::from_millis(n)),
        "s" => 1,
        "m" => 60,
        "h" => 3_600,
        "d" => 86_400,
        _ => return Err(bad()),
    };
    n.checked_mul(secs_per)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Parses `1024`, `64KiB`, `32MiB`, `1GiB` (also KB/MB/GB as powers of 1000).
pub fn parse_size(s: &str) -> Result<usize, String> {
    let t = s.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num
        .parse()
        .map_err(|_| format!("{s:?} is not a size like 32MiB"))?;
    let mult: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        "KB" => 1_000,
        "MB" => 1_000_000,
        "GB" => 1_000_000_000,
        _ => return Err(format!("{s:?} is not a size like 32MiB")),
    };
    n.checked_mul(mult)
        .ok_or_else(|| format!("{s:?} is too large"))
}

#[cfg(test)]
mod tests;
