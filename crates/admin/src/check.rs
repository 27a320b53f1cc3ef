//! Would a change leave the configuration valid? The gateway's own validation decides.
//!
//! The stored resources are assembled into one config, the change is applied to it, and the
//! config is validated as a file would be. Problems that the change introduces are reported:
//! those in the changed resource itself as field errors (422, paths relative to its body), those
//! it causes elsewhere (a model left pointing at a deleted provider) as a conflict (409) naming
//! the resource that would break. Problems the store already had are not the caller's doing
//! and do not block the change.

use std::collections::HashSet;

use gatehouse_gateway::stored::{Doc, Stored};
use gatehouse_gateway::RawConfig;
use gatehouse_store::Kind;

use crate::error::{ApiError, FieldError};

/// The list a kind lives in, as the config file names it.
pub(crate) fn plural(kind: Kind) -> &'static str {
    match kind {
        Kind::Tenant => "tenants",
        Kind::Provider => "providers",
        Kind::Model => "models",
        Kind::Service => "services",
        Kind::App => "apps",
        Kind::Policy => "policies",
    }
}

/// Takes a resource out of `cfg`.
pub(crate) fn take(
    cfg: &mut RawConfig,
    kind: Kind,
    tenant: Option<&str>,
    name: &str,
) -> Option<Doc> {
    fn pull<T>(v: &mut Vec<T>, f: impl Fn(&T) -> bool) -> Option<T> {
        v.iter().position(f).map(|i| v.remove(i))
    }
    match kind {
        Kind::Tenant => pull(&mut cfg.tenants, |t| t.name == name).map(Doc::Tenant),
        Kind::Provider => pull(&mut cfg.providers, |p| p.name == name).map(Doc::Provider),
        Kind::Model => pull(&mut cfg.models, |m| m.name == name).map(Doc::Model),
        Kind::Service => pull(&mut cfg.services, |s| s.name == name).map(Doc::Service),
        Kind::App => pull(&mut cfg.apps, |a| {
            a.name == name && Some(a.tenant.as_str()) == tenant
        })
        .map(Doc::App),
        Kind::Policy => pull(&mut cfg.policies, |p| p.name == name).map(Doc::Policy),
    }
}

/// Appends a resource to `cfg`; returns its path (`providers[3]`).
pub(crate) fn push(cfg: &mut RawConfig, doc: Doc) -> String {
    let (kind, len) = match doc {
        Doc::Tenant(t) => {
            cfg.tenants.push(t);
            (Kind::Tenant, cfg.tenants.len())
        }
        Doc::Provider(p) => {
            cfg.providers.push(p);
            (Kind::Provider, cfg.providers.len())
        }
        Doc::Model(m) => {
            cfg.models.push(m);
            (Kind::Model, cfg.models.len())
        }
        Doc::Service(s) => {
            cfg.services.push(s);
            (Kind::Service, cfg.services.len())
        }
        Doc::App(a) => {
            cfg.apps.push(a);
            (Kind::App, cfg.apps.len())
        }
        Doc::Policy(p) => {
            cfg.policies.push(p);
            (Kind::Policy, cfg.policies.len())
        }
    };
    format!("{}[{}]", plural(kind), len - 1)
}

/// Every problem of a config's resources (server settings and keys aside).
pub(crate) fn problems(cfg: &RawConfig) -> Vec<(String, String)> {
    let mut c = RawConfig {
        tenants: cfg.tenants.clone(),
        providers: cfg.providers.clone(),
        models: cfg.models.clone(),
        services: cfg.services.clone(),
        apps: cfg.apps.clone(),
        policies: cfg.policies.clone(),
        ..RawConfig::default()
    };
    // A store is what makes keys optional and tenants allowed.
    c.server.data_dir = Some(std::path::PathBuf::from("."));
    match c.validate() {
        Ok(_) => Vec::new(),
        Err(e) => e.problems,
    }
}

/// Checks replacing (or removing, with `after: None`) the resource `before` (or adding one,
/// with `before: None`).
pub(crate) fn change(
    stored: &Stored,
    before: Option<(Kind, Option<&str>, &str)>,
    after: Option<&Doc>,
) -> Result<(), ApiError> {
    // The changed resource goes last in both versions, so every other path stays the same.
    let mut base = stored.config.clone();
    let old = before.and_then(|(k, t, n)| take(&mut base, k, t, n));
    let mut was = base.clone();
    if let Some(old) = old {
        push(&mut was, old);
    }
    let mut will = base;
    let at = after.map(|d| push(&mut will, d.clone()));
    let known: HashSet<(String, String)> = problems(&was).into_iter().collect();
    let new: Vec<(String, String)> = problems(&will)
        .into_iter()
        .filter(|p| !known.contains(p))
        .collect();
    if new.is_empty() {
        return Ok(());
    }
    let (own, elsewhere): (Vec<_>, Vec<_>) = new.into_iter().partition(|(path, _)| {
        at.as_deref()
            .is_some_and(|at| path == at || path.starts_with(&format!("{at}.")))
    });
    if !own.is_empty() {
        let prefix = at.unwrap_or_default();
        return Err(ApiError::Invalid(
            own.into_iter()
                .map(|(path, message)| FieldError {
                    path: path
                        .strip_prefix(&prefix)
                        .unwrap_or(&path)
                        .trim_start_matches('.')
                        .to_owned(),
                    message,
                })
                .collect(),
        ));
    }
    let what: Vec<String> = elsewhere
        .iter()
        .map(|(path, message)| format!("{}: {message}", describe(&will, path)))
        .collect();
    Err(ApiError::Conflict(format!(
        "this change would break other resources: {}",
        what.join("; ")
    )))
}

/// `models[2].targets[0].provider` → `model "gpt" (targets[0].provider)`.
pub(crate) fn describe(cfg: &RawConfig, path: &str) -> String {
    let Some((head, rest)) = path.split_once(']') else {
        return path.to_owned();
    };
    let Some((list, index)) = head.split_once('[') else {
        return path.to_owned();
    };
    let i: usize = index.parse().unwrap_or(usize::MAX);
    let name = match list {
        "tenants" => cfg.tenants.get(i).map(|t| ("tenant", t.name.clone())),
        "providers" => cfg.providers.get(i).map(|p| ("provider", p.name.clone())),
        "models" => cfg.models.get(i).map(|m| ("model", m.name.clone())),
        "services" => cfg.services.get(i).map(|s| ("service", s.name.clone())),
        "apps" => cfg
            .apps
            .get(i)
            .map(|a| ("app", format!("{}/{}", a.tenant, a.name))),
        "policies" => cfg.policies.get(i).map(|p| ("policy", p.name.clone())),
        _ => None,
    };
    match name {
        Some((kind, name)) => format!("{kind} `{name}` ({})", rest.trim_start_matches('.')),
        None => path.to_owned(),
    }
}
