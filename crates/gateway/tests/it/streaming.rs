use std::time::Duration;

use futures_util::StreamExt;
use serde_json::{json, Value};

use crate::harness::{data_lines, start, user, weather_tool};

fn chunks(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .filter(|l| *l != "[DONE]")
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

#[tokio::test]
async fn streams_from_every_dialect_end_with_usage_then_done() {
    let env = start(&[], "").await;
    for model in ["gpt", "claude", "gemini"] {
        let lines = env
            .stream(
                json!({ "model": model, "messages": user("hello"), "stream": true,
                            "stream_options": { "include_usage": true } }),
            )
            .await;
        assert_eq!(lines.last().unwrap(), "[DONE]", "{model}");
        let chunks = chunks(&lines);
        assert!(
            chunks
                .iter()
                .all(|c| c["object"] == "chat.completion.chunk"),
            "{model}"
        );
        assert_eq!(
            chunks[0]["choices"][0]["delta"]["role"], "assistant",
            "{model}"
        );
        let text: String = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
            .collect();
        assert_eq!(text.split(' ').count(), 16, "{model}: {text}");
        let finish: Vec<&Value> = chunks
            .iter()
            .map(|c| &c["choices"][0]["finish_reason"])
            .filter(|f| !f.is_null())
            .collect();
        assert_eq!(finish, vec![&json!("stop")], "{model}");
        let last = chunks.last().unwrap();
        assert_eq!(last["choices"], json!([]), "{model}");
        assert_eq!(last["usage"]["completion_tokens"], 16, "{model}");
    }
}

#[tokio::test]
async fn tool_arguments_survive_streaming_from_every_dialect() {
    let env = start(&[], "").await;
    for (model, min_pieces) in [("gpt", 2), ("claude", 2), ("gemini", 1)] {
        let lines = env
            .stream(json!({ "model": model, "messages": user("weather?"), "tools": weather_tool(), "stream": true }))
            .await;
        let chunks = chunks(&lines);
        let deltas: Vec<&Value> = chunks
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["tool_calls"].as_array())
            .flatten()
            .collect();
        assert_eq!(deltas[0]["function"]["name"], "get_weather", "{model}");
        assert!(deltas[0]["id"].is_string(), "{model}");
        let args: String = deltas
            .iter()
            .filter_map(|d| d["function"]["arguments"].as_str())
            .collect();
        let pieces = deltas
            .iter()
            .filter(|d| {
                d["function"]["arguments"]
                    .as_str()
                    .is_some_and(|a| !a.is_empty())
            })
            .count();
        assert!(pieces >= min_pieces, "{model}: {pieces} argument pieces");
        assert_eq!(
            serde_json::from_str::<Value>(&args).unwrap(),
            json!({ "city": "mock", "days": 1 }),
            "{model}"
        );
        let finish = chunks
            .iter()
            .find_map(|c| c["choices"][0]["finish_reason"].as_str());
        assert_eq!(finish, Some("tool_calls"), "{model}");
    }
}

#[tokio::test]
async fn a_stream_cut_upstream_ends_with_an_error_event_in_every_dialect() {
    let cut = [
        "{ name: ocut, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
        "{ name: acut, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
        "{ name: gcut, kind: gemini, base_url: 'http://{mock}/v1beta', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
    ];
    let env = start(&cut, "").await;
    for model in ["ocut/m", "acut/m", "gcut/m"] {
        let lines = env
            .stream(json!({ "model": model, "messages": user("hello"), "stream": true }))
            .await;
        let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
        assert!(
            last["error"]["message"].as_str().is_some(),
            "{model}: {last}"
        );
        assert!(!lines.iter().any(|l| l == "[DONE]"), "{model}");
    }
}

#[tokio::test]
async fn a_stalled_stream_is_cut_by_the_idle_timeout() {
    let stall = ["{ name: stall, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-chunk-delay-ms: '5000' }, timeouts: { idle: 300ms } }"];
    let env = start(&stall, "").await;
    // 16 chunks 5 s apart; only the idle timeout can end this stream with upstream_timeout.
    let lines = env
        .stream(json!({ "model": "stall/m", "messages": user("hello"), "stream": true }))
        .await;
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{last}");
}

#[tokio::test]
async fn a_client_that_disconnects_cancels_the_upstream_stream() {
    let slow = ["{ name: slow, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-chunk-delay-ms: '100' } }"];
    let env = start(&slow, "").await;
    let resp = env
        .post(
            "/chat/completions",
            &json!({ "model": "slow/m", "messages": user("hello"), "stream": true }),
        )
        .send()
        .await
        .unwrap();
    let mut body = resp.bytes_stream();
    let first = body.next().await.unwrap().unwrap();
    assert!(!data_lines(std::str::from_utf8(&first).unwrap()).is_empty());
    drop(body);
    // The mock's stream would take ~2 s to finish; it must instead see the abort (polled, not timed).
    for _ in 0..250 {
        let stats = env.mock_stats().await;
        if stats["streams_aborted"] == 1 {
            assert_eq!(stats["streams_finished"], 0);
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "upstream stream was not cancelled: {}",
        env.mock_stats().await
    );
}

#[tokio::test]
async fn a_long_stream_is_cut_by_the_total_timeout() {
    // 16 chunks 100 ms apart would take 1.6 s; the total budget is 500 ms.
    let long = ["{ name: long, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-chunk-delay-ms: '100' }, timeouts: { total: 500ms } }"];
    let env = start(&long, "").await;
    let lines = env
        .stream(json!({ "model": "long/m", "messages": user("hello"), "stream": true }))
        .await;
    let last: Value = serde_json::from_str(lines.last().unwrap()).unwrap();
    assert_eq!(last["error"]["code"], "upstream_timeout", "{last}");
    assert!(
        last["error"]["message"]
            .as_str()
            .unwrap()
            .contains("timeouts.total"),
        "{last}"
    );
    // Pass-through chunks before the cut arrived intact, each one valid JSON.
    assert!(lines.len() > 2);
}

#[tokio::test]
async fn a_client_that_gives_up_on_a_non_streamed_call_cancels_the_upstream_request() {
    let slow = ["{ name: slow, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-latency-ms: '3000' } }"];
    let env = start(&slow, "").await;
    let impatient = reqwest::Client::builder()
        .timeout(Duration::from_millis(300))
        .build()
        .unwrap();
    let res = impatient
        .post(format!("{}/chat/completions", env.base))
        .bearer_auth(crate::harness::KEY)
        .json(&json!({ "model": "slow/m", "messages": user("hello") }))
        .send()
        .await;
    assert!(res.is_err(), "the client timed out");
    for _ in 0..100 {
        if env.mock_stats().await["requests_cancelled"] == 1 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!(
        "the upstream request was not cancelled: {}",
        env.mock_stats().await
    );
}
