//! The immutable view of the configuration that every request reads.
//!
//! Built from a validated `Config` (and, with a store, its keys and subscriptions): providers
//! with their HTTP clients, logical models with their targets, client keys by keyed hash, the
//! access rules, and the model catalog. The request path reads it without locks; a change builds
//! a new one and swaps it into the `Shared` cell, while calls in flight keep the one they began
//! with. Providers whose settings did not change keep their HTTP client and its connections.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use gatehouse_llm::catalog::Catalog;
use gatehouse_store::secrets::MasterKey;

use crate::access::Access;
pub use crate::access::{Principal, Who};
use crate::config::Config;
use crate::limits::{Policies, Traffic};
use crate::stored::Stored;
use crate::upstream::Upstream;

/// The snapshot the data plane serves from, swapped atomically on change.
pub type Shared = Arc<ArcSwap<Snapshot>>;

/// One place a model name can be served from.
#[derive(Debug, Clone)]
pub struct Target {
    pub upstream: Arc<Upstream>,
    pub model: String,
    pub weight: u32,
}

/// A logical model: the name clients send, and where it is served.
#[derive(Debug)]
pub struct LogicalModel {
    pub name: String,
    pub targets: Vec<Target>,
    total_weight: u64,
}

impl LogicalModel {
    /// Picks a target at random in proportion to the weights.
    pub fn pick(&self) -> Option<&Target> {
        if self.total_weight == 0 {
            return None;
        }
        let mut r = fastrand::u64(0..self.total_weight);
        for t in &self.targets {
            let w = u64::from(t.weight);
            if r < w {
                return Some(t);
            }
            r -= w;
        }
        None
    }
}

/// Everything a request needs, immutable.
#[derive(Debug)]
pub struct Snapshot {
    /// Client keys, by their keyed hash (`hasher`), → who they are. The presented key is hashed
    /// before the lookup, so response time reveals nothing usable about stored keys.
    pub keys: HashMap<[u8; 32], Principal>,
    pub hasher: Arc<MasterKey>,
    pub access: Access,
    pub policies: Policies,
    /// Shared by every snapshot of a node, so counters and alert marks outlive reloads.
    pub traffic: Traffic,
    /// The store revision this snapshot was built from (0 without a store).
    pub revision: i64,
    pub providers: HashMap<String, Arc<Upstream>>,
    pub models: HashMap<String, LogicalModel>,
    pub catalog: Catalog,
    pub max_body: usize,
}

