//! Provider kinds: the API families Gatehouse calls, and the built-in list of named
//! OpenAI-compatible services, so that `kind: groq` and a key is all a provider needs.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An OpenAI-compatible service Gatehouse knows by name: where it lives and how it is billed.
#[derive(Debug, PartialEq, Eq, Hash)]
pub struct Named {
    /// The `kind` users write.
    pub name: &'static str,
    /// Its OpenAI-compatible base URL (the part before `/chat/completions`).
    pub base_url: &'static str,
    /// A local server, called without a key by default.
    pub local: bool,
    /// The OpenTelemetry GenAI `gen_ai.provider.name`.
    pub semconv: &'static str,
}

const fn hosted(name: &'static str, base_url: &'static str, semconv: &'static str) -> Named {
    Named {
        name,
        base_url,
        local: false,
        semconv,
    }
}

const fn local(name: &'static str, base_url: &'static str) -> Named {
    Named {
        name,
        base_url,
        local: true,
        semconv: name,
    }
}

/// The named OpenAI-compatible services, as their providers document their endpoints. A
/// provider's `base_url` overrides the one here (another region, a proxy).
pub static NAMED: &[Named] = &[
    hosted("mistral", "https://api.mistral.ai/v1", "mistral_ai"),
    hosted("groq", "https://api.groq.com/openai/v1", "groq"),
    hosted("deepseek", "https://api.deepseek.com/v1", "deepseek"),
    hosted("together", "https://api.together.xyz/v1", "together"),
    hosted(
        "fireworks",
        "https://api.fireworks.ai/inference/v1",
        "fireworks",
    ),
    hosted("openrouter", "https://openrouter.ai/api/v1", "openrouter"),
    hosted("xai", "https://api.x.ai/v1", "x_ai"),
    hosted("perplexity", "https://api.perplexity.ai", "perplexity"),
    hosted("cerebras", "https://api.cerebras.ai/v1", "cerebras"),
    hosted(
        "deepinfra",
        "https://api.deepinfra.com/v1/openai",
        "deepinfra",
    ),
    hosted("sambanova", "https://api.sambanova.ai/v1", "sambanova"),
    hosted(
        "nvidia_nim",
        "https://integrate.api.nvidia.com/v1",
        "nvidia_nim",
    ),
    hosted(
        "huggingface",
        "https://router.huggingface.co/v1",
        "huggingface",
    ),
    hosted("moonshot", "https://api.moonshot.ai/v1", "moonshot"),
    hosted("zhipu", "https://open.bigmodel.cn/api/paas/v4", "zhipu"),
    hosted(
        "qwen",
        "https://dashscope-intl.aliyuncs.com/compatible-mode/v1",
        "qwen",
    ),
    hosted(
        "siliconflow",
        "https://api.siliconflow.com/v1",
        "siliconflow",
    ),
    local("ollama", "http://127.0.0.1:11434/v1"),
    local("vllm", "http://127.0.0.1:8000/v1"),
    local("lm_studio", "http://127.0.0.1:1234/v1"),
    local("llama_cpp", "http://127.0.0.1:8080/v1"),
];

/// The upstream API families Gatehouse can call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ProviderKind {
    Openai,
    /// Any server that speaks OpenAI's API; `base_url` is required.
    OpenaiCompatible,
    /// Azure OpenAI: deployment URLs, `api-version`, the `api-key` header.
    AzureOpenai,
    Anthropic,
    Gemini,
    /// Amazon Bedrock's Converse API, signed with AWS SigV4.
    Bedrock,
    /// A named OpenAI-compatible service from [`NAMED`].
    Named(&'static Named),
}

