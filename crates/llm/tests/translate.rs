//! Every translation direction over fixtures shaped by the official specs, as snapshots.
//!
//! `fixtures/<source dialect>/<case>` → `snapshots/translate__<case>.<target>.snap`. The same
//! snapshots are validated against the providers' published schemas by the contract tests in
//! `tests/e2e/test_contracts.py`, so a snapshot that drifts from the spec fails there too.

#![expect(
    clippy::unwrap_used,
    reason = "test code: a failed unwrap is a failed test"
)]

use gatehouse_llm::convert::openai::{from_anthropic, from_gemini};
use gatehouse_llm::convert::{anthropic, gemini, ResponseContext, StreamOut};
use gatehouse_llm::sse;
use gatehouse_llm::types::{anthropic as a, gemini as g, openai as o};
use insta::assert_json_snapshot;
use serde_json::Value;

fn fixture(path: &str) -> String {
    std::fs::read_to_string(format!(
        "{}/tests/fixtures/{path}",
        env!("CARGO_MANIFEST_DIR")
    ))
    .unwrap()
}

fn ctx(json_tool: Option<&str>) -> ResponseContext {
    ResponseContext {
        model: "served-model".into(),
        created: 1_700_000_000,
        json_tool: json_tool.map(str::to_owned),
        include_usage: true,
        prompt_tokens: None,
    }
}

fn values(out: Vec<StreamOut>) -> Vec<Value> {
    out.into_iter()
        .map(|o| match o {
            StreamOut::Chunk(c) => serde_json::to_value(c).unwrap(),
            StreamOut::Error(e) => serde_json::to_value(e).unwrap(),
        })
        .collect()
}

/// Decodes an SSE fixture and runs each event through a stream state, as the gateway does.
fn run_stream<E: serde::de::DeserializeOwned>(
    path: &str,
    mut on: impl FnMut(E) -> Vec<StreamOut>,
) -> Vec<Value> {
    let mut d = sse::Decoder::new();
    let mut events = d.feed(fixture(path).as_bytes()).unwrap();
    events.extend(d.finish());
    values(
        events
            .into_iter()
            .flat_map(|ev| on(serde_json::from_str(&ev.data).unwrap()))
            .collect(),
    )
}

fn openai_request(path: &str) -> o::ChatRequest {
    serde_json::from_str(&fixture(path)).unwrap()
}

#[test]
fn chat_everything_to_anthropic() {
    let (req, notes) = anthropic::from_openai::request(
        openai_request("openai/chat_everything.json"),
        "claude-sonnet-4-5",
        1024,
    )
    .unwrap();
    assert_eq!(notes.dropped, vec!["seed".to_owned()]);
    assert_json_snapshot!("chat_everything.anthropic", req);
}

#[test]
fn chat_everything_to_gemini() {
    let (req, notes) =
        gemini::from_openai::request(openai_request("openai/chat_everything.json")).unwrap();
    assert_eq!(
        notes.dropped,
        vec!["user".to_owned(), "parallel_tool_calls".to_owned()]
    );
    assert_json_snapshot!("chat_everything.gemini", req);
}

#[test]
fn json_schema_to_anthropic_is_a_forced_tool() {
    let mut req = openai_request("openai/chat_json_schema.json");
    req.reasoning_effort = None;
    let (req, notes) = anthropic::from_openai::request(req, "claude-haiku-4-5", 1024).unwrap();
    assert_eq!(notes.json_tool.as_deref(), Some("json_response"));
    assert_json_snapshot!("chat_json_schema.anthropic", req);
}

#[test]
fn json_schema_with_thinking_is_refused_for_anthropic() {
    // Anthropic rejects thinking with a forced tool, the way response_format is expressed.
    let err =
        anthropic::from_openai::request(openai_request("openai/chat_json_schema.json"), "m", 1024)
            .unwrap_err();
    assert_eq!(
        err.to_string(),
        "response_format together with reasoning_effort or thinking is not supported by Anthropic models"
    );
}

#[test]
fn json_schema_to_gemini_is_a_response_schema() {
    let (req, _) =
        gemini::from_openai::request(openai_request("openai/chat_json_schema.json")).unwrap();
    assert_json_snapshot!("chat_json_schema.gemini", req);
}

