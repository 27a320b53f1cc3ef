//! The OpenAI Responses ingress (`/v1/responses`, stateless): passed through to OpenAI's own
//! Responses API, translated through chat for every other upstream, with the same answers,
//! stream events, tool calls and structured output either way.

use serde_json::{json, Value};

use crate::harness::{start, Env};

/// `gpt` is passed through to the mock's Responses API; the others are translated.
const MODELS: [&str; 4] = ["gpt", "claude", "gemini", "compat/gpt-4o-mini"];
const COMPAT: &str =
    "{ name: compat, kind: openai_compatible, base_url: 'http://{mock}/v1', api_keys: [upstream-key] }";

fn weather() -> Value {
    json!([{ "type": "function", "name": "get_weather", "description": "Weather in a city",
             "parameters": { "type": "object", "properties": { "city": { "type": "string" } },
                             "required": ["city"] } }])
}

async fn create(env: &Env, body: Value) -> (u16, Value) {
    let resp = env.post("/responses", &body).send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// A streamed call's events, in order.
async fn events(env: &Env, body: Value) -> Vec<Value> {
    let resp = env.post("/responses", &body).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    text.split("\n\n")
        .filter(|e| !e.trim().is_empty())
        .map(|e| {
            let name = e.lines().find_map(|l| l.strip_prefix("event: "));
            let data: Value =
                serde_json::from_str(e.lines().find_map(|l| l.strip_prefix("data: ")).unwrap())
                    .unwrap();
            assert_eq!(name, data["type"].as_str(), "the event name is its type");
            data
        })
        .collect()
}

fn output_text(r: &Value) -> String {
    r["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|i| i["type"] == "message")
        .flat_map(|i| i["content"].as_array().unwrap().iter())
        .map(|c| c["text"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn every_upstream_answers_a_response_object() {
    let env = start(&[COMPAT], "").await;
    for model in MODELS {
        let (status, body) = create(
            &env,
            json!({ "model": model, "instructions": "Be brief.", "input": "hello" }),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["object"], "response", "{model}");
        assert_eq!(body["status"], "completed", "{model}: {body}");
        assert!(body["id"].as_str().unwrap().starts_with("resp_"), "{model}");
        assert!(!output_text(&body).is_empty(), "{model}: {body}");
        assert!(
            body["usage"]["input_tokens"].as_u64().unwrap() > 0,
            "{model}: {body}"
        );
        assert!(
            body["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{model}"
        );
        assert_eq!(
            body["instructions"], "Be brief.",
            "{model}: the request is echoed"
        );
    }
}

#[tokio::test]
async fn streams_are_typed_events_from_created_to_completed() {
    let env = start(&[COMPAT], "").await;
    for model in MODELS {
        let evs = events(
            &env,
            json!({ "model": model, "input": [{ "role": "user", "content": "hello" }], "stream": true }),
        )
        .await;
        let kinds: Vec<&str> = evs.iter().map(|e| e["type"].as_str().unwrap()).collect();
        assert_eq!(kinds[0], "response.created", "{model}: {kinds:?}");
        assert_eq!(
            kinds.last(),
            Some(&"response.completed"),
            "{model}: {kinds:?}"
        );
        for k in [
            "response.output_item.added",
            "response.content_part.added",
            "response.output_text.delta",
            "response.output_text.done",
            "response.output_item.done",
        ] {
            assert!(kinds.contains(&k), "{model}: no {k} in {kinds:?}");
        }
        let seqs: Vec<u64> = evs
            .iter()
            .map(|e| e["sequence_number"].as_u64().unwrap())
            .collect();
        assert!(
            seqs.windows(2).all(|w| w[1] == w[0] + 1),
            "{model}: {seqs:?}"
        );
        let deltas: String = evs
            .iter()
            .filter(|e| e["type"] == "response.output_text.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        let done = &evs.last().unwrap()["response"];
        assert_eq!(output_text(done), deltas, "{model}");
        assert!(
            done["usage"]["output_tokens"].as_u64().unwrap() > 0,
            "{model}"
        );
    }
}

#[tokio::test]
async fn function_calls_stream_their_arguments_and_take_their_outputs() {
    let env = start(&[COMPAT], "").await;
    for model in MODELS {
        let evs = events(
            &env,
            json!({ "model": model, "input": "weather in Paris?", "tools": weather(),
                    "tool_choice": "required", "stream": true }),
        )
        .await;
        let args: String = evs
            .iter()
            .filter(|e| e["type"] == "response.function_call_arguments.delta")
            .map(|e| e["delta"].as_str().unwrap())
            .collect();
        assert!(
            serde_json::from_str::<Value>(&args).unwrap().is_object(),
            "{model}: {args}"
        );
        let done = &evs.last().unwrap()["response"];
        let call = done["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|i| i["type"] == "function_call")
            .unwrap_or_else(|| panic!("{model}: {done}"))
            .clone();
        assert_eq!(call["name"], "get_weather");
        assert_eq!(call["arguments"].as_str().unwrap(), args, "{model}");
        // The output goes back with the call; the model answers in text.
        let (status, body) = create(
            &env,
            json!({ "model": model, "tools": weather(), "input": [
                { "role": "user", "content": "weather in Paris?" },
                { "type": "function_call", "call_id": call["call_id"], "name": "get_weather",
                  "arguments": call["arguments"] },
                { "type": "function_call_output", "call_id": call["call_id"], "output": "18C, sunny" }] }),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert!(!output_text(&body).is_empty(), "{model}: {body}");
    }
}

#[tokio::test]
async fn json_schema_output_is_json_text_through_translation() {
    let env = start(&[COMPAT], "").await;
    for model in ["claude", "gemini", "compat/gpt-4o-mini"] {
        let (status, body) = create(
            &env,
            json!({ "model": model, "input": "a city",
                    "text": { "format": { "type": "json_schema", "name": "city",
                        "schema": { "type": "object", "properties": { "name": { "type": "string" } },
                                    "required": ["name"] } } } }),
        )
        .await;
        assert_eq!(status, 200, "{model}: {body}");
        let v: Value = serde_json::from_str(&output_text(&body)).unwrap();
        assert!(v["name"].is_string(), "{model}: {v}");
        assert_eq!(body["text"]["format"]["type"], "json_schema");
    }
}

#[tokio::test]
async fn stored_state_and_hosted_tools_are_refused_by_name_when_translated() {
    let env = start(&[], "").await;
    let cases = [
        (
            json!({ "model": "claude", "input": "x", "previous_response_id": "resp_1" }),
            "previous_response_id",
        ),
        (
            json!({ "model": "gemini", "input": "x", "tools": [{ "type": "web_search_preview" }] }),
            "web_search_preview",
        ),
        (
            json!({ "model": "claude", "input": [{ "type": "item_reference", "id": "msg_1" }] }),
            "item_reference",
        ),
    ];
    for (body, feature) in cases {
        let (status, err) = create(&env, body).await;
        assert_eq!(status, 400, "{err}");
        let message = err["error"]["message"].as_str().unwrap();
        assert!(message.contains(feature), "{message}");
        assert_eq!(err["error"]["code"], "unsupported_parameter");
    }
    // Passed through to OpenAI, the same fields are OpenAI's to judge.
    let (status, _) = create(&env, json!({ "model": "nope", "input": "x" })).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event() {
    let env = start(
        &[
            "{ name: ocut, kind: openai, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
            "{ name: acut, kind: anthropic, base_url: 'http://{mock}/v1', api_keys: [upstream-key], headers: { x-mock-fault: drop } }",
        ],
        "",
    )
    .await;
    for model in ["ocut/gpt-4o-mini", "acut/claude-haiku-4-5"] {
        let evs = events(
            &env,
            json!({ "model": model, "input": "hello", "stream": true }),
        )
        .await;
        let last = evs.last().unwrap();
        assert_eq!(last["type"], "error", "{model}: {evs:?}");
        assert!(!last["message"].as_str().unwrap().is_empty());
        assert!(!evs.iter().any(|e| e["type"] == "response.completed"));
    }
}
