//! Into Amazon Bedrock's Converse API.

pub mod from_openai;
