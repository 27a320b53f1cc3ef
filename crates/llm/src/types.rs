//! Wire types, one module per dialect: the fields Gatehouse reads, and the rest carried as-is.

pub mod anthropic;
pub mod bedrock;
pub mod gemini;
pub mod openai;
pub mod responses;

/// A JSON object, as used for fields carried through without interpretation.
pub type Map = serde_json::Map<String, serde_json::Value>;
