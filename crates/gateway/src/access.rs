//! Who may call what: client keys as principals, and the rules of tenants, subscriptions and
//! scopes.
//!
//! Keys are found by their keyed hash (the store's HMAC), so looking one up reveals nothing
//! through timing and the snapshot never holds a key in clear. A key from the config file is the
//! operator's own and may call everything. An app's key may call a model when the model is its
//! tenant's own, or open to the install, or offered by a callable service that the app holds an
//! approved subscription to — and, if the key has scopes, when the model or that service is
//! among them. A refusal says which subscription is missing and what state it is in.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_store::SubState;

use crate::config::Config;
use crate::stored::Stored;

/// A caller, as identified by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    /// The key's name (config keys) or visible id (app keys), for logs and records.
    pub key_name: Arc<str>,
    pub who: Who,
    /// Unix milliseconds after which the key no longer works.
    pub expires_at: Option<i64>,
    /// Services or models the key is limited to; empty means no limit beyond its app's.
    pub scopes: Arc<[String]>,
    /// Higher leaves an overloaded provider's queue first.
    pub priority: i64,
    /// The store id of the key's tenant (for call records).
    pub tenant_id: Option<Arc<str>>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Who {
    /// A key from the config file: the operator's, unrestricted.
    Operator,
    App {
        app_id: Arc<str>,
        app: Arc<str>,
        tenant: Arc<str>,
    },
}

#[derive(Debug, Clone, Default)]
struct ModelRule {
    tenant: Option<String>,
    open: bool,
    /// Callable services offering the model.
    services: Vec<String>,
}

/// The access rules of one snapshot.
#[derive(Debug, Clone, Default)]
pub struct Access {
    models: HashMap<String, ModelRule>,
    /// Callable services → their owning tenant.
    services: HashMap<String, Option<String>>,
    provider_tenant: HashMap<String, Option<String>>,
    /// (app id, service name) → state.
    subscriptions: HashMap<(String, String), SubState>,
}

/// Why a call is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub code: &'static str,
    pub message: String,
}

impl Access {
    pub fn build(cfg: &Config, stored: Option<&Stored>) -> Self {
        let mut models: HashMap<String, ModelRule> = cfg
            .models
            .iter()
            .map(|m| {
                let rule = ModelRule {
                    tenant: m.tenant.clone(),
                    open: m.open,
                    services: Vec::new(),
                };
                (m.name.clone(), rule)
            })
            .collect();
        for s in cfg.services.iter().filter(|s| s.state.callable()) {
            for m in &s.models {
                if let Some(rule) = models.get_mut(m) {
                    rule.services.push(s.name.clone());
                }
            }
        }
        let subscriptions = stored
            .map(|st| {
                st.subscriptions
                    .iter()
                    .map(|s| ((s.app_id.clone(), s.service_name.clone()), s.state))
                    .collect()
            })
            .unwrap_or_default();
        let services = cfg
            .services
            .iter()
            .filter(|s| s.state.callable())
            .map(|s| (s.name.clone(), s.tenant.clone()))
            .collect();
        Self {
            models,
            services,
            provider_tenant: cfg
                .providers
                .iter()
                .map(|p| (p.name.clone(), p.tenant.clone()))
                .collect(),
            subscriptions,
        }
    }

    /// Whether `p` may call `model` (a logical name, or `provider/model`); when it may through a
    /// subscription, the service it goes through.
    pub fn authorise(&self, p: &Principal, model: &str) -> Result<Option<String>, Refusal> {
        let Who::App {
            app_id,
            app,
            tenant,
        } = &p.who
        else {
            return Ok(None);
        };
        let Some(rule) = self.models.get(model) else {
            return self.authorise_direct(p, tenant, model);
        };
        let in_scope = |name: &str| p.scopes.is_empty() || p.scopes.iter().any(|s| s == name);
        let scope_refusal = || Refusal {
            code: "scope_denied",
            message: format!(
                "key {} is limited to {}; model `{model}` is not among them",
                p.key_name,
                p.scopes.join(", ")
            ),
        };
        if rule.tenant.as_deref() == Some(&**tenant) || (rule.open && rule.tenant.is_none()) {
            return if in_scope(model) {
                Ok(None)
            } else {
                Err(scope_refusal())
            };
        }
        let mut states = Vec::new();
        for service in &rule.services {
            let state = self
                .subscriptions
                .get(&(app_id.to_string(), service.clone()))
                .copied();
            if state == Some(SubState::Approved) {
                if in_scope(model) || in_scope(service) {
                    return Ok(Some(service.clone()));
                }
                return Err(scope_refusal());
            }
            states.push((service, state));
        }
        let message = match states.as_slice() {
            [] => format!("model `{model}` is not offered to app `{app}` (tenant `{tenant}`): it belongs to no published service it can subscribe to"),
            list => {
                let parts: Vec<String> = list
                    .iter()
                    .map(|(s, st)| match st {
                        None => format!("service `{s}`: no subscription"),
                        Some(st) => format!("service `{s}`: subscription {}", st.as_str()),
                    })
                    .collect();
                format!(
                    "app `{app}` (tenant `{tenant}`) needs an approved subscription to call model `{model}` ({})",
                    parts.join("; ")
                )
            }
        };
        Err(Refusal {
            code: "subscription_required",
            message,
        })
    }