#[test]
fn anthropic_responses_to_openai() {
    for case in ["response_text", "response_tool_use"] {
        let resp: a::Response =
            serde_json::from_str(&fixture(&format!("anthropic/{case}.json"))).unwrap();
        assert_json_snapshot!(
            format!("{case}.openai"),
            from_anthropic::response(resp, &ctx(None))
        );
    }
    let resp: a::Response =
        serde_json::from_str(&fixture("anthropic/response_json_tool.json")).unwrap();
    let out = from_anthropic::response(resp, &ctx(Some("json_response")));
    assert_eq!(
        out.choices[0].message.content.as_deref(),
        Some("{\"city\":\"Lyon\"}")
    );
    assert_eq!(out.choices[0].finish_reason.as_deref(), Some("stop"));
    assert!(out.choices[0].message.tool_calls.is_none());
}

#[test]
fn gemini_responses_to_openai() {
    for case in [
        "response_text",
        "response_function_call",
        "response_logprobs",
    ] {
        let resp: g::Response =
            serde_json::from_str(&fixture(&format!("gemini/{case}.json"))).unwrap();
        assert_json_snapshot!(
            format!("gemini_{case}.openai"),
            from_gemini::response(resp, &ctx(None))
        );
    }
}

#[test]
fn anthropic_streams_to_openai() {
    for case in ["stream_tool_use", "stream_error", "stream_truncated"] {
        let mut st = from_anthropic::Stream::new(ctx(None));
        let mut all =
            run_stream::<a::StreamEvent>(&format!("anthropic/{case}.sse"), |e| st.on_event(e));
        all.extend(values(st.finish()));
        assert_json_snapshot!(format!("anthropic_{case}.openai"), all);
    }
}

#[test]
fn anthropic_tool_arguments_reassemble_exactly() {
    let mut st = from_anthropic::Stream::new(ctx(None));
    let chunks = run_stream::<a::StreamEvent>("anthropic/stream_tool_use.sse", |e| st.on_event(e));
    let args: String = chunks
        .iter()
        .filter_map(|c| {
            c.pointer("/choices/0/delta/tool_calls/0/function/arguments")
                .and_then(Value::as_str)
        })
        .collect();
    assert_eq!(args, "{\"location\": \"San Francisco, CA\"}");
}

#[test]
fn gemini_streams_to_openai() {
    for case in ["stream_text", "stream_function_call", "stream_truncated"] {
        let mut st = from_gemini::Stream::new(ctx(None));
        let mut all = run_stream::<g::Response>(&format!("gemini/{case}.sse"), |e| st.on_event(e));
        all.extend(values(st.finish()));
        assert_json_snapshot!(format!("gemini_{case}.openai"), all);
    }
}

#[test]
fn errors_to_openai() {
    let anth =
        from_anthropic::error(529, fixture("anthropic/error_overloaded.json").as_bytes()).unwrap();
    assert_json_snapshot!("anthropic_error_overloaded.openai", anth);
    let gem = from_gemini::error(429, fixture("gemini/error_quota.json").as_bytes()).unwrap();
    assert_json_snapshot!("gemini_error_quota.openai", gem);
    assert!(from_anthropic::error(502, b"<html>bad gateway</html>").is_none());
    assert!(from_gemini::error(502, b"").is_none());
}

#[test]
fn unsupported_features_are_refused_by_name() {
    let mut req = openai_request("openai/chat_json_schema.json");
    req.n = Some(3);
    let err = anthropic::from_openai::request(req, "m", 1024).unwrap_err();
    assert_eq!(
        err.to_string(),
        "n > 1 (several choices) is not supported by Anthropic models"
    );
    let mut req = openai_request("openai/chat_json_schema.json");
    req.logit_bias = Some(serde_json::from_str("{\"50256\": -100}").unwrap());
    let err = gemini::from_openai::request(req).unwrap_err();
    assert_eq!(
        err.to_string(),
        "logit_bias is not supported by Gemini models"
    );
}

