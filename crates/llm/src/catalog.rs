//! The model catalog: context windows, output caps, prices and capabilities, as data.
//!
//! The built-in entries live in `data/models/*.yaml` at the root of the repository (one file per
//! provider family, embedded at build time) so that updating a price is a data change, not a code
//! change. A deployment adds or overrides entries in its config. The gateway uses the catalog for
//! `max_tokens` defaults and model listings; limits, cost and routing read it later.

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use crate::LlmError;

/// The built-in data files, by name.
const BUILTIN: &[(&str, &str)] = &[
    (
        "openai.yaml",
        include_str!("../../../data/models/openai.yaml"),
    ),
    (
        "anthropic.yaml",
        include_str!("../../../data/models/anthropic.yaml"),
    ),
    (
        "bedrock.yaml",
        include_str!("../../../data/models/bedrock.yaml"),
    ),
    (
        "gemini.yaml",
        include_str!("../../../data/models/gemini.yaml"),
    ),
    (
        "mistral.yaml",
        include_str!("../../../data/models/mistral.yaml"),
    ),
    ("groq.yaml", include_str!("../../../data/models/groq.yaml")),
    (
        "deepseek.yaml",
        include_str!("../../../data/models/deepseek.yaml"),
    ),
    ("xai.yaml", include_str!("../../../data/models/xai.yaml")),
    (
        "together.yaml",
        include_str!("../../../data/models/together.yaml"),
    ),
    (
        "fireworks.yaml",
        include_str!("../../../data/models/fireworks.yaml"),
    ),
];

/// What a model can do beyond plain text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Tools,
    Vision,
    Json,
    Reasoning,
}

/// What kind of endpoint a model serves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Mode {
    #[default]
    Chat,
    Embedding,
}

/// One model's facts. Prices are USD per million tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelInfo {
    pub name: String,
    #[serde(default)]
    pub mode: Mode,
    pub context_window: u32,
    #[serde(default)]
    pub max_output_tokens: u32,
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    #[serde(default)]
    pub capabilities: Vec<Capability>,
}

/// One data file: a provider family and its models.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CatalogFile {
    pub provider: String,
    pub models: Vec<ModelInfo>,
}

/// All known models, by provider family and model name.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    by_provider: HashMap<String, HashMap<String, ModelInfo>>,
}

impl Catalog {
    /// The catalog built into the binary.
    pub fn builtin() -> Result<Self, LlmError> {
        let mut c = Self::default();
        for (file, text) in BUILTIN {
            let parsed: CatalogFile =
                serde_norway::from_str(text).map_err(|e| LlmError::Catalog {
                    file: (*file).to_owned(),
                    message: e.to_string(),
                })?;
            c.merge(parsed);
        }
        Ok(c)
    }

    /// Adds or replaces the entries of one provider family.
    pub fn merge(&mut self, file: CatalogFile) {
        let models = self.by_provider.entry(file.provider).or_default();
        for m in file.models {
            models.insert(m.name.clone(), m);
        }
    }

    /// The entry for `model` under `provider`'s family, else under any family (an
    /// OpenAI-compatible host serving a well-known model has no family of its own).
    /// Bedrock's cross-region inference profiles (`us.anthropic…`) are looked up by the model
    /// id they wrap.
    pub fn lookup(&self, provider: Option<&str>, model: &str) -> Option<&ModelInfo> {
        let find = |model: &str| {
            provider
                .and_then(|p| self.by_provider.get(p))
                .and_then(|m| m.get(model))
                .or_else(|| self.by_provider.values().find_map(|m| m.get(model)))
        };
        find(model).or_else(|| {
            let (prefix, rest) = model.split_once('.')?;
            ["us", "eu", "apac", "global", "us-gov", "jp", "au", "ca"]
                .contains(&prefix)
                .then(|| find(rest))
                .flatten()
        })
    }

    /// Every model of a provider family, sorted by name.
    pub fn models_of(&self, provider: &str) -> Vec<&ModelInfo> {
        let mut v: Vec<&ModelInfo> = self
            .by_provider
            .get(provider)
            .map(|m| m.values().collect())
            .unwrap_or_default();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// How many models the catalog knows.
    pub fn len(&self) -> usize {
        self.by_provider.values().map(HashMap::len).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Provider families in the catalog.
    pub fn providers(&self) -> Vec<&str> {
        let mut v: Vec<&str> = self.by_provider.keys().map(String::as_str).collect();
        v.sort_unstable();
        v
    }
}

impl ModelInfo {
    /// Cost in USD of a call with these token counts (cached tokens are part of `prompt`).
    pub fn cost(&self, prompt: u64, cached: u64, completion: u64) -> f64 {
        let cached = cached.min(prompt);
        let cached_price = self.cached_input.unwrap_or(self.input);
        ((prompt - cached) as f64 * self.input
            + cached as f64 * cached_price
            + completion as f64 * self.output)
            / 1_000_000.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_catalog_has_at_least_100_models_with_sane_facts() {
        let c = Catalog::builtin().unwrap();
        assert!(c.len() >= 100, "only {} models", c.len());
        for p in c.providers() {
            for m in c.models_of(p) {
                assert!(m.context_window >= 512, "{p}/{}: context window", m.name);
                assert!(m.input >= 0.0 && m.output >= 0.0, "{p}/{}: prices", m.name);
                if m.mode == Mode::Chat {
                    assert!(m.max_output_tokens > 0, "{p}/{}: max output", m.name);
                    assert!(
                        m.max_output_tokens <= m.context_window,
                        "{p}/{}: output > window",
                        m.name
                    );
                }
            }
        }
    }

    #[test]
    fn lookup_falls_back_to_any_family() {
        let c = Catalog::builtin().unwrap();
        assert!(c.lookup(Some("anthropic"), "claude-sonnet-4-5").is_some());
        assert!(c.lookup(None, "gpt-4o").is_some());
        assert!(c.lookup(Some("anthropic"), "no-such-model").is_none());
    }

    #[test]
    fn bedrock_inference_profiles_find_the_model_they_wrap() {
        let c = Catalog::builtin().unwrap();
        let id = "anthropic.claude-sonnet-4-5-20250929-v1:0";
        let direct = c.lookup(Some("bedrock"), id).unwrap();
        for profile in ["us.", "eu.", "global."] {
            let m = c
                .lookup(Some("bedrock"), &format!("{profile}{id}"))
                .unwrap();
            assert_eq!(m.name, direct.name);
        }
        assert!(c.lookup(Some("bedrock"), "xx.anthropic.nope").is_none());
    }

    #[test]
    fn cost_prices_cached_tokens_apart() {
        let m = ModelInfo {
            name: "m".into(),
            mode: Mode::Chat,
            context_window: 8192,
            max_output_tokens: 1024,
            input: 2.0,
            output: 8.0,
            cached_input: Some(0.5),
            capabilities: vec![],
        };
        let c = m.cost(1_000_000, 500_000, 1_000_000);
        assert!((c - (1.0 + 0.25 + 8.0)).abs() < 1e-9);
    }
}
