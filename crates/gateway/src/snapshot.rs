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
use crate::health::TargetHealth;
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
    pub tier: u32,
    /// The target's circuit breaker, carried over from the previous snapshot.
    pub health: Arc<TargetHealth>,
}

/// A logical model: the name clients send, and where it is served.
#[derive(Debug)]
pub struct LogicalModel {
    pub name: String,
    pub targets: Vec<Target>,
    pub fallbacks: Vec<String>,
    pub attempts: u32,
    pub backoff: std::time::Duration,
}

impl LogicalModel {
    /// The targets in the order to try them: tier by tier, and within a tier a weighted random
    /// order (a target with weight 0 is never chosen).
    pub fn ordered(&self) -> Vec<Target> {
        let mut tiers: Vec<u32> = self.targets.iter().map(|t| t.tier).collect();
        tiers.sort_unstable();
        tiers.dedup();
        let mut out = Vec::with_capacity(self.targets.len());
        for tier in tiers {
            let mut pool: Vec<&Target> = self
                .targets
                .iter()
                .filter(|t| t.tier == tier && t.weight > 0)
                .collect();
            while !pool.is_empty() {
                let total: u64 = pool.iter().map(|t| u64::from(t.weight)).sum();
                let mut r = fastrand::u64(0..total);
                let i = pool
                    .iter()
                    .position(|t| {
                        let w = u64::from(t.weight);
                        if r < w {
                            true
                        } else {
                            r -= w;
                            false
                        }
                    })
                    .unwrap_or(0);
                out.push(pool.remove(i).clone());
            }
        }
        out
    }
}

/// Where a call may go, in order, and how hard to try.
#[derive(Debug, Clone)]
pub struct Plan {
    pub candidates: Vec<Target>,
    pub attempts: u32,
    pub backoff: std::time::Duration,
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
        let known: HashMap<(String, String), Arc<TargetHealth>> = previous
            .map(|s| {
                s.models
                    .values()
                    .flat_map(|m| &m.targets)
                    .map(|t| {
                        (
                            (t.upstream.cfg.name.clone(), t.model.clone()),
                            Arc::clone(&t.health),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default();
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
                            health: known
                                .get(&(t.provider.clone(), t.model.clone()))
                                .cloned()
                                .unwrap_or_default(),
                            upstream: Arc::clone(u),
                            model: t.model,
                            weight: t.weight,
                            tier: t.tier,
                        })
                    })
                    .collect();
                let model = LogicalModel {
                    name: m.name.clone(),
                    targets,
                    fallbacks: m.fallbacks,
                    attempts: m.attempts.unwrap_or(3).clamp(1, 10),
                    backoff: m
                        .retry_backoff
                        .as_deref()
                        .and_then(|b| crate::config::parse_duration(b).ok())
                        .unwrap_or(std::time::Duration::from_millis(100)),
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

    /// Resolves a model name to the target a call would try first.
    pub fn resolve(&self, name: &str) -> Option<Target> {
        self.plan(name)
            .and_then(|p| p.candidates.into_iter().next())
    }

    /// Resolves a model name: a logical model (its tiers, then its fallbacks' targets), else
    /// `provider/upstream-model` (one target, one attempt).
    pub fn plan(&self, name: &str) -> Option<Plan> {
        if let Some(m) = self.models.get(name) {
            let mut candidates = m.ordered();
            for f in &m.fallbacks {
                if let Some(fm) = self.models.get(f) {
                    candidates.extend(fm.ordered());
                }
            }
            if candidates.is_empty() {
                return None;
            }
            return Some(Plan {
                candidates,
                attempts: m.attempts,
                backoff: m.backoff,
            });
        }
        let (provider, model) = name.split_once('/')?;
        let upstream = self.providers.get(provider)?;
        (!model.is_empty()).then(|| Plan {
            candidates: vec![Target {
                upstream: Arc::clone(upstream),
                model: model.to_owned(),
                weight: 1,
                tier: 0,
                health: Arc::default(),
            }],
            attempts: 1,
            backoff: std::time::Duration::ZERO,
        })
    }
}
