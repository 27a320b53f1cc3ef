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
use crate::config::{Config, Strategy};
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
    /// The target's circuit breaker and load, carried over from the previous snapshot.
    pub health: Arc<TargetHealth>,
    /// From the catalog: input + output USD per 1M tokens, and the context window.
    pub price: Option<f64>,
    pub context_window: Option<u32>,
    /// From the catalog (`None`: the catalog does not know the model).
    pub capabilities: Option<Vec<gatehouse_llm::catalog::Capability>>,
}

/// A logical model: the name clients send, and where it is served.
#[derive(Debug)]
pub struct LogicalModel {
    pub name: String,
    pub targets: Vec<Target>,
    pub strategy: Strategy,
    pub affinity_header: Option<http::HeaderName>,
    next: std::sync::atomic::AtomicUsize,
    pub fallbacks: Vec<String>,
    pub attempts: u32,
    pub backoff: std::time::Duration,
    pub retry_on: crate::config::RetryOn,
}

impl LogicalModel {
    /// The targets in the order to try them: tier by tier, each tier in the model's strategy's
    /// order (a target with weight 0 is never chosen); with `affinity`, the session's target
    /// of the first tier goes first.
    pub fn ordered(&self, affinity: Option<&str>) -> Vec<Target> {
        let mut tiers: Vec<u32> = self.targets.iter().map(|t| t.tier).collect();
        tiers.sort_unstable();
        tiers.dedup();
        let mut out = Vec::with_capacity(self.targets.len());
        for tier in tiers {
            let pool: Vec<&Target> = self
                .targets
                .iter()
                .filter(|t| t.tier == tier && t.weight > 0)
                .collect();
            let start = out.len();
            self.order_tier(pool, &mut out);
            if let (Some(key), true) = (affinity, start == 0) {
                // Rendezvous hashing: the same session picks the same target while the tier's
                // membership is unchanged.
                let best = (start..out.len()).max_by_key(|&i| {
                    let mut h = std::collections::hash_map::DefaultHasher::new();
                    std::hash::Hash::hash(&(key, &out[i].upstream.cfg.name, &out[i].model), &mut h);
                    std::hash::Hasher::finish(&h)
                });
                if let Some(i) = best {
                    let t = out.remove(i);
                    out.insert(start, t);
                }
            }
        }
        out
    }

    fn order_tier(&self, mut pool: Vec<&Target>, out: &mut Vec<Target>) {
        match self.strategy {
            Strategy::Weighted => {}
            Strategy::Ordered => {
                out.extend(pool.into_iter().cloned());
                return;
            }
            Strategy::RoundRobin => {
                if !pool.is_empty() {
                    let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let len = pool.len();
                    pool.rotate_left(n % len);
                }
                out.extend(pool.into_iter().cloned());
                return;
            }
            Strategy::LeastInFlight => {
                fastrand::shuffle(&mut pool);
                pool.sort_by_key(|t| t.health.in_flight());
                out.extend(pool.into_iter().cloned());
                return;
            }
            Strategy::LowestLatency => {
                fastrand::shuffle(&mut pool);
                if pool.len() >= 2 && pool[1].health.latency_us() < pool[0].health.latency_us() {
                    pool.swap(0, 1);
                }
                let split = 1.min(pool.len());
                let (first, rest) = pool.split_at_mut(split);
                rest.sort_by(|a, b| a.health.latency_us().total_cmp(&b.health.latency_us()));
                out.extend(first.iter().chain(rest.iter()).map(|t| (*t).clone()));
                return;
            }
            Strategy::LowestCost => {
                pool.sort_by(|a, b| {
                    a.price
                        .unwrap_or(f64::MAX)
                        .total_cmp(&b.price.unwrap_or(f64::MAX))
                });
                out.extend(pool.into_iter().cloned());
                return;
            }
        }
        out.extend(weighted_order(pool, |t| t.weight).into_iter().cloned());
    }
}

/// Orders `pool` by repeated weighted draws without replacement: the first place goes to
/// each member in proportion to its weight, the next among those left, and so on.
pub(crate) fn weighted_order<T>(mut pool: Vec<T>, weight: impl Fn(&T) -> u32) -> Vec<T> {
    let mut out = Vec::with_capacity(pool.len());
    while !pool.is_empty() {
        let total: u64 = pool.iter().map(|t| u64::from(weight(t))).sum();
        let mut r = fastrand::u64(0..total.max(1));
        let i = pool
            .iter()
            .position(|t| {
                let w = u64::from(weight(t));
                if r < w {
                    true
                } else {
                    r -= w;
                    false
                }
            })
            .unwrap_or(0);
        out.push(pool.remove(i));
    }
    out
}

