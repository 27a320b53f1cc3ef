//! The Anthropic Messages ingress (`/v1/messages`): the same Anthropic answers, streams and
//! errors whichever dialect serves the model; Anthropic upstreams get the request as sent.

use std::sync::{Arc, Mutex};

use axum::routing::post;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::harness::{start, Env, KEY};

const MODELS: [&str; 3] = ["claude", "gpt", "gemini"];

fn weather() -> Value {
    json!([{ "name": "get_weather", "description": "Weather in a city",
             "input_schema": { "type": "object", "properties": { "city": { "type": "string" } },
                               "required": ["city"] } }])
}

async fn messages(env: &Env, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
    let resp = env
        .http
        .post(format!("{}/messages", env.base))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    (status, headers, resp.json().await.unwrap())
}

/// A streamed call's events as (event name, data).
async fn events(env: &Env, body: Value) -> Vec<(String, Value)> {
    let resp = env
        .http
        .post(format!("{}/messages", env.base))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e
                .lines()
                .find_map(|l| l.strip_prefix("event: "))
                .unwrap_or_default();
            let data = e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
            (name.to_owned(), serde_json::from_str(data).unwrap())
        })
        .collect()
}

#[tokio::test]
async fn every_dialect_answers_in_anthropics_shape() {
    let env = start(&[], "").await;
    for model in MODELS {
        let (status, headers, body) = messages(
            &env,
            json!({ "model": model, "max_tokens": 100, "system": "Be brief.",
                    "messages": [{ "role": "user", "content": "hello" }] }),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert!(headers.contains_key("x-gatehouse-provider"));
        assert_eq!(body["type"], "message", "{model}");
        assert_eq!(body["role"], "assistant");
        assert!(body["id"].as_str().unwrap().starts_with("msg_"), "{body}");
        assert_eq!(body["stop_reason"], "end_turn", "{model}");
        assert_eq!(body["content"][0]["type"], "text");
        assert!(!body["content"][0]["text"].as_str().unwrap().is_empty());
        assert!(
            body["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{model}: {body}"
        );
        assert!(body["usage"]["output_tokens"].as_u64().unwrap() > 0);
    }
}

#[tokio::test]
async fn tool_use_and_tool_results_round_trip_through_every_dialect() {
    let env = start(&[], "").await;
    for model in MODELS {
        let (status, _, body) = messages(
            &env,
            json!({ "model": model, "max_tokens": 200, "tools": weather(),
                    "tool_choice": { "type": "any" },
                    "messages": [{ "role": "user", "content": "weather in Paris?" }] }),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["stop_reason"], "tool_use", "{model}: {body}");
        let call = body["content"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["type"] == "tool_use")
            .unwrap()
            .clone();
        assert_eq!(call["name"], "get_weather");
        assert!(call["input"].is_object(), "{model}: {call}");
        // The result goes back as a tool_result block; the model answers in text.
        let (status, _, body) = messages(
            &env,
            json!({ "model": model, "max_tokens": 200, "tools": weather(),
                    "messages": [
                        { "role": "user", "content": "weather in Paris?" },
                        { "role": "assistant", "content": [call.clone()] },
                        { "role": "user", "content": [
                            { "type": "tool_result", "tool_use_id": call["id"],
                              "content": [{ "type": "text", "text": "18C, sunny" }] }] }] }),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["content"][0]["type"], "text", "{model}: {body}");
        assert_eq!(body["stop_reason"], "end_turn", "{model}");
    }
}

#[tokio::test]
async fn streams_follow_anthropics_event_sequence_from_every_dialect() {
    let env = start(&[], "").await;
    for model in MODELS {
        let evs = events(
            &env,
            json!({ "model": model, "max_tokens": 100, "stream": true,
                    "messages": [{ "role": "user", "content": "hello" }] }),
        )
        .await;
        let names: Vec<&str> = evs.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names.first(), Some(&"message_start"), "{model}: {names:?}");
        assert_eq!(names.last(), Some(&"message_stop"), "{model}: {names:?}");
        for (name, data) in &evs {
            assert_eq!(
                data["type"],
                name.as_str(),
                "{model}: the event name is its type"
            );
        }
        let text: String = evs
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "text_delta")
            .map(|(_, d)| d["delta"]["text"].as_str().unwrap())
            .collect();
        assert!(!text.is_empty(), "{model}");
        let starts = names
            .iter()
            .filter(|n| **n == "content_block_start")
            .count();
        let stops = names.iter().filter(|n| **n == "content_block_stop").count();
        assert_eq!(starts, stops, "{model}: every block is closed");
        let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(delta["delta"]["stop_reason"], "end_turn", "{model}");
        assert!(
            delta["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{model}: {delta}"
        );
    }
}

#[tokio::test]
async fn streamed_tool_input_arrives_as_input_json_deltas_from_every_dialect() {
    let env = start(&[], "").await;
    for model in MODELS {
        let evs = events(
            &env,
            json!({ "model": model, "max_tokens": 200, "stream": true, "tools": weather(),
                    "tool_choice": { "type": "tool", "name": "get_weather" },
                    "messages": [{ "role": "user", "content": "weather?" }] }),
        )
        .await;
        let start = evs
            .iter()
            .find(|(n, d)| n == "content_block_start" && d["content_block"]["type"] == "tool_use")
            .unwrap_or_else(|| panic!("{model}: no tool_use block in {evs:?}"));
        assert_eq!(start.1["content_block"]["name"], "get_weather");
        let json: String = evs
            .iter()
            .filter(|(_, d)| d["delta"]["type"] == "input_json_delta")
            .map(|(_, d)| d["delta"]["partial_json"].as_str().unwrap())
            .collect();
        let input: Value = serde_json::from_str(&json).unwrap();
        assert!(input.is_object(), "{model}: {json}");
        let delta = &evs.iter().find(|(n, _)| n == "message_delta").unwrap().1;
        assert_eq!(delta["delta"]["stop_reason"], "tool_use", "{model}");
    }
}

#[tokio::test]
async fn thinking_streams_as_thinking_deltas_through_an_anthropic_upstream() {
    let env = start(&[], "").await;
    let evs = events(
        &env,
        json!({ "model": "claude", "max_tokens": 2000, "stream": true,
                "thinking": { "type": "enabled", "budget_tokens": 1024 },
                "messages": [{ "role": "user", "content": "think" }] }),
    )
    .await;
    assert!(evs
        .iter()
        .any(|(_, d)| d["delta"]["type"] == "thinking_delta"));
    assert!(evs
        .iter()
        .any(|(_, d)| d["delta"]["type"] == "signature_delta"));
}

#[tokio::test]
async fn errors_are_in_anthropics_shape() {
    let env = start(
        &["{ name: limited, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '429', x-mock-retry-after: '7' } }"],
        "",
    )
    .await;
    let url = format!("{}/messages", env.base);
    let body = json!({ "model": "claude", "max_tokens": 10, "messages": [{ "role": "user", "content": "x" }] });
    // No key, a wrong key, an unknown model, a bad body, a rate-limited upstream.
    let cases: Vec<(reqwest::RequestBuilder, u16, &str)> = vec![
        (env.http.post(&url).json(&body), 401, "authentication_error"),
        (
            env.http.post(&url).header("x-api-key", "nope").json(&body),
            401,
            "authentication_error",
        ),
        (
            env.http
                .post(&url)
                .header("x-api-key", KEY)
                .json(&json!({ "model": "nope", "max_tokens": 10, "messages": [] })),
            404,
            "not_found_error",
        ),
        (
            env.http
                .post(&url)
                .header("x-api-key", KEY)
                .json(&json!({ "model": "gpt", "messages": "x" })),
            400,
            "invalid_request_error",
        ),
        (
            env.http.post(&url).header("x-api-key", KEY).json(
                &json!({ "model": "limited/claude-haiku-4-5", "max_tokens": 10,
                               "messages": [{ "role": "user", "content": "x" }] }),
            ),
            429,
            "rate_limit_error",
        ),
    ];
    for (i, (req, status, kind)) in cases.into_iter().enumerate() {
        let resp = req.send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "case {i}");
        let retry_after = resp.headers().get("retry-after").cloned();
        let body: Value = resp.json().await.unwrap();
        assert_eq!(body["type"], "error", "case {i}: {body}");
        assert_eq!(body["error"]["type"], kind, "case {i}: {body}");
        assert!(!body["error"]["message"].as_str().unwrap().is_empty());
        if status == 429 {
            assert_eq!(retry_after.unwrap(), "7");
        }
    }
}

