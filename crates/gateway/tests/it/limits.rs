//! Limits in the pipeline: 429s with the standard headers, token reservations settled with the
//! real usage, budgets, and concurrency leases released when a stream ends or is dropped.

use futures_util::StreamExt;
use serde_json::json;

use crate::harness::{start_with, user};

const SLOW: &str = "{ name: slow, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-chunk-delay-ms: '200', x-mock-tokens: '20' } }";

fn num(h: &reqwest::header::HeaderMap, name: &str) -> u64 {
    h[name].to_str().unwrap().parse().unwrap()
}

#[tokio::test]
async fn requests_over_the_limit_get_429_with_the_standard_headers() {
    let env = start_with(
        &[],
        "",
        "policies:\n  - { name: starter, limits: [{ requests: 2, per: 1m }] }\n",
    )
    .await;
    for remaining in ["1", "0"] {
        let (status, h, body) = env
            .chat(json!({"model": "gpt", "messages": user("hi")}))
            .await;
        assert_eq!(status, 200, "{body}");
        assert_eq!(h["x-ratelimit-limit-requests"], "2");
        assert_eq!(h["x-ratelimit-remaining-requests"], remaining);
        assert!(h.contains_key("x-ratelimit-reset-requests"));
    }
    let (status, h, body) = env
        .chat(json!({"model": "gpt", "messages": user("hi")}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "rate_limit_exceeded");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("policy `starter` allows 2 requests per 1m for every call"),
        "{msg}"
    );
    assert_eq!(h["retry-after"], "30");
    assert_eq!(h["x-ratelimit-remaining-requests"], "0");
}

