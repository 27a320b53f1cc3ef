//! Into the OpenAI chat dialect (responses, streams and errors coming back to the client).

pub mod from_anthropic;
pub mod from_gemini;
