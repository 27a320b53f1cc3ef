//! Failover: a failing target hands the call to the next tier, then to fallback models, within
//! the model's attempts; a retried call is charged every attempt that reached a model.

use serde_json::json;

use crate::harness::{start_with, user};

const BROKEN: &str = "{ name: broken, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '500' } }";
const DOWN: &str = "{ name: down, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '503' } }";
const DEAD: &str = "{ name: dead, kind: openai_compatible, base_url: 'http://127.0.0.1:9/v1' }";
const STALLED: &str = "{ name: stalled, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-latency-ms: '5000' }, timeouts: { first_byte: 200ms } }";

#[tokio::test]
async fn a_failing_tier_hands_the_call_to_the_next() {
    let env = start_with(
        &[BROKEN, DEAD],
        "",
        "models:\n  - { name: tiered, targets: [{ provider: broken, model: m }, { provider: dead, model: m, tier: 1 }, { provider: p-anthropic, model: claude-haiku-4-5, tier: 2 }] }\n",
    )
    .await;
    let (status, h, body) = env
        .chat(json!({"model": "tiered", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["x-gatehouse-attempts"], "3");
    assert_eq!(h["x-gatehouse-provider"], "p-anthropic");
    assert_eq!(
        body["object"], "chat.completion",
        "translated from the third target's dialect"
    );
}

#[tokio::test]
async fn fallback_models_serve_when_every_target_failed_and_attempts_are_bounded() {
    let env = start_with(
        &[BROKEN, DOWN],
        "",
        "models:\n  - { name: flaky, targets: [{ provider: down, model: m }], fallbacks: [gpt] }\n  - { name: hopeless, attempts: 2, targets: [{ provider: broken, model: a }, { provider: down, model: b, tier: 1 }, { provider: p-openai, model: c, tier: 2 }] }\n",
    )
    .await;
    let (status, h, body) = env
        .chat(json!({"model": "flaky", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["x-gatehouse-attempts"], "2");
    assert_eq!(h["x-gatehouse-provider"], "p-openai");
    let before = env.mock_stats().await["requests"].as_u64().unwrap();
    let (status, h, body) = env
        .chat(json!({"model": "hopeless", "messages": user("hi")}))
        .await;
    assert_eq!(
        status, 503,
        "the second (last allowed) attempt's answer: {body}"
    );
    assert_eq!(h["x-gatehouse-attempts"], "2");
    assert_eq!(
        env.mock_stats().await["requests"].as_u64().unwrap(),
        before + 2
    );
}

#[tokio::test]
async fn client_errors_are_not_retried() {
    let refusing = "{ name: refusing, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '400' } }";
    let env = start_with(
        &[refusing],
        "",
        "models:\n  - { name: strict, targets: [{ provider: refusing, model: m }, { provider: p-openai, model: m, tier: 1 }] }\n",
    )
    .await;
    let before = env.mock_stats().await["requests"].as_u64().unwrap();
    let (status, h, body) = env
        .chat(json!({"model": "strict", "messages": user("hi")}))
        .await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(h["x-gatehouse-attempts"], "1");
    assert_eq!(
        env.mock_stats().await["requests"].as_u64().unwrap(),
        before + 1
    );
}

#[tokio::test]
async fn a_retried_call_is_charged_every_attempt_that_reached_a_model() {
    let env = start_with(
        &[STALLED],
        "",
        "models:\n  - { name: slowfirst, targets: [{ provider: stalled, model: gpt-4o-mini }, { provider: p-openai, model: gpt-4o-mini, tier: 1 }] }\npolicies:\n  - { name: t, applies_to: { model: slowfirst }, limits: [{ tokens: 10000, per: 1000h }] }\n",
    )
    .await;
    let ask = json!({"model": "slowfirst", "messages": user("hi"), "max_tokens": 50});
    let (status, h, body) = env.chat(ask.clone()).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["x-gatehouse-attempts"], "2");
    let left: u64 = h["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    let prompt = 10000 - 50 - left;
    let usage = &body["usage"];
    let charged = usage["total_tokens"].as_u64().unwrap() + prompt;
    // The next call sees both attempts charged: the stalled one's prompt and the answer's usage.
    let (_, h, _) = env.chat(ask).await;
    let left2: u64 = h["x-ratelimit-remaining-tokens"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(left2, 10000 - charged - prompt - 50);
}

#[tokio::test]
async fn failing_targets_are_ejected_and_rate_limited_ones_cool_down() {
    let limited = "{ name: limited, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: '429', x-mock-retry-after: '7' } }";
    let env = start_with(
        &[BROKEN, limited],
        "",
        "models:\n  - { name: breaker, targets: [{ provider: broken, model: m }, { provider: p-openai, model: m, tier: 1 }] }\n  - { name: cooler, targets: [{ provider: limited, model: m }, { provider: p-openai, model: m, tier: 1 }] }\n",
    )
    .await;
    let ask = |model: &str| json!({"model": model, "messages": user("hi")});
    for i in 0..5 {
        let (status, h, _) = env.chat(ask("breaker")).await;
        assert_eq!(status, 200);
        assert_eq!(
            h["x-gatehouse-attempts"], "2",
            "call {i} tried the broken target first"
        );
    }
    // Five failures in a row: the broken target is ejected and calls go straight to the next.
    let (status, h, _) = env.chat(ask("breaker")).await;
    assert_eq!(status, 200);
    assert_eq!(h["x-gatehouse-attempts"], "1");
    // A 429 cools its target down for its retry-after at once.
    let (_, h, _) = env.chat(ask("cooler")).await;
    assert_eq!(h["x-gatehouse-attempts"], "2");
    let (_, h, _) = env.chat(ask("cooler")).await;
    assert_eq!(h["x-gatehouse-attempts"], "1");
}

async fn served_model(env: &crate::harness::Env, model: &str, session: Option<&str>) -> String {
    let mut req = env.post(
        "/chat/completions",
        &json!({"model": model, "messages": user("hi")}),
    );
    if let Some(s) = session {
        req = req.header("x-session-id", s);
    }
    let resp = req.send().await.unwrap();
    assert_eq!(resp.status(), 200);
    resp.headers()["x-gatehouse-model"]
        .to_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn strategies_order_a_tier() {
    let env = start_with(
        &[],
        "",
        "models:\n  - { name: rr, strategy: round_robin, targets: [{ provider: p-openai, model: gpt-4o }, { provider: p-openai, model: gpt-4o-mini }] }\n  - { name: cheap, strategy: lowest_cost, targets: [{ provider: p-openai, model: gpt-4o }, { provider: p-openai, model: gpt-4o-mini }] }\n  - { name: listed, strategy: ordered, targets: [{ provider: p-openai, model: gpt-4.1 }, { provider: p-openai, model: gpt-4o-mini }] }\n  - { name: sticky, affinity_header: x-session-id, targets: [{ provider: p-openai, model: gpt-4o }, { provider: p-openai, model: gpt-4o-mini }] }\n",
    )
    .await;
    let a = served_model(&env, "rr", None).await;
    let b = served_model(&env, "rr", None).await;
    let c = served_model(&env, "rr", None).await;
    assert_ne!(a, b, "round robin alternates");
    assert_eq!(a, c);
    for _ in 0..5 {
        assert_eq!(served_model(&env, "cheap", None).await, "gpt-4o-mini");
        assert_eq!(served_model(&env, "listed", None).await, "gpt-4.1");
    }
    // A session stays on its target; sessions spread over the targets.
    let mine = served_model(&env, "sticky", Some("conversation-1")).await;
    for _ in 0..10 {
        assert_eq!(
            served_model(&env, "sticky", Some("conversation-1")).await,
            mine
        );
    }
    let mut seen = std::collections::HashSet::new();
    for i in 0..40 {
        seen.insert(served_model(&env, "sticky", Some(&format!("s{i}"))).await);
    }
    assert_eq!(seen.len(), 2, "{seen:?}");
}

#[tokio::test]
async fn a_prompt_too_long_for_a_target_goes_where_it_fits() {
    let env = start_with(
        &[],
        "",
        "models:\n  - { name: small-first, targets: [{ provider: p-openai, model: gpt-3.5-turbo }, { provider: p-openai, model: gpt-4o-mini, tier: 1 }] }\n",
    )
    .await;
    let short = env
        .chat(json!({"model": "small-first", "messages": user("hi")}))
        .await;
    assert_eq!(short.1["x-gatehouse-model"], "gpt-3.5-turbo");
    // gpt-3.5-turbo holds 16,385 tokens; this prompt is about 20,000.
    let long = "lorem ipsum ".repeat(10_000);
    let (status, h, body) = env
        .chat(json!({"model": "small-first", "messages": user(&long)}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["x-gatehouse-model"], "gpt-4o-mini");
    assert_eq!(h["x-gatehouse-attempts"], "1", "skipped before sending");
}

#[tokio::test]
async fn refusals_move_on_to_a_larger_window_or_another_provider() {
    let filtering = "{ name: filtering, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: content_filter } }";
    let short = "{ name: short, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: context_length_exceeded } }";
    let env = start_with(
        &[filtering, short],
        "",
        "models:\n  - { name: careful, strategy: ordered, targets: [{ provider: filtering, model: gpt-4o-mini }, { provider: filtering, model: gpt-4o }, { provider: p-anthropic, model: claude-haiku-4-5 }] }\n  - { name: roomy, strategy: ordered, targets: [{ provider: short, model: gpt-3.5-turbo }, { provider: p-openai, model: gpt-3.5-turbo }, { provider: p-openai, model: gpt-4o-mini }] }\n",
    )
    .await;
    // A content filter's refusal skips the same provider's other targets.
    let (status, h, body) = env
        .chat(json!({"model": "careful", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["x-gatehouse-provider"], "p-anthropic");
    assert_eq!(h["x-gatehouse-attempts"], "2");
    // A context-length refusal skips targets whose window is not larger.
    let (status, h, body) = env
        .chat(json!({"model": "roomy", "messages": user("hi")}))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(h["x-gatehouse-model"], "gpt-4o-mini");
    assert_eq!(h["x-gatehouse-attempts"], "2");
}

#[tokio::test]
async fn weights_are_honoured_within_statistical_bounds() {
    let env = start_with(
        &[],
        "",
        "models:\n  - { name: canary, targets: [{ provider: p-openai, model: gpt-4o, weight: 9 }, { provider: p-openai, model: gpt-4o-mini, weight: 1 }] }\n",
    )
    .await;
    let mut mini = 0;
    let n = 600;
    for _ in 0..n {
        if served_model(&env, "canary", None).await == "gpt-4o-mini" {
            mini += 1;
        }
    }
    // Binomial(600, 0.1): mean 60, sd ≈ 7.3; 5 sd either side.
    assert!(
        (24..=96).contains(&mini),
        "{mini} of {n} went to the 10 % target"
    );
}

#[tokio::test]
async fn lowest_latency_moves_traffic_to_the_fast_target() {
    let slow = "{ name: slow-lat, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-latency-ms: '60' } }";
    let env = start_with(
        &[slow],
        "",
        "models:\n  - { name: quick, strategy: lowest_latency, targets: [{ provider: slow-lat, model: gpt-4o }, { provider: p-openai, model: gpt-4o-mini }] }\n",
    )
    .await;
    // Both targets are measured within the first calls (no data counts as fastest)…
    for _ in 0..10 {
        served_model(&env, "quick", None).await;
    }
    // …after which the fast one takes (nearly) everything.
    let mut fast = 0;
    for _ in 0..40 {
        if served_model(&env, "quick", None).await == "gpt-4o-mini" {
            fast += 1;
        }
    }
    assert!(fast >= 38, "{fast} of 40 went to the fast target");
}

#[tokio::test]
async fn requests_go_to_targets_that_can_serve_them_and_retries_follow_the_model() {
    let env = start_with(
        &[BROKEN],
        "",
        // chatgpt-4o-latest has no tools in the catalog; gpt-4o-mini has.
        "models:\n  - { name: capable, strategy: ordered, targets: [{ provider: p-openai, model: chatgpt-4o-latest }, { provider: p-openai, model: gpt-4o-mini }] }\n  - { name: no-5xx-retry, retry_on: [connect, timeout], targets: [{ provider: broken, model: a }, { provider: p-openai, model: b, tier: 1 }] }\n",
    )
    .await;
    let plain = env
        .chat(json!({"model": "capable", "messages": user("hi")}))
        .await;
    assert_eq!(plain.1["x-gatehouse-model"], "chatgpt-4o-latest");
    let tools =
        json!([{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]);
    let with_tools = env
        .chat(json!({"model": "capable", "messages": user("hi"), "tools": tools}))
        .await;
    assert_eq!(with_tools.1["x-gatehouse-model"], "gpt-4o-mini");
    let (status, h, _) = env
        .chat(json!({"model": "no-5xx-retry", "messages": user("hi")}))
        .await;
    assert_eq!(status, 500, "5xx is not retried for this model");
    assert_eq!(h["x-gatehouse-attempts"], "1");
}