#[test]
fn gemini_without_usage_gets_counted_usage() {
    let mut resp: g::Response =
        serde_json::from_str(&fixture("gemini/response_function_call.json")).unwrap();
    resp.usage_metadata = None;
    let counted = ResponseContext {
        prompt_tokens: Some(40),
        ..ctx(None)
    };
    let usage = from_gemini::response(resp.clone(), &counted).usage.unwrap();
    assert_eq!(usage.prompt_tokens, 40);
    // The two calls' arguments, {"city":"Paris"} and {}, counted with the estimator.
    assert!(usage.completion_tokens > 0 && usage.total_tokens == 40 + usage.completion_tokens);
    assert!(
        from_gemini::response(resp, &ctx(None)).usage.is_none(),
        "no count asked for, none made up"
    );

    let mut st = from_gemini::Stream::new(counted);
    let text = r#"{"candidates": [{"content": {"parts": [{"text": "hello world"}], "role": "model"}, "finishReason": "STOP", "index": 0}]}"#;
    st.on_event(serde_json::from_str(text).unwrap());
    let last = values(st.finish()).pop().unwrap();
    assert_eq!(last["usage"]["prompt_tokens"], 40);
    assert_eq!(last["usage"]["completion_tokens"], 2);
}

// --- clients that speak Anthropic's API, served in another dialect -------------------------------

#[test]
fn messages_everything_to_openai() {
    let req: a::Request =
        serde_json::from_str(&fixture("anthropic/messages_everything.json")).unwrap();
    let (req, notes) = from_anthropic::request(req).unwrap();
    assert_eq!(
        notes.dropped,
        vec![
            "thinking blocks of earlier turns".to_owned(),
            "service_tier".to_owned()
        ]
    );
    // Tool results come right after the assistant turn that called them, before the user's text.
    let roles: Vec<_> = req.messages.iter().map(|m| m.role).collect();
    assert_eq!(
        roles,
        [
            o::Role::System,
            o::Role::User,
            o::Role::Assistant,
            o::Role::Tool,
            o::Role::Tool,
            o::Role::User
        ]
    );
    assert_json_snapshot!("messages_everything.openai_request", req);
}

#[test]
fn anthropic_features_without_an_equivalent_are_refused() {
    let base = serde_json::json!({"model": "m", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]});
    let cases = [
        (
            serde_json::json!({"tools": [{"type": "web_search_20250305", "name": "web_search"}]}),
            "tools[0]: the server tool `web_search_20250305`",
        ),
        (
            serde_json::json!({"mcp_servers": [{"type": "url", "url": "https://x", "name": "x"}]}),
            "MCP servers (mcp_servers)",
        ),
        (
            serde_json::json!({"messages": [{"role": "user", "content": [
                {"type": "document", "source": {"type": "url", "url": "https://x/a.pdf"}}]}]}),
            "messages[0].content[0]: a document from a url source",
        ),
    ];
    for (patch, feature) in cases {
        let mut body = base.clone();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        let req: a::Request = serde_json::from_value(body).unwrap();
        let err = from_anthropic::request(req).unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("{feature} is not supported by models outside Anthropic")
        );
    }
}

#[test]
fn openai_responses_to_anthropic() {
    for case in ["response_text", "response_tool_calls"] {
        let resp: o::ChatResponse =
            serde_json::from_str(&fixture(&format!("openai/{case}.json"))).unwrap();
        let out = anthropic::from_openai::response(resp, "served-model").unwrap();
        assert_json_snapshot!(format!("{case}.anthropic_message"), out);
    }
    // Cache reads are not input tokens in Anthropic's accounting.
    let resp: o::ChatResponse =
        serde_json::from_str(&fixture("openai/response_text.json")).unwrap();
    let u = &anthropic::from_openai::response(resp, "m").unwrap()["usage"];
    assert_eq!(
        (
            &u["input_tokens"],
            &u["cache_read_input_tokens"],
            &u["output_tokens"]
        ),
        (
            &serde_json::json!(20),
            &serde_json::json!(100),
            &serde_json::json!(7)
        )
    );
}