    /// Whether `p` may call the REST service `service`: its tenant's own, or an approved
    /// subscription, within the key's scopes.
    pub fn authorise_service(&self, p: &Principal, service: &str) -> Result<(), Refusal> {
        let Who::App {
            app_id,
            app,
            tenant,
        } = &p.who
        else {
            return Ok(());
        };
        let Some(owner) = self.services.get(service) else {
            return Err(Refusal {
                code: "service_not_found",
                message: format!("there is no callable service `{service}`"),
            });
        };
        if !p.scopes.is_empty() && !p.scopes.iter().any(|s| s == service) {
            return Err(Refusal {
                code: "scope_denied",
                message: format!("key {} is not scoped for service `{service}`", p.key_name),
            });
        }
        if owner.as_deref() == Some(&**tenant) {
            return Ok(());
        }
        match self
            .subscriptions
            .get(&(app_id.to_string(), service.to_owned()))
        {
            Some(SubState::Approved) => Ok(()),
            state => Err(Refusal {
                code: "subscription_required",
                message: format!(
                    "app `{app}` (tenant `{tenant}`) needs an approved subscription to service `{service}` ({})",
                    state.map_or("no subscription".to_owned(), |s| format!("subscription {}", s.as_str()))
                ),
            }),
        }
    }

    fn authorise_direct(
        &self,
        p: &Principal,
        tenant: &str,
        model: &str,
    ) -> Result<Option<String>, Refusal> {
        let provider = model.split_once('/').map(|(p, _)| p).unwrap_or(model);
        match self.provider_tenant.get(provider) {
            Some(Some(owner)) if owner == tenant => {
                if p.scopes.is_empty() || p.scopes.iter().any(|s| s == model) {
                    Ok(None)
                } else {
                    Err(Refusal {
                        code: "scope_denied",
                        message: format!("key {} is not scoped for `{model}`", p.key_name),
                    })
                }
            }
            // Unknown names fall through to routing, which answers 404.
            None => Ok(None),
            Some(_) => Err(Refusal {
                code: "permission_denied",
                message: format!(
                    "`{model}` names a provider directly; apps may do that only with their own tenant's providers — call a model your app subscribes to instead"
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::RawConfig;

    fn access(subs: &[(&str, &str, SubState)]) -> Access {
        let cfg = RawConfig::parse(
            r#"
server: { data_dir: "." }
tenants: [{name: acme}, {name: other}]
providers:
  - {name: shared, kind: openai, api_keys: [k]}
  - {name: acme-llm, tenant: acme, kind: openai, api_keys: [k]}
  - {name: other-llm, tenant: other, kind: openai, api_keys: [k]}
models:
  - {name: premium, targets: [{provider: shared, model: gpt-4o}]}
  - {name: free, open: true, targets: [{provider: shared, model: gpt-4o-mini}]}
  - {name: acme-own, tenant: acme, targets: [{provider: acme-llm, model: m}]}
  - {name: other-own, tenant: other, targets: [{provider: other-llm, model: m}]}
  - {name: unlisted, targets: [{provider: shared, model: x}]}
services:
  - {name: gold, models: [premium], state: published, requires_approval: true}
  - {name: draft-svc, models: [unlisted], state: draft}
  - {name: orders, kind: rest, state: published, requires_approval: true, upstreams: [{url: "http://x"}]}
  - {name: acme-api, tenant: acme, kind: rest, state: published, upstreams: [{url: "http://x"}]}
"#,
            &|_| None,
        )
        .unwrap()
        .validate()
        .unwrap();
        let stored = Stored {
            subscriptions: subs
                .iter()
                .map(|(app, service, state)| gatehouse_store::Subscription {
                    id: "s".into(),
                    app_id: (*app).into(),
                    app_name: "web".into(),
                    app_tenant_id: "t".into(),
                    service_id: "v".into(),
                    service_name: (*service).into(),
                    service_tenant_id: None,
                    state: *state,
                    requested_by: "x".into(),
                    decided_by: None,
                    reason: None,
                    revision: 1,
                    created_at: 0,
                    updated_at: 0,
                })
                .collect(),
            ..Stored::default()
        };
        Access::build(&cfg, Some(&stored))
    }

    fn app_key(scopes: &[&str]) -> Principal {
        Principal {
            key_name: "gatehouse_k".into(),
            who: Who::App {
                app_id: "app1".into(),
                app: "web".into(),
                tenant: "acme".into(),
            },
            expires_at: None,
            scopes: scopes
                .iter()
                .map(|s| (*s).to_owned())
                .collect::<Vec<_>>()
                .into(),
            priority: 0,
            tenant_id: None,
        }
    }

    #[test]
    fn an_app_calls_its_tenants_models_open_ones_and_what_it_subscribed_to() {
        let none = access(&[]);
        let key = app_key(&[]);
        assert!(none.authorise(&key, "acme-own").is_ok());
        assert!(none.authorise(&key, "free").is_ok());
        let r = none.authorise(&key, "premium").unwrap_err();
        assert_eq!(r.code, "subscription_required");
        assert!(
            r.message.contains("service `gold`: no subscription"),
            "{}",
            r.message
        );
        let pending = access(&[("app1", "gold", SubState::Pending)]);
        let r = pending.authorise(&key, "premium").unwrap_err();
        assert!(r.message.contains("subscription pending"), "{}", r.message);
        let approved = access(&[("app1", "gold", SubState::Approved)]);
        assert!(approved.authorise(&key, "premium").is_ok());
        let another_app = access(&[("app2", "gold", SubState::Approved)]);
        assert!(another_app.authorise(&key, "premium").is_err());
        let r = none.authorise(&key, "other-own").unwrap_err();
        assert!(r.message.contains("not offered"), "{}", r.message);
        assert!(
            none.authorise(&key, "unlisted").is_err(),
            "a draft service offers nothing"
        );
    }

    #[test]
    fn rest_services_need_a_subscription_unless_they_are_the_tenants_own() {
        let key = app_key(&[]);
        let r = access(&[]).authorise_service(&key, "orders").unwrap_err();
        assert_eq!(r.code, "subscription_required");
        assert!(r.message.contains("no subscription"), "{}", r.message);
        let r = access(&[("app1", "orders", SubState::Pending)])
            .authorise_service(&key, "orders")
            .unwrap_err();
        assert!(r.message.contains("subscription pending"), "{}", r.message);
        let ok = access(&[("app1", "orders", SubState::Approved)]);
        assert!(ok.authorise_service(&key, "orders").is_ok());
        assert_eq!(
            ok.authorise_service(&app_key(&["gold"]), "orders")
                .unwrap_err()
                .code,
            "scope_denied"
        );
        assert!(access(&[]).authorise_service(&key, "acme-api").is_ok());
        assert_eq!(
            access(&[])
                .authorise_service(&key, "nope")
                .unwrap_err()
                .code,
            "service_not_found"
        );
    }

    #[test]
    fn scopes_narrow_a_key_and_direct_provider_calls_stay_in_the_tenant() {
        let approved = access(&[("app1", "gold", SubState::Approved)]);
        assert!(approved.authorise(&app_key(&["gold"]), "premium").is_ok());
        assert!(approved
            .authorise(&app_key(&["premium"]), "premium")
            .is_ok());
        let r = approved
            .authorise(&app_key(&["free"]), "premium")
            .unwrap_err();
        assert_eq!(r.code, "scope_denied");
        assert!(approved.authorise(&app_key(&["free"]), "acme-own").is_err());
        let key = app_key(&[]);
        assert!(approved.authorise(&key, "acme-llm/some-model").is_ok());
        assert_eq!(
            approved.authorise(&key, "other-llm/m").unwrap_err().code,
            "permission_denied"
        );
        assert_eq!(
            approved.authorise(&key, "shared/gpt-4o").unwrap_err().code,
            "permission_denied"
        );
        assert!(
            approved.authorise(&key, "no-such-model").is_ok(),
            "routing answers 404"
        );
        let operator = Principal {
            who: Who::Operator,
            ..app_key(&[])
        };
        assert!(access(&[]).authorise(&operator, "premium").is_ok());
    }
}
