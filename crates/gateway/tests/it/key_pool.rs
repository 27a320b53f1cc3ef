//! A provider's key pool: keys in turn, a refused key taken out, a rate-limited key cooling
//! down, and the call resent with the next key rather than failed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::routing::post;
use serde_json::json;

use crate::harness::{start, user};

/// An OpenAI upstream that answers by key: `k-good*` 200, `k-limited` 429 (retry-after 30),
/// anything else 401. It counts the calls each key made.
async fn keyed_server() -> (String, Arc<Mutex<HashMap<String, u32>>>) {
    let seen: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let store = Arc::clone(&seen);
    let app = axum::Router::new().route(
        "/v1/chat/completions",
        post(move |headers: http::HeaderMap| {
            let store = Arc::clone(&store);
            async move {
                let key = headers["authorization"]
                    .to_str()
                    .unwrap()
                    .trim_start_matches("Bearer ")
                    .to_owned();
                *store.lock().unwrap().entry(key.clone()).or_default() += 1;
                let (status, retry) = match key.as_str() {
                    k if k.starts_with("k-good") => (200, None),
                    "k-limited" => (429, Some("30")),
                    _ => (401, None),
                };
                let body = if status == 200 {
                    json!({ "id": "x", "object": "chat.completion", "created": 1, "model": "m",
                            "choices": [{ "index": 0, "message": { "role": "assistant", "content": "hi" },
                                          "finish_reason": "stop", "logprobs": null }] })
                } else {
                    json!({ "error": { "message": "no", "type": "error", "code": null } })
                };
                let mut resp = axum::response::IntoResponse::into_response((
                    http::StatusCode::from_u16(status).unwrap(),
                    axum::Json(body),
                ));
                if let Some(r) = retry {
                    resp.headers_mut()
                        .insert("retry-after", http::HeaderValue::from_static(r));
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/v1"), seen)
}

#[tokio::test]
async fn refused_and_limited_keys_are_set_aside_and_calls_still_succeed() {
    let (url, seen) = keyed_server().await;
    let provider = format!(
        "{{ name: pool, kind: openai_compatible, base_url: '{url}', api_keys: [k-revoked, k-limited, k-good-1, k-good-2] }}"
    );
    let env = start(&[&provider], "").await;
    for _ in 0..8 {
        let (status, _, body) = env
            .chat(json!({ "model": "pool/m", "messages": user("hi") }))
            .await;
        assert_eq!(status, 200, "{body}");
    }
    let seen = seen.lock().unwrap().clone();
    // Each bad key was tried once, then left alone; the good keys took turns with the rest.
    assert_eq!(seen["k-revoked"], 1, "{seen:?}");
    assert_eq!(seen["k-limited"], 1, "{seen:?}");
    assert_eq!(seen["k-good-1"] + seen["k-good-2"], 8, "{seen:?}");
    assert!(seen["k-good-1"] >= 3 && seen["k-good-2"] >= 3, "{seen:?}");
}

#[tokio::test]
async fn a_pool_with_one_key_answers_the_providers_refusal() {
    let (url, _) = keyed_server().await;
    let provider =
        format!("{{ name: one, kind: openai_compatible, base_url: '{url}', api_keys: [k-bad] }}");
    let env = start(&[&provider], "").await;
    for _ in 0..2 {
        let (status, _, body) = env
            .chat(json!({ "model": "one/m", "messages": user("hi") }))
            .await;
        assert_eq!(status, 401, "{body}");
    }
}
