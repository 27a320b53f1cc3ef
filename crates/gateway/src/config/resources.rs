//! The multi-tenant resources of the configuration model: tenants, services and apps, and the
//! rules that tie them to providers and models.
//!
//! One schema serves `gatehouse.yaml`, `gatehouse apply -f` and the admin API (as JSON), so these
//! types and their checks live here, next to providers and models. The checks are the same
//! wherever a resource comes from: names, references, and tenant boundaries (a tenant's model may
//! target only its own or the install's providers; a service may offer only models its tenant
//! may use).

use std::collections::{HashMap, HashSet};

use serde::{Deserialize, Serialize};

use super::{Problems, RawConfig};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawTenant {
    pub name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub display_name: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Which bodies the tenant's call records keep (`off`, `errors`, `full`); overrides the
    /// node's `server.capture_bodies`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_bodies: Option<super::CaptureBodies>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawApp {
    pub name: String,
    pub tenant: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

/// A service in the catalog: a set of models (AI) or routes to upstream nodes (REST).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub name: String,
    /// The owning tenant; absent for the install's own services, which every tenant sees.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    #[serde(default)]
    pub kind: ServiceKind,
    #[serde(default = "default_version")]
    pub version: String,
    #[serde(default)]
    pub state: Lifecycle,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    /// Markdown shown in the developer portal.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub docs: String,
    #[serde(default)]
    pub visibility: Visibility,
    #[serde(default)]
    pub requires_approval: bool,
    /// AI services: the logical models the service offers.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// REST services: the upstream nodes requests are proxied to.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub upstreams: Vec<RawUpstreamNode>,
    /// REST services: which requests belong to the service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<RawRoute>,
    /// REST services: how nodes are ordered (`weighted`, `round_robin`, `least_in_flight`,
    /// `lowest_latency`, `ordered`; `lowest_cost` means `weighted` here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub strategy: Option<super::Strategy>,
    /// REST services: which methods move on to the next node after a failure: `idempotent`
    /// (GET, HEAD, OPTIONS, PUT, DELETE; the default), `all` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry: Option<RetryMethods>,
    /// REST services: speak HTTP/2 to the nodes (prior knowledge for `http://`), as gRPC needs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub http2: bool,
    /// REST services: an active probe of every node.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check: Option<RawHealthCheck>,
    /// Which bodies this service's call records keep (`off`, `errors`, `full`); overrides the
    /// tenant's and the node's setting.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capture_bodies: Option<super::CaptureBodies>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RetryMethods {
    #[default]
    Idempotent,
    All,
    None,
}

/// `GET <node><path>` every `interval`; a 2xx within `timeout` is healthy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawHealthCheck {
    pub path: String,
    /// Default `10s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Default `2s`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
}

