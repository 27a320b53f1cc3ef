//! Into the OpenAI chat dialect: upstream responses, streams and errors coming back, and the
//! requests of clients in other dialects (Anthropic Messages, OpenAI Responses) going out.

pub mod from_anthropic;
pub mod from_bedrock;
pub mod from_gemini;
pub mod from_responses;