#[tokio::test]
async fn features_a_target_cannot_express_are_refused_by_name() {
    let env = start(&[], "").await;
    let (status, _, body) = messages(
        &env,
        json!({ "model": "gpt", "max_tokens": 10,
                "tools": [{ "type": "web_search_20250305", "name": "web_search", "max_uses": 3 }],
                "messages": [{ "role": "user", "content": "x" }] }),
    )
    .await;
    assert_eq!(status, 400, "{body}");
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("web_search_20250305") && message.contains("`gpt`"),
        "{message}"
    );
}

#[tokio::test]
async fn count_tokens_asks_anthropic_and_counts_elsewhere() {
    let env = start(&[], "").await;
    for model in MODELS {
        let resp = env
            .http
            .post(format!("{}/messages/count_tokens", env.base))
            .bearer_auth(KEY)
            .header("anthropic-version", "2023-06-01")
            .json(&json!({ "model": model, "system": "Be brief.",
                           "messages": [{ "role": "user", "content": "hello there, how are you?" }] }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{model}");
        let body: Value = resp.json().await.unwrap();
        assert!(
            body["input_tokens"].as_u64().unwrap() > 3,
            "{model}: {body}"
        );
    }
}

/// An Anthropic upstream that records the headers and bytes it receives.
async fn capture_server() -> (String, Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>>) {
    let seen: Arc<Mutex<Vec<(http::HeaderMap, Bytes)>>> = Arc::default();
    let store = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/messages",
        post(move |headers: http::HeaderMap, body: Bytes| {
            let store = Arc::clone(&store);
            async move {
                store.lock().unwrap().push((headers, body));
                axum::Json(
                    json!({ "id": "msg_1", "type": "message", "role": "assistant",
                    "model": "m", "content": [{ "type": "text", "text": "hi" }],
                    "stop_reason": "end_turn", "stop_sequence": null,
                    "usage": { "input_tokens": 5, "output_tokens": 1 } }),
                )
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test]
async fn anthropic_upstreams_get_the_request_and_its_headers_as_sent() {
    let (url, seen) = capture_server().await;
    let provider =
        format!("{{ name: cap, kind: anthropic, base_url: '{url}', api_keys: [up-key] }}");
    let env = start(&[&provider], "").await;
    let sent = r#"{"model":"cap/claude-x","max_tokens":5,"messages":[{"role":"user","content":[{"type":"text","text":"hi","cache_control":{"type":"ephemeral"}}]}],"container":"c1","mcp_servers":[]}"#;
    let resp = env
        .http
        .post(format!("{}/messages", env.base))
        .header("x-api-key", KEY)
        .header("anthropic-version", "2023-06-01")
        .header(
            "anthropic-beta",
            "prompt-caching-2024-07-31,mcp-client-2025-04-04",
        )
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let (headers, body) = seen.lock().unwrap()[0].clone();
    assert_eq!(
        std::str::from_utf8(&body).unwrap(),
        sent.replace("cap/claude-x", "claude-x")
    );
    assert_eq!(headers["anthropic-version"], "2023-06-01");
    assert_eq!(
        headers["anthropic-beta"],
        "prompt-caching-2024-07-31,mcp-client-2025-04-04"
    );
    // The upstream sees the provider's key, never the client's.
    assert_eq!(headers["x-api-key"], "up-key");
    assert_eq!(headers.get_all("anthropic-version").iter().count(), 1);
}

#[tokio::test]
async fn a_stream_cut_mid_way_ends_with_an_anthropic_error_event() {
    let env = start(
        &[
            "{ name: cut, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
            "{ name: ocut, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
        ],
        "",
    )
    .await;
    for model in ["cut/claude-haiku-4-5", "ocut/gpt-4o-mini"] {
        let evs = events(
            &env,
            json!({ "model": model, "max_tokens": 100, "stream": true,
                    "messages": [{ "role": "user", "content": "hello" }] }),
        )
        .await;
        let (name, last) = evs.last().unwrap();
        assert_eq!(name, "error", "{model}: {evs:?}");
        assert_eq!(last["type"], "error");
        assert_eq!(last["error"]["type"], "api_error", "{model}: {last}");
        assert!(
            last["error"]["message"]
                .as_str()
                .unwrap()
                .contains("stream"),
            "{model}: {last}"
        );
        assert!(!evs.iter().any(|(n, _)| n == "message_stop"), "{model}");
    }
}
