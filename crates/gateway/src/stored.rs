//! The configuration model in the store: resources as rows, and the rows back as one config.
//!
//! A `Doc` is one resource as the config file, `apply -f` and the admin API write it (tenant by
//! name, credentials in clear). In the store its name and tenant are columns, its credentials
//! are sealed apart from the spec, and the rest is the spec's JSON. `load` reads every row back
//! into a `RawConfig` (plus keys and subscriptions) that validates and builds a snapshot exactly
//! like a config file does.

use std::collections::HashMap;

use gatehouse_store::{ActiveKey, Kind, Resource, ResourceInput, Store, StoreError, Subscription};
use serde_json::Value;

use crate::config::{RawApp, RawConfig, RawModel, RawPolicy, RawProvider, RawService, RawTenant};

/// One declarative resource.
#[derive(Debug, Clone, PartialEq)]
pub enum Doc {
    Tenant(RawTenant),
    Provider(RawProvider),
    Model(RawModel),
    Service(RawService),
    App(RawApp),
    Policy(RawPolicy),
}

impl Doc {
    pub fn kind(&self) -> Kind {
        match self {
            Self::Tenant(_) => Kind::Tenant,
            Self::Provider(_) => Kind::Provider,
            Self::Model(_) => Kind::Model,
            Self::Service(_) => Kind::Service,
            Self::App(_) => Kind::App,
            Self::Policy(_) => Kind::Policy,
        }
    }

    pub fn name(&self) -> &str {
        match self {
            Self::Tenant(t) => &t.name,
            Self::Provider(p) => &p.name,
            Self::Model(m) => &m.name,
            Self::Service(s) => &s.name,
            Self::App(a) => &a.name,
            Self::Policy(p) => &p.name,
        }
    }

    /// The owning tenant's name.
    pub fn tenant(&self) -> Option<&str> {
        match self {
            Self::Tenant(_) => None,
            Self::Provider(p) => p.tenant.as_deref(),
            Self::Model(m) => m.tenant.as_deref(),
            Self::Service(s) => s.tenant.as_deref(),
            Self::App(a) => Some(&a.tenant),
            Self::Policy(p) => p.tenant.as_deref(),
        }
    }

    /// The resource's fields as JSON, credentials included.
    pub fn to_value(&self) -> Value {
        match self {
            Self::Tenant(t) => serde_json::to_value(t),
            Self::Provider(p) => serde_json::to_value(p),
            Self::Model(m) => serde_json::to_value(m),
            Self::Service(s) => serde_json::to_value(s),
            Self::App(a) => serde_json::to_value(a),
            Self::Policy(p) => serde_json::to_value(p),
        }
        .unwrap_or(Value::Null)
    }

    /// The row to store: name and tenant become columns, credentials the sealed secret.
    pub fn to_input(&self, tenant_id: Option<String>, managed_by: Option<String>) -> ResourceInput {
        let mut secret = None;
        let mut spec = match self {
            Self::Tenant(t) => serde_json::to_value(t),
            Self::Provider(p) => {
                let mut keys = p.api_keys.clone();
                keys.extend(p.api_key.clone());
                // Keys alone are sealed as a list (as always); with AWS secrets, as an object.
                let aws = (p.aws_secret_access_key.is_some() || p.aws_session_token.is_some())
                    .then(|| {
                        serde_json::json!({
                            "api_keys": keys,
                            "aws_secret_access_key": p.aws_secret_access_key,
                            "aws_session_token": p.aws_session_token,
                        })
                    });
                if let Some(a) = aws {
                    secret = Some(a.to_string());
                } else if !keys.is_empty() {
                    secret = Some(Value::from(keys).to_string());
                }
                serde_json::to_value(RawProvider {
                    api_key: None,
                    api_keys: Vec::new(),
                    aws_secret_access_key: None,
                    aws_session_token: None,
                    ..p.clone()
                })
            }
            Self::Model(m) => serde_json::to_value(m),
            Self::Service(s) => serde_json::to_value(s),
            Self::App(a) => serde_json::to_value(a),
            Self::Policy(p) => {
                let mut p = p.clone();
                if let Some(a) = &mut p.alerts {
                    secret = a.secret.take();
                }
                serde_json::to_value(p)
            }
        }
        .unwrap_or(Value::Null);
        if let Value::Object(map) = &mut spec {
            map.remove("name");
            map.remove("tenant");
        }
        ResourceInput {
            kind: self.kind(),
            tenant_id,
            name: self.name().to_owned(),
            spec,
            secret,
            managed_by,
        }
    }

