//! What `GET /v1/models` shows: logical models, then each provider's models as `provider/model`.

use serde::Serialize;

use crate::snapshot::{Principal, Snapshot};

/// One entry of the OpenAI model list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelEntry {
    pub id: String,
    pub object: &'static str,
    pub created: u64,
    pub owned_by: String,
}

#[derive(Debug, Serialize)]
pub struct ModelList {
    pub object: &'static str,
    pub data: Vec<ModelEntry>,
}

fn entry(id: String, owned_by: &str) -> ModelEntry {
    ModelEntry {
        id,
        object: "model",
        created: 0,
        owned_by: owned_by.to_owned(),
    }
}

/// Every model name the caller can send: logical names first, sorted, then per provider (sorted)
/// the models its config lists, or else the catalog's models of its kind (none for
/// `openai_compatible`, whose models only its config can name). An app's key sees only what it
/// may call.
pub fn list(snap: &Snapshot, principal: &Principal) -> ModelList {
    let allowed = |name: &str| snap.access.authorise(principal, name).is_ok();
    let mut logical: Vec<&String> = snap.models.keys().filter(|m| allowed(m)).collect();
    logical.sort();
    let mut data: Vec<ModelEntry> = logical
        .into_iter()
        .map(|m| entry(m.clone(), "gatehouse"))
        .collect();
    let mut providers: Vec<_> = snap.providers.values().collect();
    providers.sort_by(|a, b| a.cfg.name.cmp(&b.cfg.name));
    for p in providers {
        let names: Vec<String> = match (p.cfg.models.is_empty(), p.cfg.kind.catalog_family()) {
            (false, _) => p.cfg.models.clone(),
            (true, Some(family)) => snap
                .catalog
                .models_of(family)
                .into_iter()
                .map(|m| m.name.clone())
                .collect(),
            // An OpenAI-compatible server hosts models the catalog cannot know; list only configured ones.
            (true, None) => Vec::new(),
        };
        data.extend(
            names
                .into_iter()
                .map(|m| format!("{}/{m}", p.cfg.name))
                .filter(|id| allowed(id))
                .map(|id| entry(id, &p.cfg.name)),
        );
    }
    ModelList {
        object: "list",
        data,
    }
}

/// One model by the name a client would send, if it resolves.
pub fn get(snap: &Snapshot, id: &str) -> Option<ModelEntry> {
    if snap.models.contains_key(id) {
        return Some(entry(id.to_owned(), "gatehouse"));
    }
    let target = snap.resolve(id)?;
    Some(entry(id.to_owned(), &target.upstream.cfg.name))
}