fn default_version() -> String {
    "v1".to_owned()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawUpstreamNode {
    pub url: String,
    #[serde(default = "super::default_weight")]
    pub weight: u32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRoute {
    /// A path prefix under `/s/{service}`, e.g. `/orders` (matches `/orders` and `/orders/…`);
    /// a segment `{name}` matches any one segment and may be used in `rewrite`.
    pub path: String,
    /// Match the path exactly instead of as a prefix.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub exact: bool,
    /// Only requests for this host (the `Host` header, without its port).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// The longest the upstream may take, e.g. `30s` (default 60s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// The largest request body, e.g. `1MiB` (default `server.max_body`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_body: Option<String>,
    /// Client addresses allowed (CIDR, e.g. `10.0.0.0/8`); empty allows all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allow: Vec<String>,
    /// Client addresses refused (CIDR), checked before `allow`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub deny: Vec<String>,
    /// Cross-origin requests the route allows (preflights are answered by Gatehouse).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cors: Option<RawCors>,
    /// JSON body fields changed on the way up (request) and down (response).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_body: Option<RawJsonEdit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub response_body: Option<RawJsonEdit>,
    /// Allowed methods; empty means all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    /// What replaces the matched prefix upstream (default: the prefix itself).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rewrite: Option<String>,
    /// Headers set on the upstream request.
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub add_headers: std::collections::BTreeMap<String, String>,
    /// Headers removed from the upstream request.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove_headers: Vec<String>,
    /// Headers renamed on the upstream request (`from: to`).
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rename_headers: std::collections::BTreeMap<String, String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCors {
    /// Allowed origins (`*` for any).
    pub origins: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub methods: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub headers: Vec<String>,
    /// Seconds browsers may cache a preflight (default 600).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age: Option<u32>,
}

/// Changes to the top-level fields of a JSON object body, applied remove → rename → add.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RawJsonEdit {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
    #[serde(default, skip_serializing_if = "std::collections::BTreeMap::is_empty")]
    pub rename: std::collections::BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    #[schema(value_type = Object)]
    pub add: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServiceKind {
    #[default]
    Ai,
    Rest,
}

/// A service's lifecycle: only `published` and `deprecated` services can be called, and only
/// `published` ones accept new subscriptions.
#[derive(
    Debug,
    Clone,
    Copy,
    Default,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Lifecycle {
    #[default]
    Draft,
    Published,
    Deprecated,
    Retired,
}

impl Lifecycle {
    pub fn callable(self) -> bool {
        matches!(self, Self::Published | Self::Deprecated)
    }

    /// Whether a service may move from `self` to `to`: forward, or back from deprecated to
    /// published.
    pub fn may_become(self, to: Self) -> bool {
        to >= self || (self == Self::Deprecated && to == Self::Published)
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Visibility {
    /// Only the owning tenant's apps see and subscribe to it.
    #[default]
    Private,
    /// Listed in the catalog for every tenant.
    Shared,
}

/// Whether a name fits in URLs and YAML unquoted: 1–64 of `[A-Za-z0-9._-]`, starting alphanumeric.
pub fn valid_slug(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 64
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

const SLUG: &str =
    "must be 1–64 characters of letters, digits, '.', '_' or '-', starting with a letter or digit";

/// Checks names, references and tenant boundaries across all resources.
pub(super) fn check(cfg: &RawConfig, p: &mut Problems) {
    let mut tenants = HashSet::new();
    for (i, t) in cfg.tenants.iter().enumerate() {
        if !valid_slug(&t.name) {
            p.add(
                &format!("tenants[{i}].name"),
                format!("{:?} {SLUG}", t.name),
            );
        }
        if !tenants.insert(t.name.as_str()) {
            p.add(
                &format!("tenants[{i}].name"),
                format!("tenant {:?} is defined twice", t.name),
            );
        }
    }
    let tenant_ref = |p: &mut Problems, at: String, t: &Option<String>| {
        if let Some(t) = t {
            if !tenants.contains(t.as_str()) {
                p.add(&at, format!("no tenant named {t:?}"));
            }
        }
    };
    let provider_tenant: HashMap<&str, Option<&str>> = cfg
        .providers
        .iter()
        .map(|pr| (pr.name.as_str(), pr.tenant.as_deref()))
        .collect();
    for (i, pr) in cfg.providers.iter().enumerate() {
        tenant_ref(p, format!("providers[{i}].tenant"), &pr.tenant);
    }
    let model_tenant: HashMap<&str, Option<&str>> = cfg
        .models
        .iter()
        .map(|m| (m.name.as_str(), m.tenant.as_deref()))
        .collect();
    for (i, m) in cfg.models.iter().enumerate() {
        tenant_ref(p, format!("models[{i}].tenant"), &m.tenant);
        if let Some(own) = m.tenant.as_deref() {
            for (j, t) in m.targets.iter().enumerate() {
                if let Some(Some(other)) = provider_tenant.get(t.provider.as_str()) {
                    if *other != own {
                        p.add(
                            &format!("models[{i}].targets[{j}].provider"),
                            format!("provider {:?} belongs to another tenant", t.provider),
                        );
                    }
                }
            }
        } else {
            for (j, t) in m.targets.iter().enumerate() {
                if let Some(Some(_)) = provider_tenant.get(t.provider.as_str()) {
                    p.add(
                        &format!("models[{i}].targets[{j}].provider"),
                        format!(
                            "provider {:?} belongs to a tenant; an install-wide model may only use install-wide providers",
                            t.provider
                        ),
                    );
                }
            }
        }
    }
    let mut services = HashSet::new();
    for (i, s) in cfg.services.iter().enumerate() {
        let at = format!("services[{i}]");
        if !valid_slug(&s.name) {
            p.add(&format!("{at}.name"), format!("{:?} {SLUG}", s.name));
        }
        if !services.insert(s.name.as_str()) {
            p.add(
                &format!("{at}.name"),
                format!("service {:?} is defined twice", s.name),
            );
        }
        tenant_ref(p, format!("{at}.tenant"), &s.tenant);
        match s.kind {
            ServiceKind::Ai => {
                if !s.upstreams.is_empty() || !s.routes.is_empty() {
                    p.add(
                        &format!("{at}.kind"),
                        "upstreams and routes belong to kind rest".into(),
                    );
                }
                for (j, m) in s.models.iter().enumerate() {
                    match model_tenant.get(m.as_str()) {
                        None => p.add(
                            &format!("{at}.models[{j}]"),
                            format!("no model named {m:?}"),
                        ),
                        Some(Some(owner)) if s.tenant.as_deref() != Some(*owner) => p.add(
                            &format!("{at}.models[{j}]"),
                            format!("model {m:?} belongs to another tenant"),
                        ),
                        Some(_) => {}
                    }
                }
            }
            ServiceKind::Rest => {
                if !s.models.is_empty() {
                    p.add(&format!("{at}.models"), "models belong to kind ai".into());
                }
                for (j, u) in s.upstreams.iter().enumerate() {
                    match url::Url::parse(&u.url) {
                        Ok(parsed)
                            if matches!(parsed.scheme(), "http" | "https")
                                && parsed.host().is_some() => {}
                        _ => p.add(
                            &format!("{at}.upstreams[{j}].url"),
                            format!("{:?} is not an http(s) URL with a host", u.url),
                        ),
                    }
                }
                if let Some(hc) = &s.health_check {
                    if !hc.path.starts_with('/') {
                        p.add(
                            &format!("{at}.health_check.path"),
                            "a path starts with '/'".into(),
                        );
                    }
                    for (what, v) in [("interval", &hc.interval), ("timeout", &hc.timeout)] {
                        if let Some(Err(e)) = v.as_deref().map(super::parse_duration) {
                            p.add(&format!("{at}.health_check.{what}"), e);
                        }
                    }
                }
                for (j, r) in s.routes.iter().enumerate() {
                    if !r.path.starts_with('/') {
                        p.add(
                            &format!("{at}.routes[{j}].path"),
                            "a route path starts with '/'".into(),
                        );
                    }
                    for (what, list) in [("allow", &r.allow), ("deny", &r.deny)] {
                        for (k, c) in list.iter().enumerate() {
                            if c.parse::<ipnet::IpNet>().is_err()
                                && c.parse::<std::net::IpAddr>().is_err()
                            {
                                p.add(
                                    &format!("{at}.routes[{j}].{what}[{k}]"),
                                    format!("{c:?} is not an address or CIDR like 10.0.0.0/8"),
                                );
                            }
                        }
                    }
                    if let Some(t) = &r.timeout {
                        if let Err(e) = super::parse_duration(t) {
                            p.add(&format!("{at}.routes[{j}].timeout"), e);
                        }
                    }
                    if let Some(b) = &r.max_body {
                        if let Err(e) = super::parse_size(b) {
                            p.add(&format!("{at}.routes[{j}].max_body"), e);
                        }
                    }
                    for (k, m) in r.methods.iter().enumerate() {
                        if http::Method::from_bytes(m.as_bytes()).is_err() {
                            p.add(
                                &format!("{at}.routes[{j}].methods[{k}]"),
                                format!("{m:?} is not an HTTP method"),
                            );
                        }
                    }
                }
            }
        }
    }
    let mut apps = HashSet::new();
    for (i, a) in cfg.apps.iter().enumerate() {
        if !valid_slug(&a.name) {
            p.add(&format!("apps[{i}].name"), format!("{:?} {SLUG}", a.name));
        }
        if !apps.insert((a.tenant.as_str(), a.name.as_str())) {
            p.add(
                &format!("apps[{i}].name"),
                format!("app {:?} is defined twice in tenant {:?}", a.name, a.tenant),
            );
        }
        tenant_ref(p, format!("apps[{i}].tenant"), &Some(a.tenant.clone()));
    }
}