#[test]
fn openai_tool_arguments_that_are_not_json_are_an_upstream_error() {
    let mut resp: o::ChatResponse =
        serde_json::from_str(&fixture("openai/response_tool_calls.json")).unwrap();
    resp.choices[0].message.tool_calls.as_mut().unwrap()[0]
        .function
        .arguments = "{\"city\":".into();
    assert!(matches!(
        anthropic::from_openai::response(resp, "m"),
        Err(gatehouse_llm::LlmError::MalformedUpstream { .. })
    ));
}

#[test]
fn openai_streams_to_anthropic_events() {
    let mut d = sse::Decoder::new();
    let mut events = d
        .feed(fixture("openai/stream_tool_calls.sse").as_bytes())
        .unwrap();
    events.extend(d.finish());
    let mut st = anthropic::from_openai::Stream::new("served-model", 88);
    let mut out: Vec<Value> = Vec::new();
    for ev in events {
        if ev.data.trim() == "[DONE]" {
            break;
        }
        out.extend(st.on_chunk(serde_json::from_str(&ev.data).unwrap()));
    }
    assert!(st.saw_finish());
    out.extend(st.finish());
    assert!(st.finish().is_empty(), "the closing events are sent once");
    // Each tool call's pieces reassemble into its input.
    let input = |index: u64| -> Value {
        let json: String = out
            .iter()
            .filter(|e| e["index"] == index && e["delta"]["type"] == "input_json_delta")
            .map(|e| e["delta"]["partial_json"].as_str().unwrap().to_owned())
            .collect();
        serde_json::from_str(&json).unwrap()
    };
    assert_eq!(input(2), serde_json::json!({"city": "Paris"}));
    assert_eq!(input(3), serde_json::json!({"city": "Lyon"}));
    assert_json_snapshot!("stream_tool_calls.anthropic_events", out);
}

#[test]
fn openai_errors_to_anthropic() {
    let e = anthropic::from_openai::error(429, "slow down", Some("req_1"));
    assert_eq!(
        serde_json::to_value(e).unwrap(),
        serde_json::json!({"type": "error", "error": {"type": "rate_limit_error", "message": "slow down"},
                           "request_id": "req_1"})
    );
    for (status, kind) in [
        (400, "invalid_request_error"),
        (401, "authentication_error"),
        (403, "permission_error"),
        (404, "not_found_error"),
        (413, "request_too_large"),
        (500, "api_error"),
        (502, "api_error"),
        (504, "timeout_error"),
        (529, "overloaded_error"),
    ] {
        assert_eq!(anthropic::from_openai::error_kind(status), kind, "{status}");
    }
}

// --- Bedrock: AWS's recorded event stream frames, and ConverseStream into OpenAI chunks ----------

#[test]
fn awss_recorded_event_stream_frames_decode_or_are_refused() {
    use gatehouse_llm::eventstream::Decoder;
    let frame = |name: &str| {
        std::fs::read(format!(
            "{}/tests/fixtures/eventstream/{name}",
            env!("CARGO_MANIFEST_DIR")
        ))
        .unwrap()
    };
    for name in [
        "valid_with_all_headers_and_payload",
        "valid_empty_payload",
        "valid_no_headers",
    ] {
        // Fed one byte at a time, as a slow network would deliver it.
        let bytes = frame(name);
        let mut d = Decoder::new();
        let mut frames = Vec::new();
        for b in &bytes {
            frames.extend(d.feed(std::slice::from_ref(b)).unwrap());
        }
        assert_eq!(frames.len(), 1, "{name}");
        assert!(d.at_boundary(), "{name}");
    }
    for name in [
        "invalid_message_checksum",
        "invalid_prelude_checksum",
        "invalid_headers_length",
    ] {
        let e = Decoder::new().feed(&frame(name)).unwrap_err();
        assert!(
            e.to_string().contains("malformed event stream frame"),
            "{name}: {e}"
        );
    }
}