/// Why a snapshot could not be built.
#[derive(Debug, thiserror::Error)]
pub enum SnapshotError {
    #[error("provider {provider}: cannot build its HTTP client: {source}")]
    Client {
        provider: String,
        #[source]
        source: reqwest::Error,
    },
    #[error("provider {provider}: base_url does not make valid URLs: {source}")]
    Url {
        provider: String,
        #[source]
        source: url::ParseError,
    },
    #[error(transparent)]
    Catalog(#[from] gatehouse_llm::LlmError),
    #[error(transparent)]
    Key(#[from] gatehouse_store::StoreError),
}

impl Snapshot {
    /// A snapshot of a config file alone: static keys, hashed with a key of this process.
    pub fn build(cfg: Config) -> Result<Self, SnapshotError> {
        Self::build_with(
            cfg,
            None,
            Arc::new(MasterKey::ephemeral()?),
            Traffic::local(),
            None,
        )
    }

    /// A snapshot of the config plus the store's keys and subscriptions; reuses `previous`'s
    /// upstream clients where a provider is unchanged.
    pub fn build_with(
        cfg: Config,
        stored: Option<&Stored>,
        hasher: Arc<MasterKey>,
        traffic: Traffic,
        previous: Option<&Snapshot>,
    ) -> Result<Self, SnapshotError> {
        let mut catalog = Catalog::builtin()?;
        for file in cfg.catalog.iter().cloned() {
            catalog.merge(file);
        }
        let access = Access::build(&cfg, stored);
        let tenant_ids: HashMap<String, String> = stored
            .map(|s| {
                s.tenant_names
                    .iter()
                    .map(|(id, name)| (name.clone(), id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let policies = Policies::build(&cfg, &tenant_ids);
        let mut providers = HashMap::new();
        for p in cfg.providers {
            let name = p.name.clone();
            let reused = previous
                .and_then(|s| s.providers.get(&name))
                .filter(|u| u.cfg == p)
                .cloned();
            let upstream = match reused {
                Some(u) => u,
                None => Arc::new(Upstream::new(p)?),
            };
            providers.insert(name, upstream);
        }
        let models = cfg
            .models
            .into_iter()
            .map(|m| {
                // Validation guarantees every target names a provider; skip defensively otherwise.
                let targets: Vec<Target> = m
                    .targets
                    .into_iter()
                    .filter_map(|t| {
                        providers.get(&t.provider).map(|u| Target {
                            upstream: Arc::clone(u),
                            model: t.model,
                            weight: t.weight,
                        })
                    })
                    .collect();
                let total_weight = targets.iter().map(|t| u64::from(t.weight)).sum();
                let model = LogicalModel {
                    name: m.name.clone(),
                    targets,
                    total_weight,
                };
                (m.name, model)
            })
            .collect();
        let mut keys: HashMap<[u8; 32], Principal> = cfg
            .keys
            .into_iter()
            .map(|k| {
                let principal = Principal {
                    key_name: Arc::from(k.name.as_str()),
                    who: Who::Operator,
                    expires_at: None,
                    scopes: Arc::from(Vec::new()),
                    priority: k.priority.unwrap_or(0),
                };
                (hasher.hash(&k.key), principal)
            })
            .collect();
        if let Some(st) = stored {
            let apps: HashMap<&str, (&str, &str)> = st
                .rows
                .values()
                .filter(|r| r.kind == gatehouse_store::Kind::App)
                .filter_map(|r| {
                    let tenant = st.tenant_names.get(r.tenant_id.as_deref()?)?;
                    Some((r.id.as_str(), (r.name.as_str(), tenant.as_str())))
                })
                .collect();
            for k in &st.keys {
                let (Ok(hash), Some((app, tenant))) = (
                    <[u8; 32]>::try_from(k.hash.as_slice()),
                    apps.get(k.key.app_id.as_str()),
                ) else {
                    continue;
                };
                let principal = Principal {
                    key_name: Arc::from(format!("{}{}", gatehouse_store::KEY_PREFIX, k.key.id)),
                    who: Who::App {
                        app_id: Arc::from(k.key.app_id.as_str()),
                        app: Arc::from(*app),
                        tenant: Arc::from(*tenant),
                    },
                    expires_at: k.key.expires_at,
                    scopes: Arc::from(k.key.scopes.clone()),
                    priority: k.key.priority,
                };
                keys.insert(hash, principal);
            }
        }
        Ok(Self {
            keys,
            hasher,
            access,
            policies,
            traffic,
            revision: stored.map_or(0, |s| s.revision),
            providers,
            models,
            catalog,
            max_body: cfg.server.max_body,
        })
    }

    /// Puts the snapshot in a cell the server reads and a reloader can swap.
    pub fn into_shared(self) -> Shared {
        Arc::new(ArcSwap::from_pointee(self))
    }

    /// Resolves a model name: a logical model first, then `provider/upstream-model`.
    pub fn resolve(&self, name: &str) -> Option<Target> {
        if let Some(m) = self.models.get(name) {
            return m.pick().cloned();
        }
        let (provider, model) = name.split_once('/')?;
        let upstream = self.providers.get(provider)?;
        (!model.is_empty()).then(|| Target {
            upstream: Arc::clone(upstream),
            model: model.to_owned(),
            weight: 1,
        })
    }
}
