use serde_json::{json, Value};

use crate::harness::{start, user, weather_tool};

/// The structure of a JSON value: object keys and value kinds, recursively (arrays by first item).
fn shape(v: &Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(m.iter().map(|(k, v)| (k.clone(), shape(v))).collect()),
        Value::Array(a) => Value::Array(a.first().map(shape).into_iter().collect()),
        Value::String(_) => json!("string"),
        Value::Number(_) => json!("number"),
        Value::Bool(_) => json!("bool"),
        Value::Null => json!("null"),
    }
}

/// Shape of a chat response with the fields one dialect may add removed.
fn core_shape(mut v: Value) -> Value {
    v.as_object_mut().unwrap().remove("system_fingerprint");
    shape(&v)
}

#[tokio::test]
async fn chat_has_the_same_shape_whichever_dialect_serves_it() {
    let env = start(&[], "").await;
    let mut shapes = Vec::new();
    for model in ["gpt", "claude", "gemini"] {
        let (status, headers, body) = env
            .chat(json!({ "model": model, "messages": [
                { "role": "system", "content": "be brief" }, { "role": "user", "content": "hello" }] }))
            .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert!(headers.contains_key("x-gatehouse-provider"));
        assert_eq!(body["object"], "chat.completion");
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(!body["choices"][0]["message"]["content"]
            .as_str()
            .unwrap()
            .is_empty());
        assert!(body["usage"]["total_tokens"].as_u64().unwrap() > 0);
        shapes.push(core_shape(body));
    }
    assert_eq!(shapes[0], shapes[1], "openai vs anthropic");
    assert_eq!(shapes[0], shapes[2], "openai vs gemini");
}

#[tokio::test]
async fn tool_calls_come_back_as_openai_tool_calls_from_every_dialect() {
    let env = start(&[], "").await;
    for model in ["gpt", "claude", "gemini"] {
        let (status, _, body) = env
            .chat(json!({ "model": model, "messages": user("weather in Paris?"), "tools": weather_tool(),
                          "tool_choice": "required" }))
            .await;
        assert_eq!(status, 200, "{model}: {body}");
        let choice = &body["choices"][0];
        assert_eq!(choice["finish_reason"], "tool_calls", "{model}");
        let call = &choice["message"]["tool_calls"][0];
        assert_eq!(call["type"], "function");
        assert_eq!(call["function"]["name"], "get_weather");
        let args: Value =
            serde_json::from_str(call["function"]["arguments"].as_str().unwrap()).unwrap();
        assert_eq!(args, json!({ "city": "mock", "days": 1 }), "{model}");
        assert!(call["id"].as_str().is_some_and(|id| !id.is_empty()));
    }
}

#[tokio::test]
async fn a_tool_result_turn_gets_a_text_answer_from_every_dialect() {
    let env = start(&[], "").await;
    for model in ["gpt", "claude", "gemini"] {
        let messages = json!([
            { "role": "user", "content": "weather in Paris?" },
            { "role": "assistant", "content": null, "tool_calls": [{ "id": "call_1", "type": "function",
              "function": { "name": "get_weather", "arguments": "{\"city\":\"Paris\"}" } }] },
            { "role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}" }
        ]);
        let (status, _, body) = env
            .chat(json!({ "model": model, "messages": messages, "tools": weather_tool() }))
            .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(
            body["choices"][0]["finish_reason"], "stop",
            "{model}: {body}"
        );
        assert!(body["choices"][0]["message"]["content"].is_string());
    }
}

#[tokio::test]
async fn json_schema_output_is_plain_content_from_every_dialect() {
    let env = start(&[], "").await;
    let format = json!({ "type": "json_schema", "json_schema": { "name": "answer", "schema": {
        "type": "object", "properties": { "ok": { "type": "boolean" } }, "required": ["ok"] } } });
    for model in ["gpt", "claude", "gemini"] {
        let (status, _, body) = env
            .chat(
                json!({ "model": model, "messages": user("is it ok?"), "response_format": format }),
            )
            .await;
        assert_eq!(status, 200, "{model}: {body}");
        assert_eq!(body["choices"][0]["finish_reason"], "stop", "{model}");
        let content: Value =
            serde_json::from_str(body["choices"][0]["message"]["content"].as_str().unwrap())
                .unwrap();
        assert_eq!(content, json!({ "ok": true }), "{model}");
    }
}