impl ProviderKind {
    /// The kinds as users write them, for messages and the schema.
    pub fn names() -> impl Iterator<Item = &'static str> {
        [
            "openai",
            "openai_compatible",
            "azure_openai",
            "anthropic",
            "gemini",
            "bedrock",
        ]
        .into_iter()
        .chain(NAMED.iter().map(|n| n.name))
    }

    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "openai" => Self::Openai,
            "openai_compatible" => Self::OpenaiCompatible,
            "azure_openai" => Self::AzureOpenai,
            "anthropic" => Self::Anthropic,
            "gemini" => Self::Gemini,
            "bedrock" => Self::Bedrock,
            other => Self::Named(NAMED.iter().find(|n| n.name == other)?),
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Openai => "openai",
            Self::OpenaiCompatible => "openai_compatible",
            Self::AzureOpenai => "azure_openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gemini",
            Self::Bedrock => "bedrock",
            Self::Named(n) => n.name,
        }
    }

    /// The GenAI semantic conventions' `gen_ai.provider.name`.
    pub fn semconv_name(self) -> &'static str {
        match self {
            Self::Openai | Self::OpenaiCompatible => "openai",
            Self::AzureOpenai => "azure.ai.openai",
            Self::Anthropic => "anthropic",
            Self::Gemini => "gcp.gemini",
            Self::Bedrock => "aws.bedrock",
            Self::Named(n) => n.semconv,
        }
    }

    pub fn dialect(self) -> gatehouse_llm::Dialect {
        match self {
            Self::Openai | Self::OpenaiCompatible | Self::AzureOpenai | Self::Named(_) => {
                gatehouse_llm::Dialect::OpenAiChat
            }
            Self::Anthropic => gatehouse_llm::Dialect::AnthropicMessages,
            Self::Gemini => gatehouse_llm::Dialect::Gemini,
            Self::Bedrock => gatehouse_llm::Dialect::BedrockConverse,
        }
    }

    /// The catalog family whose models this kind serves; `None` for servers that serve whatever
    /// they host (their models are looked up by name in every family).
    pub fn catalog_family(self) -> Option<&'static str> {
        match self {
            Self::Openai | Self::AzureOpenai => Some("openai"),
            Self::OpenaiCompatible => None,
            Self::Anthropic => Some("anthropic"),
            Self::Gemini => Some("gemini"),
            Self::Bedrock => Some("bedrock"),
            Self::Named(n) if n.local => None,
            Self::Named(n) => Some(n.name),
        }
    }

    pub fn default_base_url(self) -> Option<&'static str> {
        match self {
            Self::Openai => Some("https://api.openai.com/v1"),
            Self::Anthropic => Some("https://api.anthropic.com/v1"),
            Self::Gemini => Some("https://generativelanguage.googleapis.com/v1beta"),
            // Bedrock's is worked out from the region.
            Self::OpenaiCompatible | Self::AzureOpenai | Self::Bedrock => None,
            Self::Named(n) => Some(n.base_url),
        }
    }

    /// Whether calls need an API key (local servers and bare OpenAI-compatible ones do not).
    pub fn needs_key(self) -> bool {
        match self {
            // Bedrock signs with AWS credentials; `api_keys` (Bedrock API keys) are optional.
            Self::OpenaiCompatible | Self::Bedrock => false,
            Self::Named(n) => !n.local,
            _ => true,
        }
    }

    /// Whether the upstream is called with `Authorization: Bearer <key>` on OpenAI's paths.
    pub fn is_openai_like(self) -> bool {
        matches!(self, Self::Openai | Self::OpenaiCompatible | Self::Named(_))
    }
}

impl fmt::Display for ProviderKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for ProviderKind {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for ProviderKind {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Self::parse(&s).ok_or_else(|| {
            serde::de::Error::custom(format!(
                "unknown provider kind {s:?}: expected one of {}",
                Self::names().collect::<Vec<_>>().join(", ")
            ))
        })
    }
}

impl utoipa::PartialSchema for ProviderKind {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .enum_values(Some(Self::names()))
            .description(Some(
                "The API family: openai, openai_compatible (base_url required), azure_openai, \
                 anthropic, gemini, bedrock, or a named OpenAI-compatible service",
            ))
            .into()
    }
}

impl utoipa::ToSchema for ProviderKind {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_reads_back_as_written() {
        for name in ProviderKind::names() {
            let kind = ProviderKind::parse(name).unwrap();
            assert_eq!(kind.as_str(), name);
            let yaml: ProviderKind = serde_json::from_value(serde_json::json!(name)).unwrap();
            assert_eq!(yaml, kind);
            assert_eq!(serde_json::to_value(kind).unwrap(), name);
        }
        assert!(ProviderKind::names().count() >= 26);
    }

    #[test]
    fn an_unknown_kind_lists_the_known_ones() {
        let e = serde_json::from_value::<ProviderKind>(serde_json::json!("grok")).unwrap_err();
        assert!(e.to_string().contains("groq, deepseek"), "{e}");
    }

    #[test]
    fn named_services_have_http_base_urls_and_local_ones_need_no_key() {
        for n in NAMED {
            let url = url::Url::parse(n.base_url).unwrap();
            assert!(matches!(url.scheme(), "http" | "https"), "{}", n.name);
            assert!(!n.base_url.ends_with('/'), "{}", n.name);
            assert_eq!(ProviderKind::Named(n).needs_key(), !n.local);
        }
    }
}
