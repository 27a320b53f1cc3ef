//! Provider kinds beyond the three dialects' own: Azure OpenAI's deployment URLs and `api-key`,
//! and the named OpenAI-compatible services (`kind: groq`…), against the mock.

use serde_json::{json, Value};

use crate::harness::{start, start_with, user, KEY};

const AZURE: &str = "{ name: az, kind: azure_openai, base_url: 'http://{mock}', api_keys: [upstream-key], api_version: '2024-10-21' }";

#[tokio::test]
async fn azure_deployments_serve_chat_streams_and_embeddings() {
    let env = start(&[AZURE], "").await;
    let (status, headers, body) = env
        .chat(json!({ "model": "az/my-gpt4o-deployment", "messages": user("hello") }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-gatehouse-provider"], "az");
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    let chunks = env
        .stream(
            json!({ "model": "az/my-gpt4o-deployment", "messages": user("hello"), "stream": true }),
        )
        .await;
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let resp = env
        .post(
            "/embeddings",
            &json!({ "model": "az/my-embedding-deployment", "input": ["a", "b"] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["data"].as_array().unwrap().len(), 2);
    // An Anthropic client reaches the deployment too.
    let resp = env
        .http
        .post(format!("{}/messages", env.base))
        .header("x-api-key", KEY)
        .json(
            &json!({ "model": "az/my-gpt4o-deployment", "max_tokens": 50,
                       "messages": [{ "role": "user", "content": "hi" }] }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.json::<Value>().await.unwrap()["type"], "message");
}

#[tokio::test]
async fn an_azure_key_sent_as_a_bearer_token_reaches_the_deployment() {
    let env = start(
        &["{ name: az, kind: azure_openai, base_url: 'http://{mock}/openai', api_keys: [upstream-key], auth: bearer }"],
        "",
    )
    .await;
    let (status, _, body) = env
        .chat(json!({ "model": "az/dep", "messages": user("hello") }))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn named_services_need_only_a_kind_and_a_key() {
    // base_url is overridden to reach the mock; the kind supplies everything else.
    let env = start_with(
        &[
            "{ name: groq-main, kind: groq, base_url: 'http://{mock}/v1', api_keys: [upstream-key] }",
            "{ name: local, kind: ollama, base_url: 'http://{mock}/v1', headers: { authorization: 'Bearer upstream-key' } }",
        ],
        "",
        "models:\n  - { name: llama, targets: [{ provider: groq-main, model: llama-3.3-70b-versatile }] }\n",
    )
    .await;
    for model in ["llama", "local/llama3.1"] {
        let (status, headers, body) = env
            .chat(json!({ "model": model, "messages": user("hi") }))
            .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert!(headers.contains_key("x-gatehouse-provider"));
    }
    // GET /v1/models lists the named service's catalog models.
    let models: Value = env
        .get("/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = models["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert!(ids.contains(&"groq-main/llama-3.1-8b-instant"), "{ids:?}");
}

#[test]
fn kinds_are_checked_with_what_each_needs() {
    let check = |providers: &str| {
        let yaml =
            format!("keys: [{{ name: t, key: {KEY} }}]\nproviders:\n{providers}models: []\n");
        gatehouse_gateway::RawConfig::parse(&yaml, &|_| None)
            .and_then(gatehouse_gateway::RawConfig::validate)
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    // A named hosted service: its URL is known, a key is required.
    assert_eq!(
        check("  - { name: g, kind: groq, api_keys: [k] }\n"),
        Ok(())
    );
    let e = check("  - { name: g, kind: groq }\n").unwrap_err();
    assert!(e.contains("providers[0].api_keys"), "{e}");
    // A local server needs no key.
    assert_eq!(check("  - { name: o, kind: ollama }\n"), Ok(()));
    // Azure needs its resource's endpoint.
    let e = check("  - { name: a, kind: azure_openai, api_keys: [k] }\n").unwrap_err();
    assert!(
        e.contains("providers[0].base_url") && e.contains("openai.azure.com"),
        "{e}"
    );
    let e = check("  - { name: x, kind: grok, api_keys: [k] }\n").unwrap_err();
    assert!(e.contains("unknown provider kind \"grok\""), "{e}");
}
