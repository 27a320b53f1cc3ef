//! The immutable view of the configuration that every request reads.
//!
//! Built once from a validated `Config`: providers with their HTTP clients, logical models with
//! their targets, client keys, and the model catalog. The request path reads it without locks.

use std::collections::HashMap;
use std::sync::Arc;

use gatehouse_llm::catalog::Catalog;

use crate::config::Config;
use crate::upstream::Upstream;

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

/// A caller, as identified by its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_name: Arc<str>,
}

/// Everything a request needs, immutable.
#[derive(Debug)]
pub struct Snapshot {
    /// Client keys → who they are. A `HashMap` with the std keyed SipHash: a lookup compares
    /// the presented key to a stored one only when their 64-bit keyed hashes collide, so response
    /// time reveals nothing usable about stored keys.
    pub keys: HashMap<String, Principal>,
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
}

impl Snapshot {
    pub fn build(cfg: Config) -> Result<Self, SnapshotError> {
        let mut catalog = Catalog::builtin()?;
        for file in cfg.catalog {
            catalog.merge(file);
        }
        let mut providers = HashMap::new();
        for p in cfg.providers {
            let name = p.name.clone();
            providers.insert(name, Arc::new(Upstream::new(p)?));
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
        let keys = cfg
            .keys
            .into_iter()
            .map(|k| {
                let principal = Principal {
                    key_name: Arc::from(k.name.as_str()),
                };
                (k.key, principal)
            })
            .collect();
        Ok(Self {
            keys,
            providers,
            models,
            catalog,
            max_body: cfg.server.max_body,
        })
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
