//! `gatehouse serve --demo`: an in-process mock upstream and a config that uses it.
//!
//! The demo config is YAML text run through the same loader as a user's file, so the demo
//! exercises the real configuration path. One model per mock dialect shows translation at work.

use std::net::SocketAddr;

use gatehouse_mock::{Knobs, MockConfig};

/// The key the gateway sends to the mock, and the mock insists on (proves auth headers flow).
const UPSTREAM_KEY: &str = "demo-upstream-key";

/// Starts the mock on an ephemeral port and returns the demo config text.
pub(crate) async fn start(client_key: &str) -> anyhow::Result<String> {
    let mock = MockConfig {
        knobs: Knobs {
            // A little pacing so that streaming is visible in a terminal.
            chunk_delay: std::time::Duration::from_millis(15),
            ..Knobs::default()
        },
        expect_key: Some(UPSTREAM_KEY.to_owned()),
        ..MockConfig::default()
    };
    let addr = gatehouse_mock::spawn(SocketAddr::from(([127, 0, 0, 1], 0)), mock).await?;
    Ok(config_text(addr, client_key))
}

fn config_text(mock: SocketAddr, client_key: &str) -> String {
    format!(
        r#"
keys:
  - {{ name: demo, key: "{client_key}" }}
providers:
  - {{ name: demo-openai, kind: openai, base_url: "http://{mock}/v1", api_keys: [{UPSTREAM_KEY}] }}
  - {{ name: demo-anthropic, kind: anthropic, base_url: "http://{mock}/v1", api_keys: [{UPSTREAM_KEY}] }}
  - {{ name: demo-gemini, kind: gemini, base_url: "http://{mock}/v1beta", api_keys: [{UPSTREAM_KEY}] }}
models:
  - {{ name: demo/gpt, targets: [{{ provider: demo-openai, model: gpt-4o-mini }}] }}
  - {{ name: demo/claude, targets: [{{ provider: demo-anthropic, model: claude-haiku-4-5 }}] }}
  - {{ name: demo/gemini, targets: [{{ provider: demo-gemini, model: gemini-2.5-flash }}] }}
  - {{ name: demo/embedding, targets: [{{ provider: demo-openai, model: text-embedding-3-small }}] }}
  - {{ name: demo/gemini-embedding, targets: [{{ provider: demo-gemini, model: gemini-embedding-001 }}] }}
"#
    )
}

/// A fresh demo key: 190 bits from the OS CSPRNG, recognisable prefix.
pub(crate) fn generate_key() -> anyhow::Result<String> {
    Ok(format!(
        "gh-demo-{}",
        gatehouse_store::ids::random_base62(32)?
    ))
}
