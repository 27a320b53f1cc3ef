//! Redaction of bodies before they are kept: secrets and personal data are replaced by a
//! marker naming what was there, and the result is cut to a size cap.
//!
//! JSON bodies are walked: a value under a secret-looking key (`password`, `api_key`,
//! `authorization`…) is replaced whole, and every string is scanned for secrets (provider and
//! gateway keys, AWS access keys, bearer tokens, JWTs, private keys) and personal data (e-mail
//! addresses, card numbers that pass the Luhn check, US social security numbers, phone
//! numbers). Other bodies (streams, text) are scanned as text.

use std::sync::LazyLock;

use regex::Regex;

/// Key names whose values are secrets, compared lower-case with `-` and `_` removed.
const SECRET_KEYS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "clientsecret",
    "apikey",
    "xapikey",
    "apitoken",
    "accesstoken",
    "refreshtoken",
    "idtoken",
    "authtoken",
    "token",
    "authorization",
    "privatekey",
    "accesskey",
    "secretaccesskey",
    "sessiontoken",
    "cookie",
];

struct Rule {
    re: Regex,
    marker: &'static str,
    /// Card numbers: only digits that pass the Luhn check are redacted.
    luhn: bool,
}

/// (pattern, marker, Luhn-checked): card numbers are redacted only when they pass the check.
const PATTERNS: &[(&str, &str, bool)] = &[
    (
        r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----",
        "[REDACTED:private_key]",
        false,
    ),
    (
        r"(?i)\bbearer\s+[A-Za-z0-9._~+/=-]{8,}",
        "[REDACTED:bearer]",
        false,
    ),
    (
        r"\beyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}",
        "[REDACTED:jwt]",
        false,
    ),
    (
        r"\b(?:sk|pk|rk)-[A-Za-z0-9_-]{16,}",
        "[REDACTED:api_key]",
        false,
    ),
    (
        r"\bgatehouse_[A-Za-z0-9]+_[A-Za-z0-9]{16,}",
        "[REDACTED:api_key]",
        false,
    ),
    (
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
        "[REDACTED:aws_key]",
        false,
    ),
    (r"\bAIza[0-9A-Za-z_-]{35}", "[REDACTED:api_key]", false),
    (
        r"\b(?:ghp|gho|ghu|ghs|ghr|github_pat)_[A-Za-z0-9_]{30,}",
        "[REDACTED:api_key]",
        false,
    ),
    (
        r"\bxox[abprs]-[A-Za-z0-9-]{10,}",
        "[REDACTED:api_key]",
        false,
    ),
    (
        r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}",
        "[REDACTED:email]",
        false,
    ),
    (r"\b(?:\d[ -]?){12,18}\d\b", "[REDACTED:card]", true),
    (r"\b\d{3}-\d{2}-\d{4}\b", "[REDACTED:ssn]", false),
    (
        r"(?:\+\d{1,3}[\s.-]?)?(?:\(\d{2,4}\)|\b\d{2,4})[\s.-]\d{3}[\s.-]\d{3,4}\b",
        "[REDACTED:phone]",
        false,
    ),
];

static RULES: LazyLock<Vec<Rule>> = LazyLock::new(|| {
    PATTERNS
        .iter()
        .filter_map(|&(re, marker, luhn)| match Regex::new(re) {
            Ok(re) => Some(Rule { re, marker, luhn }),
            // The patterns are constants, compiled by the tests; this cannot happen in a release.
            Err(e) => {
                tracing::error!(pattern = re, error = %e, "a redaction pattern does not compile");
                None
            }
        })
        .collect()
});