#[test]
fn bedrock_converse_streams_to_openai() {
    use gatehouse_llm::eventstream::{encode_event, encode_exception, Decoder};
    use serde_json::json;
    // The frames of a ConverseStream with reasoning, text and a tool call whose input arrives in
    // pieces, then the stop and usage metadata, as Bedrock sends them.
    let events = [
        ("messageStart", json!({"role": "assistant"})),
        (
            "contentBlockDelta",
            json!({"delta": {"reasoningContent": {"text": "Paris first."}}, "contentBlockIndex": 0}),
        ),
        (
            "contentBlockDelta",
            json!({"delta": {"reasoningContent": {"signature": "c2ln"}}, "contentBlockIndex": 0}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 0})),
        (
            "contentBlockDelta",
            json!({"delta": {"text": "Checking."}, "contentBlockIndex": 1}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 1})),
        (
            "contentBlockStart",
            json!({"start": {"toolUse": {"toolUseId": "tooluse_1", "name": "get_weather"}}, "contentBlockIndex": 2}),
        ),
        (
            "contentBlockDelta",
            json!({"delta": {"toolUse": {"input": "{\"city\":"}}, "contentBlockIndex": 2}),
        ),
        (
            "contentBlockDelta",
            json!({"delta": {"toolUse": {"input": "\"Paris\"}"}}, "contentBlockIndex": 2}),
        ),
        ("contentBlockStop", json!({"contentBlockIndex": 2})),
        ("messageStop", json!({"stopReason": "tool_use"})),
        (
            "metadata",
            json!({"usage": {"inputTokens": 40, "outputTokens": 12, "totalTokens": 52, "cacheReadInputTokens": 8}, "metrics": {"latencyMs": 300}}),
        ),
    ];
    let mut bytes = Vec::new();
    for (name, payload) in &events {
        bytes.extend_from_slice(&encode_event(name, payload.to_string().as_bytes()));
    }
    // Split mid-frame, as the network does.
    let mut d = Decoder::new();
    let mut frames = d.feed(&bytes[..37]).unwrap();
    frames.extend(d.feed(&bytes[37..]).unwrap());
    let mut st =
        gatehouse_llm::convert::openai::from_bedrock::Stream::new(ctx(None), "chatcmpl-b1");
    let mut out: Vec<StreamOut> = frames.iter().flat_map(|f| st.on_frame(f)).collect();
    out.extend(st.finish());
    let out = values(out);
    let usage = &out.last().unwrap()["usage"];
    assert_eq!(
        (
            usage["prompt_tokens"].as_u64(),
            usage["completion_tokens"].as_u64()
        ),
        (Some(48), Some(12))
    );
    assert_json_snapshot!("bedrock_stream_tool_use.openai", out);

    // An exception frame ends the stream with an error in OpenAI's shape.
    let mut st =
        gatehouse_llm::convert::openai::from_bedrock::Stream::new(ctx(None), "chatcmpl-b2");
    let frames = Decoder::new()
        .feed(&encode_exception(
            "throttlingException",
            br#"{"message":"Too many requests"}"#,
        ))
        .unwrap();
    let out = values(st.on_frame(&frames[0]));
    assert_eq!(out[0]["error"]["type"], "rate_limit_error");
    assert_eq!(out[0]["error"]["message"], "Too many requests");
    assert!(values(st.finish()).is_empty(), "the error ended the stream");
}

#[test]
fn chat_everything_to_bedrock() {
    let model = "anthropic.claude-sonnet-4-5-20250929-v1:0";
    // Converse takes image bytes, never links: a linked image is refused by name…
    let err = gatehouse_llm::convert::bedrock::from_openai::request(
        openai_request("openai/chat_everything.json"),
        model,
        1024,
    )
    .unwrap_err();
    assert!(err.to_string().contains("images by URL"), "{err}");
    // …and without it, everything else translates.
    let mut req = openai_request("openai/chat_everything.json");
    for m in &mut req.messages {
        if let Some(o::Content::Parts(parts)) = &mut m.content {
            parts.retain(|p| {
                !matches!(p, o::ContentPart::Known(o::Part::ImageUrl { image_url }) if image_url.url.starts_with("http"))
            });
        }
    }
    let (req, notes) =
        gatehouse_llm::convert::bedrock::from_openai::request(req, model, 1024).unwrap();
    assert!(
        notes.dropped.contains(&"seed".to_owned()),
        "{:?}",
        notes.dropped
    );
    assert_json_snapshot!("chat_everything.bedrock", req);
}
