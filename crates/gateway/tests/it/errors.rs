use serde_json::{json, Value};

use crate::harness::{start, user, KEY};

async fn error_of(resp: reqwest::Response) -> (u16, reqwest::header::HeaderMap, Value) {
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body: Value = resp.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
    assert!(body["error"]["type"].is_string(), "{body}");
    assert!(headers.contains_key("x-request-id"));
    (status, headers, body)
}

#[tokio::test]
async fn malformed_json_is_400_naming_the_problem() {
    let env = start(&[], "").await;
    let resp = env
        .http
        .post(format!("{}/chat/completions", env.base))
        .bearer_auth(KEY)
        .body("{\"model\": \"gpt\", \"messages\": [")
        .send()
        .await
        .unwrap();
    let (status, _, body) = error_of(resp).await;
    assert_eq!(status, 400);
    assert_eq!(body["error"]["code"], "invalid_json");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 1"),
        "{body}"
    );
}

#[tokio::test]
async fn a_wrongly_typed_field_is_400_with_its_path() {
    let env = start(&[], "").await;
    let resp = env
        .post(
            "/chat/completions",
            &json!({ "model": "claude", "messages": [{ "role": "wizard", "content": "x" }] }),
        )
        .send()
        .await
        .unwrap();
    let (status, _, body) = error_of(resp).await;
    assert_eq!(status, 400);
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("messages[0].role"),
        "{body}"
    );
}

#[tokio::test]
async fn missing_or_unknown_model_is_404_model_not_found() {
    let env = start(&[], "").await;
    for body in [
        json!({ "messages": user("x") }),
        json!({ "model": "nope", "messages": user("x") }),
        json!({ "model": "p-nope/gpt-4o", "messages": user("x") }),
    ] {
        let (status, _, err) =
            error_of(env.post("/chat/completions", &body).send().await.unwrap()).await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(err["error"]["code"], "model_not_found");
        assert_eq!(err["error"]["param"], "model");
    }
}

