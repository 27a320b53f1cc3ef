//! The wire dialects Gatehouse speaks, upstream and downstream.

use serde::{Deserialize, Serialize};

/// A wire dialect: the shape of requests, responses, streams and errors on one API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Dialect {
    /// OpenAI chat completions (and the legacy/embeddings endpoints beside it).
    OpenAiChat,
    /// Anthropic Messages.
    AnthropicMessages,
    /// Google AI Studio `generateContent`.
    Gemini,
    /// Amazon Bedrock's Converse API.
    BedrockConverse,
}

impl Dialect {
    /// A short human name used in error messages.
    pub fn label(self) -> &'static str {
        match self {
            Self::OpenAiChat => "the OpenAI chat API",
            Self::AnthropicMessages => "the Anthropic Messages API",
            Self::Gemini => "the Gemini API",
            Self::BedrockConverse => "Bedrock's Converse API",
        }
    }
}
