//! Deterministic text, tool arguments and embeddings derived from the request.

use std::borrow::Cow;

use serde_json::{json, Map, Value};

/// The mock's vocabulary, each word with its leading space (the first word of an answer drops it),
/// so that answers are slices of static strings rather than an allocation per token.
const WORDS: &[&str] = &[
    " the",
    " gateway",
    " routes",
    " every",
    " request",
    " to",
    " a",
    " model",
    " that",
    " answers",
    " with",
    " tokens",
    " streamed",
    " back",
    " in",
    " order",
    " while",
    " limits",
    " budgets",
    " and",
    " logs",
    " keep",
    " track",
    " of",
    " cost",
    " latency",
    " quality",
    " for",
    " each",
    " tenant",
    " app",
    " key",
];

/// FNV-1a: a stable seed for the same input on every run and platform.
pub(crate) fn seed(text: &str) -> u64 {
    text.bytes().fold(0xcbf2_9ce4_8422_2325, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// `n` words chosen from the seed; each word is one token of the mock's accounting.
pub(crate) fn words(seed: u64, n: u32) -> Vec<Cow<'static, str>> {
    let mut x = seed | 1;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let w = WORDS[(x % WORDS.len() as u64) as usize];
            Cow::Borrowed(if i == 0 { &w[1..] } else { w })
        })
        .collect()
}

/// The mock's prompt token count: one per four bytes, at least one.
pub(crate) fn prompt_tokens(prompt: &str) -> u64 {
    (prompt.len() as u64).div_ceil(4).max(1)
}

/// A value that satisfies a (simple) JSON schema: the first enum value, or a typed placeholder.
pub(crate) fn value_for(schema: &Value) -> Value {
    if let Some(first) = schema
        .get("enum")
        .and_then(Value::as_array)
        .and_then(|e| e.first())
    {
        return first.clone();
    }
    match schema.get("type").and_then(Value::as_str) {
        Some("string") => json!("mock"),
        Some("integer") => json!(1),
        Some("number") => json!(1.5),
        Some("boolean") => json!(true),
        Some("array") => match schema.get("items") {
            Some(items) => json!([value_for(items)]),
            None => json!([]),
        },
        Some("object") | None => {
            let mut out = Map::new();
            if let Some(props) = schema.get("properties").and_then(Value::as_object) {
                for (k, v) in props {
                    out.insert(k.clone(), value_for(v));
                }
            }
            Value::Object(out)
        }
        Some(_) => Value::Null,
    }
}

/// A unit-length embedding of `dims` floats derived from the text.
pub(crate) fn embedding(text: &str, dims: usize) -> Vec<f32> {
    let mut x = seed(text) | 1;
    let mut v: Vec<f32> = (0..dims)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            ((x % 2000) as f32 / 1000.0) - 1.0
        })
        .collect();
    let norm = v
        .iter()
        .map(|f| f * f)
        .sum::<f32>()
        .sqrt()
        .max(f32::EPSILON);
    v.iter_mut().for_each(|f| *f /= norm);
    v
}

/// Splits a JSON text into roughly three pieces, the way providers stream tool arguments.
pub(crate) fn pieces(s: &str) -> Vec<Cow<'static, str>> {
    let chars: Vec<char> = s.chars().collect();
    let step = chars.len().div_ceil(3).max(1);
    chars
        .chunks(step)
        .map(|c| Cow::Owned(c.iter().collect()))
        .collect()
}
