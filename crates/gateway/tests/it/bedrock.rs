//! Amazon Bedrock through the Converse API, against the mock: SigV4-signed (or Bedrock API key)
//! calls, answers, binary event streams, tools and structured output, whichever client dialect.

use serde_json::{json, Value};

use crate::harness::{start, user, weather_tool, KEY};

const BEDROCK: &str = "{ name: br, kind: bedrock, region: us-east-1, base_url: 'http://{mock}', aws_access_key_id: upstream-key, aws_secret_access_key: not-checked-by-the-mock }";
const MODEL: &str = "br/anthropic.claude-3-5-sonnet-20240620-v1:0";

#[tokio::test]
async fn signed_calls_answer_in_openais_shape() {
    let env = start(&[BEDROCK], "").await;
    let (status, headers, body) = env
        .chat(json!({ "model": MODEL, "messages": [
            { "role": "system", "content": "be brief" }, { "role": "user", "content": "hello" }] }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-gatehouse-provider"], "br");
    assert_eq!(body["object"], "chat.completion");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert!(!body["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .is_empty());
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    assert!(body["id"].as_str().unwrap().starts_with("chatcmpl-"));
}

#[tokio::test]
async fn a_bedrock_api_key_is_sent_as_a_bearer_token() {
    let env = start(
        &["{ name: brk, kind: bedrock, region: us-east-1, base_url: 'http://{mock}', api_keys: [upstream-key] }"],
        "",
    )
    .await;
    let (status, _, body) = env
        .chat(json!({ "model": "brk/amazon.nova-pro-v1:0", "messages": user("hi") }))
        .await;
    assert_eq!(status, 200, "{body}");
}

#[tokio::test]
async fn the_binary_event_stream_becomes_chunks() {
    let env = start(&[BEDROCK], "").await;
    let chunks = env
        .stream(
            json!({ "model": MODEL, "messages": user("hello"), "stream": true,
                        "stream_options": { "include_usage": true } }),
        )
        .await;
    assert_eq!(chunks.last().unwrap(), "[DONE]");
    let parsed: Vec<Value> = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| serde_json::from_str(c).unwrap())
        .collect();
    let text: String = parsed
        .iter()
        .filter_map(|c| c["choices"][0]["delta"]["content"].as_str())
        .collect();
    assert!(!text.is_empty());
    assert!(parsed
        .iter()
        .any(|c| c["choices"][0]["finish_reason"] == "stop"));
    assert!(
        parsed.last().unwrap()["usage"]["completion_tokens"]
            .as_u64()
            .unwrap()
            > 0
    );
}

#[tokio::test]
async fn tools_stream_their_arguments_and_take_results() {
    let env = start(&[BEDROCK], "").await;
    let chunks = env
        .stream(
            json!({ "model": MODEL, "messages": user("weather in Paris?"), "stream": true,
                        "tools": weather_tool(), "tool_choice": "required" }),
        )
        .await;
    let args: String = chunks[..chunks.len() - 1]
        .iter()
        .map(|c| serde_json::from_str::<Value>(c).unwrap())
        .filter_map(|c| {
            c["choices"][0]["delta"]["tool_calls"][0]["function"]["arguments"]
                .as_str()
                .map(str::to_owned)
        })
        .collect();
    let parsed: Value = serde_json::from_str(&args).unwrap();
    assert!(parsed["city"].is_string(), "{args}");
    let (status, _, body) = env
        .chat(
            json!({ "model": MODEL, "tools": weather_tool(), "messages": [
            { "role": "user", "content": "weather in Paris?" },
            { "role": "assistant", "tool_calls": [{ "id": "call_1", "type": "function",
                "function": { "name": "get_weather", "arguments": args } }] },
            { "role": "tool", "tool_call_id": "call_1", "content": "18C" }] }),
        )
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop", "{body}");
}

#[tokio::test]
async fn json_schema_output_comes_back_as_content() {
    let env = start(&[BEDROCK], "").await;
    let (status, _, body) = env
        .chat(json!({ "model": MODEL, "messages": user("a city"),
            "response_format": { "type": "json_schema", "json_schema": { "name": "city",
                "schema": { "type": "object", "properties": { "name": { "type": "string" } }, "required": ["name"] } } } }))
        .await;
    assert_eq!(status, 200, "{body}");
    let content: Value =
        serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap()).unwrap();
    assert!(content["name"].is_string());
}

#[tokio::test]
async fn anthropic_and_responses_clients_reach_bedrock() {
    let env = start(&[BEDROCK], "").await;
    let resp = env
        .http
        .post(format!("{}/messages", env.base))
        .header("x-api-key", KEY)
        .json(&json!({ "model": MODEL, "max_tokens": 100, "stream": true,
                       "messages": [{ "role": "user", "content": "hi" }] }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    let (status, body) = {
        let r = env
            .post("/responses", &json!({ "model": MODEL, "input": "hi" }))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.json::<Value>().await.unwrap())
    };
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["status"], "completed");
}

#[tokio::test]
async fn upstream_errors_and_cut_streams_are_named() {
    let env = start(
        &[
            "{ name: brl, kind: bedrock, region: us-east-1, base_url: 'http://{mock}', aws_access_key_id: upstream-key, aws_secret_access_key: x, headers: { x-mock-fault: '429' } }",
            "{ name: brc, kind: bedrock, region: us-east-1, base_url: 'http://{mock}', aws_access_key_id: upstream-key, aws_secret_access_key: x, headers: { x-mock-fault: drop } }",
            "{ name: brw, kind: bedrock, region: us-east-1, base_url: 'http://{mock}', aws_access_key_id: wrong-key, aws_secret_access_key: x }",
        ],
        "",
    )
    .await;
    let (status, _, body) = env
        .chat(json!({ "model": "brl/m", "messages": user("hi") }))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["type"], "rate_limit_error");
    let (status, _, body) = env
        .chat(json!({ "model": "brw/m", "messages": user("hi") }))
        .await;
    assert_eq!(status, 403, "{body}");
    assert!(body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("security token"));
    let chunks = env
        .stream(json!({ "model": "brc/m", "messages": user("hello"), "stream": true }))
        .await;
    let last: Value = serde_json::from_str(chunks.last().unwrap()).unwrap();
    assert!(last["error"]["message"].as_str().is_some(), "{chunks:?}");
}