#[tokio::test]
async fn tokens_are_reserved_then_charged_what_the_answer_used() {
    let env = start_with(
        &[],
        "",
        "policies:\n  - { name: t, applies_to: { model: gpt }, limits: [{ tokens: 1000, per: 1h }] }\n",
    )
    .await;
    let ask = json!({"model": "gpt", "messages": user("hi"), "max_tokens": 300});
    let (status, h, body) = env.chat(ask.clone()).await;
    assert_eq!(status, 200, "{body}");
    let first_left = num(&h, "x-ratelimit-remaining-tokens");
    let used = body["usage"]["total_tokens"].as_u64().unwrap();
    let prompt = 1000 - 300 - first_left;
    assert!(
        prompt > 0 && prompt < 50,
        "the prompt was counted: {prompt}"
    );
    // The second call sees the first one's real usage, not its reservation.
    let (_, h, _) = env.chat(ask).await;
    assert_eq!(
        num(&h, "x-ratelimit-remaining-tokens"),
        1000 - used - prompt - 300
    );
    // A reservation that does not fit is refused before anything is sent upstream.
    let before = env.mock_stats().await["requests"].as_u64().unwrap();
    let (status, _, body) = env
        .chat(json!({"model": "gpt", "messages": user("hi"), "max_tokens": 5000}))
        .await;
    assert_eq!(status, 429, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1000 tokens per 1h"));
    assert_eq!(env.mock_stats().await["requests"].as_u64().unwrap(), before);
}

#[tokio::test]
async fn a_spent_budget_is_429_budget_exceeded_until_its_period_ends() {
    let env = start_with(
        &[],
        "",
        "policies:\n  - { name: b, time_zone: Europe/Paris, limits: [{ spend_usd: 0.0001, per: month }] }\n",
    )
    .await;
    let mut ok = 0;
    let (h, body) = loop {
        let (status, h, body) = env
            .chat(json!({"model": "gpt", "messages": user("hi"), "max_tokens": 16}))
            .await;
        if status == 429 {
            break (h, body);
        }
        assert_eq!(status, 200, "{body}");
        ok += 1;
        assert!(ok < 100, "the budget never ran out");
    };
    assert!(ok >= 3, "several calls fit in the budget: {ok}");
    assert_eq!(body["error"]["code"], "budget_exceeded");
    let msg = body["error"]["message"].as_str().unwrap();
    assert!(
        msg.contains("$0.00 per month") && msg.contains("resets at"),
        "{msg}"
    );
    let retry = num(&h, "retry-after");
    assert!(
        retry > 0 && retry <= 31 * 86_400,
        "until the month ends: {retry}"
    );
}

#[tokio::test]
async fn concurrency_leases_are_held_by_streams_and_released_when_dropped() {
    let env = start_with(
        &[SLOW],
        "",
        "models:\n  - { name: slow-model, targets: [{ provider: slow, model: gpt-4o-mini }] }\npolicies:\n  - { name: c, limits: [{ concurrent: 1 }] }\n",
    )
    .await;
    let body = json!({"model": "slow-model", "messages": user("hi"), "stream": true});
    let first = env.post("/chat/completions", &body).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let mut chunks = first.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    let (status, _, refused) = env
        .chat(json!({"model": "gpt", "messages": user("hi")}))
        .await;
    assert_eq!(status, 429, "the stream holds the only slot: {refused}");
    assert!(refused["error"]["message"]
        .as_str()
        .unwrap()
        .contains("1 concurrent requests"));
    // The client walks away mid-stream: the slot comes back.
    drop(chunks);
    let mut admitted = false;
    for _ in 0..500 {
        let (status, _, _) = env
            .chat(json!({"model": "gpt", "messages": user("hi")}))
            .await;
        if status == 200 {
            admitted = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    assert!(admitted, "the dropped stream released its lease");
}

/// A webhook receiver that fails each alert's first delivery, so every alert is retried once.
async fn receiver() -> (
    std::net::SocketAddr,
    std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>,
) {
    use axum::routing::post;
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, String)>::new()));
    let seen = std::sync::Arc::new(std::sync::Mutex::new(
        std::collections::HashSet::<String>::new(),
    ));
    let (g, s) = (got.clone(), seen.clone());
    let app = axum::Router::new().route(
        "/hook",
        post(move |headers: http::HeaderMap, body: String| {
            let (g, s) = (g.clone(), s.clone());
            async move {
                let id = headers["x-gatehouse-alert-id"].to_str().unwrap().to_owned();
                if s.lock().unwrap().insert(id) {
                    return http::StatusCode::SERVICE_UNAVAILABLE;
                }
                let sig = headers["x-gatehouse-signature"]
                    .to_str()
                    .unwrap()
                    .to_owned();
                g.lock().unwrap().push((sig, body));
                http::StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });
    (addr, got)
}

#[tokio::test]
async fn budget_thresholds_send_one_signed_webhook_each_per_period() {
    let (hook, got) = receiver().await;
    let env = start_with(
        &[],
        "",
        &format!(
            "policies:\n  - {{ name: b, limits: [{{ spend_usd: 0.0001, per: month }}], alerts: {{ thresholds: [50, 100], webhook: 'http://{hook}/hook', secret: s3cret }} }}\n"
        ),
    )
    .await;
    for _ in 0..100 {
        let (status, _, _) = env
            .chat(json!({"model": "gpt", "messages": user("hi"), "max_tokens": 16}))
            .await;
        if status == 429 {
            break;
        }
    }
    // Each delivery fails once and is retried after a second.
    for _ in 0..500 {
        if got.lock().unwrap().len() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let got = got.lock().unwrap().clone();
    assert_eq!(got.len(), 2, "{got:?}");
    let mut thresholds: Vec<u64> = Vec::new();
    for (sig, body) in &got {
        let v: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(v["type"], "budget.threshold");
        assert_eq!(v["policy"], "b");
        thresholds.push(v["threshold_percent"].as_u64().unwrap());
        // The signature is HMAC-SHA256 over "t.body" with the policy's secret.
        let (t, mac) = sig
            .strip_prefix("t=")
            .and_then(|s| s.split_once(",v1="))
            .unwrap();
        let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, b"s3cret");
        let expected: String = ring::hmac::sign(&key, format!("{t}.{body}").as_bytes())
            .as_ref()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(mac, expected);
    }
    thresholds.sort_unstable();
    assert_eq!(thresholds, [50, 100]);
}

#[tokio::test]
async fn an_adaptive_provider_queues_then_sheds_instead_of_piling_on() {
    let narrow = "{ name: narrow, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-chunk-delay-ms: '200', x-mock-tokens: '20' }, adaptive: { initial: 1, max: 1, max_queue: 1, queue_timeout: 30s } }";
    let env = start_with(
        &[narrow],
        "",
        "models:\n  - { name: narrow-model, targets: [{ provider: narrow, model: gpt-4o-mini }] }\n",
    )
    .await;
    let stream = json!({"model": "narrow-model", "messages": user("hi"), "stream": true});
    let first = env.post("/chat/completions", &stream).send().await.unwrap();
    assert_eq!(first.status(), 200);
    let mut chunks = first.bytes_stream();
    chunks.next().await.unwrap().unwrap();
    // Two more calls: one waits in the queue (of one), the other is shed at once.
    let call = || {
        env.post(
            "/chat/completions",
            &json!({"model": "narrow-model", "messages": user("hi")}),
        )
        .send()
    };
    let (a, b) = (tokio::spawn(call()), tokio::spawn(call()));
    for _ in 0..500 {
        if a.is_finished() || b.is_finished() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
    let (first_done, other) = if a.is_finished() { (a, b) } else { (b, a) };
    let resp = first_done.await.unwrap().unwrap();
    assert_eq!(resp.status(), 503, "shed while the other waits");
    assert_eq!(resp.headers()["retry-after"], "1");
    let body: serde_json::Value = resp.json().await.unwrap();
    assert_eq!(body["error"]["code"], "upstream_overloaded");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("provider narrow is overloaded: its queue is full"));
    // The stream ends: the waiting call gets the slot.
    drop(chunks);
    let resp = other.await.unwrap().unwrap();
    assert_eq!(resp.status(), 200);
}
