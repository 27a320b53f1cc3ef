use std::sync::{Arc, Mutex};

use axum::routing::post;
use bytes::Bytes;
use serde_json::json;

use crate::harness::{start, KEY};

/// An OpenAI-compatible upstream that records the exact bytes it receives.
async fn capture_server() -> (String, Arc<Mutex<Vec<Bytes>>>) {
    let seen: Arc<Mutex<Vec<Bytes>>> = Arc::default();
    let store = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |body: Bytes| {
            let store = Arc::clone(&store);
            async move {
                store.lock().unwrap().push(body);
                axum::Json(
                    json!({ "id": "x", "object": "chat.completion", "created": 1, "model": "m",
                    "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hi" },
                                  "finish_reason": "stop", "logprobs": null }] }),
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
async fn same_dialect_changes_only_the_model_byte_for_byte() {
    let (url, seen) = capture_server().await;
    let provider = format!("{{ name: cap, kind: openai_compatible, base_url: '{url}' }}");
    let env = start(&[&provider], "").await;
    // Odd spacing, key order, number formats and vendor fields must all survive.
    let sent = "{ \"vendor_x\": {\"nested\": [1, 2.50, \"\\u00e9\"]},\n  \"model\":\"cap/served-model\" ,\"messages\":[{\"role\":\"user\",\"content\":\"hi\",\"cache_control\":{\"type\":\"ephemeral\"}}], \"top_k\": 40 }";
    let resp = env
        .http
        .post(format!("{}/chat/completions", env.base))
        .bearer_auth(KEY)
        .header("content-type", "application/json")
        .body(sent)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let got = seen.lock().unwrap()[0].clone();
    let expected = sent.replace("\"cap/served-model\"", "\"served-model\"");
    assert_eq!(std::str::from_utf8(&got).unwrap(), expected);
}

#[tokio::test]
async fn translated_requests_report_the_parameters_they_dropped() {
    let env = start(&[], "").await;
    let resp = env
        .post(
            "/chat/completions",
            &json!({ "model": "claude", "messages": [{ "role": "user", "content": "x" }],
               "seed": 7, "vendor_flag": true }),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(
        resp.headers()["x-gatehouse-dropped-params"],
        "seed,vendor_flag"
    );
}
