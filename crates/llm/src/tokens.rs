//! Token counting: exact for OpenAI-family models, a documented estimate for the rest.
//!
//! OpenAI models use `tiktoken-rs` (encodings embedded in the crate, built once on first use):
//! `o200k_base` for GPT-4o, GPT-4.1, GPT-5 and the o-series, `cl100k_base` for GPT-4, GPT-3.5 and
//! the v2/v3 embedding models. Other families (Claude, Gemini, Llama, Mistral…) have tokenizers
//! that are not public or not embedded; for them Gatehouse counts with `o200k_base`, which lands
//! within about ±15% of their own counts on English text. Counts are used when a provider reports
//! no usage (a stream cut short) and, later, for limits before a call.

use tiktoken_rs::CoreBPE;

use crate::types::openai::{ChatRequest, Content, ContentPart, Part};

/// Whether a count is exact for the model or an estimate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Accuracy {
    Exact,
    Estimate,
}

fn encoding_for(model: &str) -> (&'static CoreBPE, Accuracy) {
    let m = model.rsplit('/').next().unwrap_or(model);
    let o200k = || tiktoken_rs::o200k_base_singleton();
    if m.starts_with("gpt-4o")
        || m.starts_with("gpt-4.1")
        || m.starts_with("gpt-4.5")
        || m.starts_with("gpt-5")
        || m.starts_with("chatgpt-4o")
        || m.starts_with("o1")
        || m.starts_with("o3")
        || m.starts_with("o4")
        || m.starts_with("gpt-oss")
    {
        (o200k(), Accuracy::Exact)
    } else if m.starts_with("gpt-4") || m.starts_with("gpt-3.5") || m.starts_with("text-embedding-")
    {
        (tiktoken_rs::cl100k_base_singleton(), Accuracy::Exact)
    } else {
        (o200k(), Accuracy::Estimate)
    }
}

/// Tokens in a piece of text for `model`.
pub fn count_text(model: &str, text: &str) -> (u64, Accuracy) {
    let (bpe, acc) = encoding_for(model);
    (bpe.encode_ordinary(text).len() as u64, acc)
}

/// Prompt tokens of a chat request, with OpenAI's per-message framing (3 per message, 1 per
/// name, 3 to prime the reply); images count a flat 85 tokens (OpenAI's low-detail price).
pub fn count_chat(req: &ChatRequest) -> (u64, Accuracy) {
    let (bpe, acc) = encoding_for(&req.model);
    let mut total: u64 = 3;
    for m in &req.messages {
        total += 3;
        if let Some(name) = &m.name {
            total += 1 + bpe.encode_ordinary(name).len() as u64;
        }
        match &m.content {
            Some(Content::Text(t)) => total += bpe.encode_ordinary(t).len() as u64,
            Some(Content::Parts(parts)) => {
                for p in parts {
                    total += match p {
                        ContentPart::Known(Part::Text { text }) => {
                            bpe.encode_ordinary(text).len() as u64
                        }
                        ContentPart::Known(Part::ImageUrl { .. }) => 85,
                        ContentPart::Unknown(v) => bpe.encode_ordinary(&v.to_string()).len() as u64,
                    };
                }
            }
            None => {}
        }
        for call in m.tool_calls.iter().flatten() {
            total += bpe.encode_ordinary(&call.function.name).len() as u64;
            total += bpe.encode_ordinary(&call.function.arguments).len() as u64;
        }
    }
    for tool in req.tools.iter().flatten() {
        let schema = tool
            .function
            .parameters
            .as_ref()
            .map(|p| p.to_string())
            .unwrap_or_default();
        total += 8 + bpe.encode_ordinary(&tool.function.name).len() as u64;
        total += bpe.encode_ordinary(&schema).len() as u64;
    }
    (total, acc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gpt4o_uses_o200k_exactly() {
        // "hello world" is two tokens in both encodings.
        assert_eq!(count_text("gpt-4o", "hello world"), (2, Accuracy::Exact));
        assert_eq!(
            count_text("openai-main/gpt-4o-mini", "hello world").1,
            Accuracy::Exact
        );
    }

    #[test]
    fn other_families_are_estimates() {
        assert_eq!(
            count_text("claude-sonnet-4-5", "hello world"),
            (2, Accuracy::Estimate)
        );
    }

    #[test]
    fn chat_framing_matches_openai_cookbook() {
        let req: ChatRequest = serde_json::from_value(serde_json::json!({
            "model": "gpt-4o",
            "messages": [{"role": "user", "content": "hello world"}]
        }))
        .unwrap();
        // 3 (reply priming) + 3 (message) + 2 (text)
        assert_eq!(count_chat(&req).0, 8);
    }
}
