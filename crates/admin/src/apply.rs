//! Declarative configuration: make the store hold what a document says, and read it back.
//!
//! `apply` compares each resource of the document with the store, validates the configuration
//! that would result as a whole (every problem, with the resource it is in), and then creates,
//! updates and — with `prune` — deletes, in dependency order (tenants first when creating, last
//! when deleting). It is idempotent: applying the same document twice changes nothing the second
//! time. Resources that `gatehouse.yaml` declares are applied at start with `managed_by: file`;
//! `gatehouse apply` refuses to touch those, and the file's own apply prunes only its own.

use std::collections::HashMap;

use gatehouse_gateway::stored::{self, Doc, Stored};
use gatehouse_gateway::RawConfig;
use gatehouse_store::{Actor, Kind, Store, StoreError};
use serde_json::Value;

use crate::check;
use crate::view::MASK;

/// What a step does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    Create,
    Update,
    Delete,
    Unchanged,
}

/// One resource's part of a plan.
#[derive(Debug, Clone, PartialEq)]
pub struct Step {
    pub action: Action,
    pub kind: Kind,
    /// `tenant/name` for apps, else the name.
    pub name: String,
    /// The fields that change (updates only).
    pub fields: Vec<String>,
}

impl std::fmt::Display for Step {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let sign = match self.action {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Unchanged => "=",
        };
        write!(f, "{sign} {} {}", self.kind, self.name)?;
        if !self.fields.is_empty() {
            write!(f, " ({})", self.fields.join(", "))?;
        }
        Ok(())
    }
}

#[derive(Debug, Clone)]
pub struct Options {
    /// Delete stored resources the document does not name (of the same management).
    pub prune: bool,
    pub dry_run: bool,
    /// `Some("file")` when applying `gatehouse.yaml`; `None` for `gatehouse apply`.
    pub managed_by: Option<String>,
    pub actor: Actor,
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("store: {0}")]
    Store(#[from] StoreError),
    #[error("the configuration would be invalid:\n{}", .0.join("\n"))]
    Invalid(Vec<String>),
    #[error("managed by the config file, change them there: {}", .0.join(", "))]
    FileManaged(Vec<String>),
    #[error("{0}")]
    Document(String),
}

fn docs(cfg: &RawConfig) -> Vec<Doc> {
    let mut out: Vec<Doc> = cfg.tenants.iter().cloned().map(Doc::Tenant).collect();
    out.extend(cfg.providers.iter().cloned().map(Doc::Provider));
    out.extend(cfg.models.iter().cloned().map(Doc::Model));
    out.extend(cfg.services.iter().cloned().map(Doc::Service));
    out.extend(cfg.apps.iter().cloned().map(Doc::App));
    out.extend(cfg.policies.iter().cloned().map(Doc::Policy));
    out
}

fn label(doc: &Doc) -> String {
    match doc {
        Doc::App(a) => format!("{}/{}", a.tenant, a.name),
        other => other.name().to_owned(),
    }
}

/// Replaces masked credentials (as `export` writes them) with the stored ones.
fn unmask(doc: Doc, stored: &Stored) -> Doc {
    let Doc::Provider(mut p) = doc else {
        return doc;
    };
    let mut given = p.api_keys.clone();
    given.extend(p.api_key.clone());
    if !given.is_empty() && given.iter().all(|k| k.starts_with(MASK)) {
        if let Some(Ok(Doc::Provider(old))) = stored
            .row(Kind::Provider, None, &p.name)
            .map(|r| Doc::from_resource(r, p.tenant.as_deref()))
        {
            p.api_key = old.api_key;
            p.api_keys = old.api_keys;
        }
    }
    Doc::Provider(p)
}

/// The top-level fields whose values differ.
fn changed_fields(old: &Value, new: &Value) -> Vec<String> {
    let (Value::Object(a), Value::Object(b)) = (old, new) else {
        return vec!["(all)".into()];
    };
    let mut keys: Vec<&String> = a.keys().chain(b.keys()).collect();
    keys.sort();
    keys.dedup();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .cloned()
        .collect()
}

