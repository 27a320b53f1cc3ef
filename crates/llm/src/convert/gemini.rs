//! Into the Gemini `generateContent` dialect.

pub mod from_openai;