#[tokio::test]
async fn reasoning_from_anthropic_thinking_arrives_as_reasoning_content() {
    let env = start(&[], "").await;
    let (status, _, body) = env
        .chat(json!({ "model": "claude", "messages": user("think"), "reasoning_effort": "low", "max_completion_tokens": 4000 }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["reasoning_content"],
        "Let me think about this."
    );
}

#[tokio::test]
async fn provider_slash_model_addresses_any_configured_provider() {
    let env = start(&[], "").await;
    let (status, headers, body) = env
        .chat(json!({ "model": "p-anthropic/claude-haiku-4-5", "messages": user("hi") }))
        .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(headers["x-gatehouse-model"], "claude-haiku-4-5");
    assert_eq!(body["model"], "claude-haiku-4-5");
}

#[tokio::test]
async fn embeddings_work_on_openai_and_gemini_in_floats_and_base64() {
    let env = start(&[], "").await;
    for model in [
        "p-openai/text-embedding-3-small",
        "p-gemini/gemini-embedding-001",
    ] {
        let floats: Value = env
            .post(
                "/embeddings",
                &json!({ "model": model, "input": ["a", "b"], "dimensions": 8 }),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(floats["object"], "list", "{model}: {floats}");
        assert_eq!(floats["data"].as_array().unwrap().len(), 2);
        assert_eq!(floats["data"][1]["index"], 1);
        let v: Vec<f32> = serde_json::from_value(floats["data"][0]["embedding"].clone()).unwrap();
        assert_eq!(v.len(), 8);
        let b64: Value = env
            .post("/embeddings", &json!({ "model": model, "input": "a", "dimensions": 8, "encoding_format": "base64" }))
            .send().await.unwrap().json().await.unwrap();
        let s = b64["data"][0]["embedding"].as_str().unwrap();
        assert_eq!(s.len(), 44, "8 f32 = 32 bytes = 44 base64 chars: {model}");
    }
}

#[tokio::test]
async fn models_lists_logical_names_and_provider_models() {
    let local = ["{ name: local, kind: openai_compatible, base_url: 'http://{mock}/v1', models: [llama-3.1-8b] }"];
    let env = start(&local, "").await;
    let list: Value = env
        .get("/models")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let ids: Vec<&str> = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["id"].as_str().unwrap())
        .collect();
    assert_eq!(&ids[..3], &["claude", "gemini", "gpt"]);
    assert!(ids.contains(&"p-anthropic/claude-sonnet-4-5"));
    assert!(ids.contains(&"p-gemini/gemini-2.5-pro"));
    // An OpenAI-compatible server lists only the models its config names.
    assert!(ids.contains(&"local/llama-3.1-8b"), "{ids:?}");
    assert!(!ids.iter().any(|id| id.starts_with("local/gpt")), "{ids:?}");
    let one = env.get("/models/p-openai/gpt-4o").send().await.unwrap();
    assert_eq!(one.status(), 200);
    assert_eq!(one.json::<Value>().await.unwrap()["id"], "p-openai/gpt-4o");
    let missing = env.get("/models/nope").send().await.unwrap();
    assert_eq!(missing.status(), 404);
    assert_eq!(
        missing.json::<Value>().await.unwrap()["error"]["code"],
        "model_not_found"
    );
}

#[tokio::test]
async fn legacy_completions_pass_through_to_openai() {
    let env = start(&[], "").await;
    let body: Value = env
        .post(
            "/completions",
            &json!({ "model": "gpt", "prompt": "Say", "max_tokens": 3 }),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(body["object"], "text_completion");
    assert_eq!(body["choices"][0]["finish_reason"], "length");
}

#[tokio::test]
async fn the_listener_speaks_http2_as_well_as_http1() {
    let env = start(&[], "").await;
    let h2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = h2
        .post(format!("{}/chat/completions", env.base))
        .bearer_auth(crate::harness::KEY)
        .json(&json!({ "model": "claude", "messages": user("hi"), "stream": true }))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.version(), reqwest::Version::HTTP_2);
    let text = resp.text().await.unwrap();
    assert!(text.trim_end().ends_with("data: [DONE]"), "{text}");
}