/// Makes the store hold `document`'s resources; returns what was (or would be) done.
pub async fn apply(
    store: &Store,
    document: &RawConfig,
    opts: &Options,
) -> Result<Vec<Step>, ApplyError> {
    let stored = stored::load(store).await?;
    let wanted: Vec<Doc> = docs(document)
        .into_iter()
        .map(|d| unmask(d, &stored))
        .collect();

    // The configuration as it will be.
    let mut target = stored.config.clone();
    let mut steps = Vec::new();
    let mut managed_clash = Vec::new();
    let mut seen: HashMap<(Kind, String), ()> = HashMap::new();
    for doc in &wanted {
        let kind = doc.kind();
        seen.insert((kind, label(doc)), ());
        let row = stored.row(kind, doc.tenant(), doc.name());
        let old = check::take(&mut target, kind, doc.tenant(), doc.name());
        check::push(&mut target, doc.clone());
        let step = match (row, old) {
            (Some(row), Some(old)) => {
                if row.managed_by.is_some() && opts.managed_by.is_none() {
                    managed_clash.push(format!("{kind} {}", label(doc)));
                }
                let mut fields = changed_fields(&old.to_value(), &doc.to_value());
                if row.managed_by != opts.managed_by {
                    fields.push("managed_by".into());
                }
                Step {
                    action: if fields.is_empty() {
                        Action::Unchanged
                    } else {
                        Action::Update
                    },
                    kind,
                    name: label(doc),
                    fields,
                }
            }
            _ => Step {
                action: Action::Create,
                kind,
                name: label(doc),
                fields: Vec::new(),
            },
        };
        steps.push(step);
    }
    if opts.prune {
        for doc in docs(&stored.config) {
            let kind = doc.kind();
            if seen.contains_key(&(kind, label(&doc))) {
                continue;
            }
            let Some(row) = stored.row(kind, doc.tenant(), doc.name()) else {
                continue;
            };
            if row.managed_by != opts.managed_by {
                continue;
            }
            check::take(&mut target, kind, doc.tenant(), doc.name());
            steps.push(Step {
                action: Action::Delete,
                kind,
                name: label(&doc),
                fields: Vec::new(),
            });
        }
        // A deleted tenant takes what it owns along.
        let gone: Vec<String> = steps
            .iter()
            .filter(|s| s.action == Action::Delete && s.kind == Kind::Tenant)
            .map(|s| s.name.clone())
            .collect();
        target
            .providers
            .retain(|p| p.tenant.as_ref().is_none_or(|t| !gone.contains(t)));
        target
            .models
            .retain(|m| m.tenant.as_ref().is_none_or(|t| !gone.contains(t)));
        target
            .services
            .retain(|s| s.tenant.as_ref().is_none_or(|t| !gone.contains(t)));
        target.apps.retain(|a| !gone.contains(&a.tenant));
        target
            .policies
            .retain(|p| p.tenant.as_ref().is_none_or(|t| !gone.contains(t)));
    }
    if !managed_clash.is_empty() {
        return Err(ApplyError::FileManaged(managed_clash));
    }
    let problems = check::problems(&target);
    if !problems.is_empty() {
        return Err(ApplyError::Invalid(
            problems
                .iter()
                .map(|(path, message)| format!("{}: {message}", check::describe(&target, path)))
                .collect(),
        ));
    }
    if opts.dry_run {
        return Ok(steps);
    }
    execute(store, &stored, &wanted, &steps, opts).await?;
    Ok(steps)
}

fn order(kind: Kind) -> usize {
    match kind {
        Kind::Tenant => 0,
        Kind::Provider => 1,
        Kind::Model => 2,
        Kind::Service => 3,
        Kind::App => 4,
        Kind::Policy => 5,
    }
}

async fn execute(
    store: &Store,
    stored: &Stored,
    wanted: &[Doc],
    steps: &[Step],
    opts: &Options,
) -> Result<(), ApplyError> {
    // Creates and updates, tenants first; tenant ids are looked up as tenants appear.
    let mut tenant_ids: HashMap<String, String> = stored
        .tenant_names
        .iter()
        .map(|(id, name)| (name.clone(), id.clone()))
        .collect();
    let mut writes: Vec<(&Doc, &Step)> = wanted
        .iter()
        .zip(steps)
        .filter(|(_, s)| matches!(s.action, Action::Create | Action::Update))
        .collect();
    writes.sort_by_key(|(d, _)| order(d.kind()));
    for (doc, step) in writes {
        let tenant_id = match doc.tenant() {
            Some(t) => Some(tenant_ids.get(t).cloned().ok_or_else(|| {
                ApplyError::Document(format!(
                    "{} {}: no tenant named {t:?}",
                    step.kind, step.name
                ))
            })?),
            None => None,
        };
        let input = doc.to_input(tenant_id, opts.managed_by.clone());
        let written = match stored.row(doc.kind(), doc.tenant(), doc.name()) {
            Some(row) if step.action == Action::Update => {
                store
                    .update_resource(&row.id, Some(row.revision), input, &opts.actor)
                    .await?
            }
            _ => store.create_resource(input, &opts.actor).await?,
        };
        if written.kind == Kind::Tenant {
            tenant_ids.insert(written.name.clone(), written.id.clone());
        }
    }
    // Deletes, apps first and tenants last.
    let mut deletes: Vec<&Step> = steps
        .iter()
        .filter(|s| s.action == Action::Delete)
        .collect();
    deletes.sort_by_key(|s| std::cmp::Reverse(order(s.kind)));
    for step in deletes {
        let (tenant, name) = match step.kind {
            Kind::App => match step.name.split_once('/') {
                Some((t, n)) => (Some(t), n),
                None => (None, step.name.as_str()),
            },
            _ => (None, step.name.as_str()),
        };
        if let Some(row) = stored.row(step.kind, tenant, name) {
            match store
                .delete_resource(step.kind, &row.id, None, &opts.actor)
                .await
            {
                // Already gone with its tenant.
                Ok(_) | Err(StoreError::NotFound { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
    }
    Ok(())
}

/// The store's resources as a document of the config schema (credentials masked unless
/// `secrets`).
pub async fn export(store: &Store, secrets: bool) -> Result<Value, StoreError> {
    let stored = stored::load(store).await?;
    Ok(crate::view::document(&stored.config, secrets))
}
