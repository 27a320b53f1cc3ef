//! Every provider's token fields, mapped to OpenAI's usage in one place.
//!
//! OpenAI counts cached prompt tokens inside `prompt_tokens` and reasoning tokens inside
//! `completion_tokens`; Anthropic reports cache reads and writes beside `input_tokens`, Gemini
//! reports thoughts beside `candidatesTokenCount`. The sums below keep OpenAI's meaning.

use crate::tokens;
use crate::types::{anthropic, gemini, openai};

/// Usage counted by Gatehouse for a response whose upstream reported none: the given prompt
/// count, and the output text and tool arguments of every choice counted for `model`.
pub fn estimate(model: &str, prompt_tokens: u64, resp: &openai::ChatResponse) -> openai::Usage {
    let completion = resp
        .choices
        .iter()
        .map(|c| {
            let m = &c.message;
            let mut n = tokens::count_text(model, m.content.as_deref().unwrap_or_default()).0;
            n += tokens::count_text(model, m.reasoning_content.as_deref().unwrap_or_default()).0;
            for call in m.tool_calls.iter().flatten() {
                n += tokens::count_text(model, &call.function.arguments).0;
            }
            n
        })
        .sum();
    openai::Usage::new(prompt_tokens, completion, 0, 0)
}

/// Anthropic usage → OpenAI usage (prompt includes cache reads and cache writes).
pub fn from_anthropic(u: &anthropic::Usage) -> openai::Usage {
    let cached = u.cache_read_input_tokens.unwrap_or(0);
    let prompt = u.input_tokens + cached + u.cache_creation_input_tokens.unwrap_or(0);
    openai::Usage::new(prompt, u.output_tokens, cached, 0)
}

/// Gemini usage metadata → OpenAI usage (completion includes thoughts).
pub fn from_gemini(u: &gemini::UsageMetadata) -> openai::Usage {
    let thoughts = u.thoughts_token_count.unwrap_or(0);
    openai::Usage::new(
        u.prompt_token_count,
        u.candidates_token_count + thoughts,
        u.cached_content_token_count.unwrap_or(0),
        thoughts,
    )
}

/// OpenAI usage → Anthropic usage (Anthropic's input excludes cache reads).
pub fn to_anthropic(u: &openai::Usage) -> anthropic::Usage {
    let cached = u
        .prompt_tokens_details
        .as_ref()
        .map_or(0, |d| d.cached_tokens);
    anthropic::Usage {
        input_tokens: u.prompt_tokens.saturating_sub(cached),
        output_tokens: u.completion_tokens,
        cache_creation_input_tokens: None,
        cache_read_input_tokens: (cached > 0).then_some(cached),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn anthropic_cache_reads_count_as_cached_prompt_tokens() {
        let u = anthropic::Usage {
            input_tokens: 10,
            output_tokens: 5,
            cache_creation_input_tokens: Some(3),
            cache_read_input_tokens: Some(100),
        };
        let o = from_anthropic(&u);
        assert_eq!(o.prompt_tokens, 113);
        assert_eq!(o.total_tokens, 118);
        assert_eq!(o.prompt_tokens_details.unwrap().cached_tokens, 100);
    }

    #[test]
    fn gemini_thoughts_count_as_reasoning_completion_tokens() {
        let u = gemini::UsageMetadata {
            prompt_token_count: 7,
            candidates_token_count: 4,
            total_token_count: 31,
            cached_content_token_count: Some(2),
            thoughts_token_count: Some(20),
        };
        let o = from_gemini(&u);
        assert_eq!(
            (o.prompt_tokens, o.completion_tokens, o.total_tokens),
            (7, 24, 31)
        );
        assert_eq!(o.completion_tokens_details.unwrap().reasoning_tokens, 20);
    }
}
