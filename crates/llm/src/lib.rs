//! Wire types of every LLM dialect and the translations between them.
//!
//! The canonical request is OpenAI chat completions (`types::openai::ChatRequest`); every other
//! dialect converts to and from it under `convert::<target>::from_<source>`. This crate owns the
//! SSE codec, the stream state machines, token counting and the model catalog. It does no I/O:
//! the gateway hands it bytes and events and sends what it returns.

pub mod catalog;
pub mod convert;
pub mod dialect;
pub mod error;
pub mod eventstream;
pub mod sse;
pub mod tokens;
pub mod types;
pub mod usage;

pub use dialect::Dialect;
pub use error::LlmError;