#[tokio::test]
async fn missing_or_wrong_key_is_401() {
    let env = start(&[], "").await;
    let url = format!("{}/chat/completions", env.base);
    let body = json!({ "model": "gpt", "messages": user("x") });
    let (status, _, err) = error_of(env.http.post(&url).json(&body).send().await.unwrap()).await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("missing_api_key"))
    );
    let (status, _, err) = error_of(
        env.http
            .post(&url)
            .bearer_auth("wrong-key-0123456789")
            .json(&body)
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, err["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let (status, _, _) = error_of(
        env.http
            .get(format!("{}/models", env.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
}

#[tokio::test]
async fn a_body_over_the_limit_is_413_whether_declared_or_streamed() {
    let env = start(&[], "max_body: 1KiB").await;
    let big = json!({ "model": "gpt", "messages": user(&"x".repeat(2000)) });
    let (status, _, err) =
        error_of(env.post("/chat/completions", &big).send().await.unwrap()).await;
    assert_eq!(status, 413);
    assert_eq!(err["error"]["code"], "request_too_large");
    // Chunked, with no content-length: refused while reading.
    let chunks =
        futures_util::stream::iter((0..20).map(|_| Ok::<_, std::io::Error>(vec![b' '; 100])));
    let resp = env
        .http
        .post(format!("{}/chat/completions", env.base))
        .bearer_auth(KEY)
        .body(reqwest::Body::wrap_stream(chunks))
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 413);
    // Without a key nothing is read: the answer is 401, whatever the size.
    let resp = env
        .http
        .post(format!("{}/chat/completions", env.base))
        .json(&big)
        .send()
        .await
        .unwrap();
    assert_eq!(error_of(resp).await.0, 401);
}

#[tokio::test]
async fn upstream_errors_keep_status_message_and_retry_after_in_every_dialect() {
    let faults = [
        "{ name: o429, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '429', x-mock-retry-after: '7' } }",
        "{ name: a429, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '429', x-mock-retry-after: '7' } }",
        "{ name: g429, kind: gemini, base_url: 'http://{mock}/v1beta', api_keys: [upstream-key], headers: { x-mock-fault: '429', x-mock-retry-after: '7' } }",
        "{ name: a503, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '503' } }",
        "{ name: g500, kind: gemini, base_url: 'http://{mock}/v1beta', api_keys: [upstream-key], headers: { x-mock-fault: '500' } }",
    ];
    let env = start(&faults, "").await;
    for (model, want) in [
        ("o429/m", 429),
        ("a429/m", 429),
        ("g429/m", 429),
        ("a503/m", 503),
        ("g500/m", 500),
    ] {
        let resp = env
            .post(
                "/chat/completions",
                &json!({ "model": model, "messages": user("x") }),
            )
            .send()
            .await
            .unwrap();
        let (status, headers, err) = error_of(resp).await;
        assert_eq!(status, want, "{model}: {err}");
        assert!(
            err["error"]["message"]
                .as_str()
                .unwrap()
                .contains(&format!("mock fault: status {want}")),
            "{model}: {err}"
        );
        if want == 429 {
            assert_eq!(headers["retry-after"], "7", "{model}");
            assert_eq!(err["error"]["code"], "rate_limit_exceeded", "{model}");
        }
    }
}

#[tokio::test]
async fn a_wrong_upstream_key_is_the_upstreams_401() {
    let bad = [
        "{ name: badkey, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [not-the-key] }",
    ];
    let env = start(&bad, "").await;
    let (status, _, err) = error_of(
        env.post(
            "/chat/completions",
            &json!({ "model": "badkey/m", "messages": user("x") }),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(err["error"]["message"], "invalid x-api-key");
}

#[tokio::test]
async fn an_unreachable_upstream_is_502() {
    // Port 9 (discard) on loopback: nothing listens there in the test environment.
    let dead = ["{ name: dead, kind: openai_compatible, base_url: 'http://127.0.0.1:9/v1' }"];
    let env = start(&dead, "").await;
    let (status, _, err) = error_of(
        env.post(
            "/chat/completions",
            &json!({ "model": "dead/m", "messages": user("x") }),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 502);
    assert_eq!(err["error"]["code"], "upstream_unreachable");
    assert!(
        err["error"]["message"].as_str().unwrap().contains("dead"),
        "{err}"
    );
}

#[tokio::test]
async fn a_slow_upstream_is_504() {
    let slow = ["{ name: slow, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-latency-ms: '3000' }, timeouts: { first_byte: 200ms } }"];
    let env = start(&slow, "").await;
    let (status, _, err) = error_of(
        env.post(
            "/chat/completions",
            &json!({ "model": "slow/m", "messages": user("x") }),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 504);
    assert_eq!(err["error"]["code"], "upstream_timeout");
}

#[tokio::test]
async fn malformed_or_cut_upstream_bodies_are_502() {
    let bad = [
        "{ name: junk, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: malformed } }",
        "{ name: ajunk, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: malformed } }",
        "{ name: cut, kind: gemini, base_url: 'http://{mock}/v1beta', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
    ];
    let env = start(&bad, "").await;
    for (model, code) in [
        ("junk/m", "upstream_malformed"),
        ("ajunk/m", "upstream_malformed"),
        ("cut/m", "upstream_connection_broken"),
    ] {
        let (status, _, err) = error_of(
            env.post(
                "/chat/completions",
                &json!({ "model": model, "messages": user("x") }),
            )
            .send()
            .await
            .unwrap(),
        )
        .await;
        assert_eq!(status, 502, "{model}: {err}");
        assert_eq!(err["error"]["code"], code, "{model}");
    }
}

#[tokio::test]
async fn features_a_dialect_cannot_express_are_400_naming_feature_and_model() {
    let env = start(&[], "").await;
    let (status, _, err) = error_of(
        env.post(
            "/chat/completions",
            &json!({ "model": "claude", "messages": user("x"), "n": 2 }),
        )
        .send()
        .await
        .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(err["error"]["code"], "unsupported_parameter");
    let msg = err["error"]["message"].as_str().unwrap();
    assert!(msg.contains("n > 1") && msg.contains("`claude`"), "{msg}");
    let (status, _, err) = error_of(
        env.post("/embeddings", &json!({ "model": "claude", "input": "x" }))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 400);
    assert!(err["error"]["message"]
        .as_str()
        .unwrap()
        .contains("embeddings"));
}

#[tokio::test]
async fn unknown_routes_and_methods_get_openai_shaped_404s() {
    let env = start(&[], "").await;
    let (status, _, err) = error_of(
        env.http
            .post(format!("{}/nothing", env.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(err["error"]["code"], "unknown_url");
    let (status, _, _) = error_of(
        env.http
            .get(format!("{}/chat/completions", env.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn the_client_request_id_is_echoed_and_a_fresh_one_made_otherwise() {
    let env = start(&[], "").await;
    let resp = env
        .post(
            "/chat/completions",
            &json!({ "model": "gpt", "messages": user("x") }),
        )
        .header("x-request-id", "my-trace-42")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["x-request-id"], "my-trace-42");
    let resp = env
        .post(
            "/chat/completions",
            &json!({ "model": "gpt", "messages": user("x") }),
        )
        .send()
        .await
        .unwrap();
    assert!(resp.headers()["x-request-id"]
        .to_str()
        .unwrap()
        .starts_with("req_"));
}