fn luhn(digits: &str) -> bool {
    let ds: Vec<u32> = digits.chars().filter_map(|c| c.to_digit(10)).collect();
    if !(13..=19).contains(&ds.len()) {
        return false;
    }
    let sum: u32 = ds
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &d)| {
            if i % 2 == 1 {
                let x = d * 2;
                if x > 9 {
                    x - 9
                } else {
                    x
                }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// Text with every secret and piece of personal data replaced.
pub fn text(s: &str) -> String {
    let mut out = s.to_owned();
    for rule in RULES.iter() {
        if !rule.re.is_match(&out) {
            continue;
        }
        out = rule
            .re
            .replace_all(&out, |c: &regex::Captures<'_>| {
                let m = &c[0];
                if rule.luhn && !luhn(m) {
                    m.to_owned()
                } else {
                    rule.marker.to_owned()
                }
            })
            .into_owned();
    }
    out
}

fn secret_key(k: &str) -> bool {
    let norm: String = k
        .chars()
        .filter(|c| *c != '-' && *c != '_')
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_KEYS.contains(&norm.as_str())
}

fn value(v: &mut serde_json::Value) {
    use serde_json::Value;
    match v {
        Value::String(s) => {
            let clean = text(s);
            if clean != *s {
                *s = clean;
            }
        }
        Value::Array(a) => a.iter_mut().for_each(value),
        Value::Object(o) => {
            for (k, v) in o.iter_mut() {
                if secret_key(k) && !v.is_null() {
                    *v = Value::String("[REDACTED:secret]".into());
                } else {
                    value(v);
                }
            }
        }
        _ => {}
    }
}

/// A body as it is kept: redacted, then cut to `limit` bytes (on a character boundary) with a
/// marker saying how much was cut.
pub fn body(raw: &[u8], limit: usize) -> String {
    let redacted = match serde_json::from_slice::<serde_json::Value>(raw) {
        Ok(mut v) => {
            value(&mut v);
            v.to_string()
        }
        Err(_) => text(&String::from_utf8_lossy(raw)),
    };
    cut(redacted, limit)
}

fn cut(mut s: String, limit: usize) -> String {
    if s.len() <= limit {
        return s;
    }
    let mut at = limit;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    let cut = s.len() - at;
    s.truncate(at);
    s.push_str(&format!("…[truncated {cut} bytes]"));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_pattern_compiles() {
        assert_eq!(RULES.len(), PATTERNS.len());
    }

    #[test]
    fn secrets_and_personal_data_are_replaced() {
        let input = serde_json::json!({
            "model": "gpt-4o",
            "max_tokens": 100,
            "api_key": "hunter2",
            "headers": {"Authorization": "Bearer abc"},
            "messages": [{"role": "user", "content":
                "mail jane.doe@example.com, card 4111 1111 1111 1111, order 1234 5678 9012 3456, \
                 ssn 123-45-6789, call +1 415-555-0132, key sk-proj-abcdefghijklmnop1234, \
                 aws AKIAIOSFODNN7EXAMPLE, auth Bearer eyJhbGciOi.eyJzdWIiOi.c2lnbmF0dXJl"}]
        });
        let out = body(input.to_string().as_bytes(), 1 << 20);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["model"], "gpt-4o");
        assert_eq!(
            v["max_tokens"], 100,
            "counters named *_tokens are not secrets"
        );
        assert_eq!(v["api_key"], "[REDACTED:secret]");
        assert_eq!(v["headers"]["Authorization"], "[REDACTED:secret]");
        let content = v["messages"][0]["content"].as_str().unwrap();
        for gone in [
            "jane.doe",
            "4111",
            "123-45-6789",
            "555-0132",
            "sk-proj",
            "AKIA",
            "eyJ",
        ] {
            assert!(!content.contains(gone), "{gone} survived: {content}");
        }
        assert!(content.contains("[REDACTED:email]"));
        assert!(content.contains("[REDACTED:card]"));
        assert!(
            content.contains("1234 5678 9012 3456"),
            "a number failing the Luhn check is kept: {content}"
        );
    }

    #[test]
    fn text_bodies_are_scanned_and_everything_is_capped() {
        let sse = "data: {\"content\":\"write to bob@example.org\"}\n\n";
        assert!(body(sse.as_bytes(), 1000).contains("[REDACTED:email]"));
        let long = "é".repeat(100);
        let out = body(long.as_bytes(), 11);
        assert!(out.starts_with("ééééé"));
        assert!(out.ends_with("…[truncated 190 bytes]"), "{out}");
    }
}