    /// The resource as the config model sees it, with its tenant's name.
    pub fn from_resource(r: &Resource, tenant: Option<&str>) -> Result<Self, StoreError> {
        let mut spec = r.spec.clone();
        let Value::Object(map) = &mut spec else {
            return Err(corrupt(r, "spec is not an object"));
        };
        map.insert("name".into(), Value::from(r.name.clone()));
        if let Some(t) = tenant {
            map.insert("tenant".into(), Value::from(t));
        }
        if r.kind == Kind::Provider {
            if let Some(secret) = &r.secret {
                let sealed: Value =
                    serde_json::from_str(secret).map_err(|e| corrupt(r, &e.to_string()))?;
                match sealed {
                    Value::Object(fields) => {
                        for (k, v) in fields {
                            if !v.is_null() {
                                map.insert(k, v);
                            }
                        }
                    }
                    keys => {
                        map.insert("api_keys".into(), keys);
                    }
                }
            }
        }
        if r.kind == Kind::Policy {
            if let (Some(secret), Some(Value::Object(alerts))) = (&r.secret, map.get_mut("alerts"))
            {
                alerts.insert("secret".into(), Value::from(secret.clone()));
            }
        }
        let parse = |e: serde_json::Error| corrupt(r, &e.to_string());
        Ok(match r.kind {
            Kind::Tenant => Self::Tenant(serde_json::from_value(spec).map_err(parse)?),
            Kind::Provider => Self::Provider(serde_json::from_value(spec).map_err(parse)?),
            Kind::Model => Self::Model(serde_json::from_value(spec).map_err(parse)?),
            Kind::Service => Self::Service(serde_json::from_value(spec).map_err(parse)?),
            Kind::App => Self::App(serde_json::from_value(spec).map_err(parse)?),
            Kind::Policy => Self::Policy(serde_json::from_value(spec).map_err(parse)?),
        })
    }
}

fn corrupt(r: &Resource, detail: &str) -> StoreError {
    StoreError::Corrupt {
        what: format!("{} {}", r.kind, r.name),
        detail: detail.to_owned(),
    }
}

/// Everything the store holds that a snapshot needs.
#[derive(Debug, Clone, Default)]
pub struct Stored {
    /// The stored resources as one config (no server settings, no static keys).
    pub config: RawConfig,
    /// The rows behind `config`, by kind and name (apps: by tenant name and app name).
    pub rows: HashMap<(Kind, String), Resource>,
    pub tenant_names: HashMap<String, String>,
    pub keys: Vec<ActiveKey>,
    pub subscriptions: Vec<Subscription>,
    pub revision: i64,
}

/// The key under which `rows` files a resource.
pub fn row_key(kind: Kind, tenant: Option<&str>, name: &str) -> (Kind, String) {
    match kind {
        Kind::App => (kind, format!("{}/{name}", tenant.unwrap_or_default())),
        _ => (kind, name.to_owned()),
    }
}

impl Stored {
    /// Adds the stored resources to `cfg` (the file's settings and static keys).
    pub fn merged_into(&self, mut cfg: RawConfig) -> RawConfig {
        let c = self.config.clone();
        cfg.tenants = c.tenants;
        cfg.providers = c.providers;
        cfg.models = c.models;
        cfg.services = c.services;
        cfg.apps = c.apps;
        cfg.policies = c.policies;
        cfg
    }

    /// A resource's row, by kind, tenant name and name.
    pub fn row(&self, kind: Kind, tenant: Option<&str>, name: &str) -> Option<&Resource> {
        self.rows.get(&row_key(kind, tenant, name))
    }
}

/// Reads every resource, live key and subscription.
pub async fn load(store: &Store) -> Result<Stored, StoreError> {
    let revision = store.revision().await?;
    let resources = store.all_resources().await?;
    let tenant_names: HashMap<String, String> = resources
        .iter()
        .filter(|r| r.kind == Kind::Tenant)
        .map(|r| (r.id.clone(), r.name.clone()))
        .collect();
    let mut out = Stored {
        revision,
        ..Stored::default()
    };
    for r in resources {
        let tenant = r.tenant_id.as_ref().and_then(|id| tenant_names.get(id));
        let doc = Doc::from_resource(&r, tenant.map(String::as_str))?;
        out.rows
            .insert(row_key(r.kind, tenant.map(String::as_str), &r.name), r);
        match doc {
            Doc::Tenant(t) => out.config.tenants.push(t),
            Doc::Provider(p) => out.config.providers.push(p),
            Doc::Model(m) => out.config.models.push(m),
            Doc::Service(s) => out.config.services.push(s),
            Doc::App(a) => out.config.apps.push(a),
            Doc::Policy(p) => out.config.policies.push(p),
        }
    }
    out.tenant_names = tenant_names;
    out.keys = store.active_keys().await?;
    out.subscriptions = store.all_subscriptions().await?;
    Ok(out)
}