/// Where a call may go, in order, and how hard to try.
#[derive(Debug, Clone)]
pub struct Plan {
    pub candidates: Vec<Target>,
    pub attempts: u32,
    pub backoff: std::time::Duration,
    pub retry_on: crate::config::RetryOn,
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
    /// Callable REST services by name.
    pub rest: HashMap<String, Arc<crate::rest::RestService>>,
    /// Shared by every snapshot of a node, so counters and alert marks outlive reloads.
    pub traffic: Traffic,
    /// The store revision this snapshot was built from (0 without a store).
    pub revision: i64,
    pub providers: HashMap<String, Arc<Upstream>>,
    pub models: HashMap<String, LogicalModel>,
    pub catalog: Catalog,
    pub max_body: usize,
    /// Which bodies call records keep, by tenant and service.
    pub capture: crate::record::Capture,
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
        let capture = crate::record::Capture::build(&cfg);
        let tenant_ids: HashMap<String, String> = stored
            .map(|s| {
                s.tenant_names
                    .iter()
                    .map(|(id, name)| (name.clone(), id.clone()))
                    .collect()
            })
            .unwrap_or_default();
        let policies = Policies::build(&cfg, &tenant_ids);
        let rest = crate::rest::RestService::build_all(&cfg.services)
            .into_iter()
            .map(|s| {
                let s = Arc::new(s);
                s.start_probes();
                (s.name.clone(), s)
            })
            .collect();
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
                            price: catalog
                                .lookup(u.cfg.kind.catalog_family(), &t.model)
                                .map(|i| i.input + i.output),
                            context_window: catalog
                                .lookup(u.cfg.kind.catalog_family(), &t.model)
                                .map(|i| i.context_window),
                            capabilities: catalog
                                .lookup(u.cfg.kind.catalog_family(), &t.model)
                                .map(|i| i.capabilities.clone()),
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
                    strategy: m.strategy.unwrap_or_default(),
                    affinity_header: m
                        .affinity_header
                        .as_deref()
                        .and_then(|h| http::HeaderName::from_bytes(h.as_bytes()).ok()),
                    next: std::sync::atomic::AtomicUsize::new(0),
                    fallbacks: m.fallbacks,
                    attempts: m.attempts.unwrap_or(3).clamp(1, 10),
                    backoff: m
                        .retry_backoff
                        .as_deref()
                        .and_then(|b| crate::config::parse_duration(b).ok())
                        .unwrap_or(std::time::Duration::from_millis(100)),
                    retry_on: crate::config::RetryOn::from_list(&m.retry_on),
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
                    tenant_id: None,
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
                    tenant_id: Some(Arc::from(k.key.tenant_id.as_str())),
                };
                keys.insert(hash, principal);
            }
        }
        Ok(Self {
            keys,
            hasher,
            access,
            policies,
            rest,
            traffic,
            revision: stored.map_or(0, |s| s.revision),
            providers,
            models,
            catalog,
            max_body: cfg.server.max_body,
            capture,
        })
    }

    /// Puts the snapshot in a cell the server reads and a reloader can swap.
    pub fn into_shared(self) -> Shared {
        Arc::new(ArcSwap::from_pointee(self))
    }

    /// Resolves a model name to the target a call would try first.
    pub fn resolve(&self, name: &str) -> Option<Target> {
        self.plan(name, &http::HeaderMap::new())
            .and_then(|p| p.candidates.into_iter().next())
    }

    /// Resolves a model name: a logical model (its tiers, then its fallbacks' targets), else
    /// `provider/upstream-model` (one target, one attempt).
    pub fn plan(&self, name: &str, headers: &http::HeaderMap) -> Option<Plan> {
        if let Some(m) = self.models.get(name) {
            let affinity = m
                .affinity_header
                .as_ref()
                .and_then(|h| headers.get(h))
                .and_then(|v| v.to_str().ok());
            let mut candidates = m.ordered(affinity);
            for f in &m.fallbacks {
                if let Some(fm) = self.models.get(f) {
                    candidates.extend(fm.ordered(None));
                }
            }
            if candidates.is_empty() {
                return None;
            }
            return Some(Plan {
                candidates,
                attempts: m.attempts,
                backoff: m.backoff,
                retry_on: m.retry_on,
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
                price: None,
                context_window: None,
                capabilities: None,
            }],
            attempts: 1,
            backoff: std::time::Duration::ZERO,
            retry_on: crate::config::RetryOn::default(),
        })
    }
}
