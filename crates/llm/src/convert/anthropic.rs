//! Into the Anthropic Messages dialect.

pub mod from_openai;
