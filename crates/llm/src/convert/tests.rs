//! Property tests: a translated request keeps every message, tool call, tool result, tool and
//! parameter, in order, whatever the conversation looks like.

use proptest::prelude::*;
use serde_json::{json, Value};

use crate::types::{anthropic as a, openai as o};

/// One step of a conversation, from which valid OpenAI messages are built.
#[derive(Debug, Clone)]
enum Turn {
    System(String),
    User(String),
    Assistant(String),
    /// Assistant calls (name, argument value) and each call's result text.
    Tools(Vec<(String, i64)>, Vec<String>),
}

fn text() -> impl Strategy<Value = String> {
    "[a-zA-Z0-9 éü✓\"\\\\\n]{1,20}"
}

fn turn() -> impl Strategy<Value = Turn> {
    prop_oneof![
        text().prop_map(Turn::System),
        text().prop_map(Turn::User),
        text().prop_map(Turn::Assistant),
        proptest::collection::vec(("[a-z_]{1,8}", any::<i64>()), 1..4)
            .prop_flat_map(|calls| {
                let n = calls.len();
                (Just(calls), proptest::collection::vec(text(), n))
            })
            .prop_map(|(calls, results)| Turn::Tools(calls, results)),
    ]
}

#[derive(Debug)]
struct Built {
    req: o::ChatRequest,
    system: Vec<String>,
    /// Non-system texts in order (user and assistant).
    texts: Vec<String>,
    /// (id, name, args) of every call in order.
    calls: Vec<(String, String, Value)>,
    /// (id, name, content) of every result in order.
    results: Vec<(String, String, String)>,
}

fn build(turns: Vec<Turn>, temperature: Option<f64>, max: Option<u32>, stop: Vec<String>) -> Built {
    let (mut messages, mut system, mut texts, mut calls, mut results) =
        (vec![], vec![], vec![], vec![], vec![]);
    let mut next_id = 0;
    for t in turns {
        match t {
            Turn::System(s) => {
                system.push(s.clone());
                messages.push(json!({"role": "system", "content": s}));
            }
            Turn::User(s) => {
                texts.push(s.clone());
                messages.push(json!({"role": "user", "content": s}));
            }
            Turn::Assistant(s) => {
                texts.push(s.clone());
                messages.push(json!({"role": "assistant", "content": s}));
            }
            Turn::Tools(cs, rs) => {
                let mut tool_calls = vec![];
                let mut ids = vec![];
                for (name, arg) in &cs {
                    next_id += 1;
                    let id = format!("call_{next_id}");
                    let args = json!({"x": arg});
                    tool_calls.push(json!({"id": id, "type": "function",
                        "function": {"name": name, "arguments": args.to_string()}}));
                    calls.push((id.clone(), name.clone(), args));
                    ids.push((id, name.clone()));
                }
                messages
                    .push(json!({"role": "assistant", "content": null, "tool_calls": tool_calls}));
                for ((id, name), r) in ids.into_iter().zip(rs) {
                    results.push((id.clone(), name, r.clone()));
                    messages.push(json!({"role": "tool", "tool_call_id": id, "content": r}));
                }
            }
        }
    }
    let req: o::ChatRequest = serde_json::from_value(json!({
        "model": "m", "messages": messages, "temperature": temperature, "max_tokens": max,
        "stop": stop,
        "tools": [{"type": "function", "function": {"name": "t1", "parameters": {"type": "object"}}},
                  {"type": "function", "function": {"name": "t2", "description": "d"}}]
    }))
    .unwrap();
    Built {
        req,
        system,
        texts,
        calls,
        results,
    }
}

fn conversation() -> impl Strategy<Value = Built> {
    (
        proptest::collection::vec(turn(), 0..12),
        proptest::option::of(0.0f64..2.0),
        proptest::option::of(1u32..100_000),
        proptest::collection::vec(text(), 0..3),
    )
        .prop_map(|(t, temp, max, stop)| build(t, temp, max, stop))
}

proptest! {
    #[test]
    fn anthropic_requests_keep_every_message_tool_and_parameter(b in conversation()) {
        let (req, _) = super::anthropic::from_openai::request(b.req.clone(), "claude", 777).unwrap();
        let system: Vec<String> = match &req.system {
            Some(a::System::Blocks(blocks)) => blocks.iter().filter_map(|bl| match bl {
                a::ContentBlock::Known(a::Block::Text { text }) => Some(text.clone()),
                _ => None,
            }).collect(),
            _ => vec![],
        };
        prop_assert_eq!(system, b.system);
        let (mut texts, mut calls, mut results) = (vec![], vec![], vec![]);
        for pair in req.messages.windows(2) {
            prop_assert_ne!(pair[0].role, pair[1].role, "roles must alternate");
        }
        for m in &req.messages {
            let a::MessageContent::Blocks(blocks) = &m.content else { unreachable!() };
            for bl in blocks {
                match bl {
                    a::ContentBlock::Known(a::Block::Text { text }) => texts.push(text.clone()),
                    a::ContentBlock::Known(a::Block::ToolUse { id, name, input }) => calls.push((id.clone(), name.clone(), input.clone())),
                    a::ContentBlock::Known(a::Block::ToolResult { tool_use_id, content: Some(a::ToolResultContent::Text(t)), .. }) => {
                        let name = b.calls.iter().find(|c| &c.0 == tool_use_id).map(|c| c.1.clone()).unwrap_or_default();
                        results.push((tool_use_id.clone(), name, t.clone()));
                    }
                    other => prop_assert!(false, "unexpected block {:?}", other),
                }
            }
        }
        prop_assert_eq!(texts, b.texts);
        prop_assert_eq!(calls, b.calls);
        prop_assert_eq!(results, b.results);
        let tools: Vec<String> = req.tools.unwrap_or_default().into_iter().map(|t| t.name).collect();
        prop_assert_eq!(tools, vec!["t1".to_owned(), "t2".to_owned()]);
        prop_assert_eq!(req.temperature, b.req.temperature);
        prop_assert_eq!(req.max_tokens, b.req.max_tokens.unwrap_or(777));
        let stop = b.req.stop.clone().map(o::Stop::into_vec);
        prop_assert_eq!(req.stop_sequences, stop);
    }

    #[test]
    fn gemini_requests_keep_every_message_tool_and_parameter(b in conversation()) {
        let (req, _) = super::gemini::from_openai::request(b.req.clone()).unwrap();
        let system: Vec<String> = req.system_instruction.map(|c| c.parts.into_iter().filter_map(|p| p.text).collect()).unwrap_or_default();
        prop_assert_eq!(system, b.system);
        for pair in req.contents.windows(2) {
            prop_assert_ne!(&pair[0].role, &pair[1].role, "roles must alternate");
        }
        let (mut texts, mut calls, mut results) = (vec![], vec![], vec![]);
        for c in &req.contents {
            for p in &c.parts {
                if let Some(t) = &p.text { texts.push(t.clone()); }
                if let Some(f) = &p.function_call { calls.push((f.name.clone(), f.args.clone())); }
                if let Some(r) = &p.function_response { results.push((r.name.clone(), r.response.clone())); }
            }
        }
        prop_assert_eq!(texts, b.texts);
        let want_calls: Vec<(String, Value)> = b.calls.iter().map(|c| (c.1.clone(), c.2.clone())).collect();
        prop_assert_eq!(calls, want_calls);
        let want_results: Vec<(String, Value)> = b.results.iter().map(|r| {
            let v = match serde_json::from_str::<Value>(&r.2) { Ok(v @ Value::Object(_)) => v, _ => json!({"content": r.2}) };
            (r.1.clone(), v)
        }).collect();
        prop_assert_eq!(results, want_results);
        let tools: Vec<String> = req.tools.unwrap_or_default().into_iter().flat_map(|t| t.function_declarations).map(|d| d.name).collect();
        prop_assert_eq!(tools, vec!["t1".to_owned(), "t2".to_owned()]);
        let cfg = req.generation_config.unwrap_or_default();
        prop_assert_eq!(cfg.temperature, b.req.temperature);
        prop_assert_eq!(cfg.max_output_tokens, b.req.max_tokens);
        prop_assert_eq!(cfg.stop_sequences, b.req.stop.clone().map(o::Stop::into_vec));
    }

    #[test]
    fn canonical_requests_round_trip_through_serde_unchanged(b in conversation()) {
        let bytes = serde_json::to_vec(&b.req).unwrap();
        let back: o::ChatRequest = serde_json::from_slice(&bytes).unwrap();
        prop_assert_eq!(back, b.req);
    }
}

#[test]
fn gemini_tool_result_for_an_unknown_call_is_refused() {
    let req: o::ChatRequest = serde_json::from_value(json!({"model": "m", "messages": [
        {"role": "tool", "tool_call_id": "nope", "content": "x"}]}))
    .unwrap();
    let err = super::gemini::from_openai::request(req).unwrap_err();
    assert!(
        err.to_string().contains("answers no earlier tool call"),
        "{err}"
    );
}

/// Any JSON value, a few levels deep.
fn any_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::from),
        any::<i64>().prop_map(Value::from),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(Value::from),
        "[a-z_ ]{0,8}".prop_map(Value::from),
        prop_oneof![
            Just("user"),
            Just("assistant"),
            Just("tool"),
            Just("system"),
            Just("function"),
            Just("text"),
            Just("image_url"),
            Just("none"),
            Just("auto"),
            Just("required"),
            Just("json_schema")
        ]
        .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            proptest::collection::vec(inner.clone(), 0..4).prop_map(Value::from),
            proptest::collection::btree_map(
                prop_oneof![
                    Just("role"),
                    Just("content"),
                    Just("type"),
                    Just("text"),
                    Just("tool_calls"),
                    Just("id"),
                    Just("function"),
                    Just("name"),
                    Just("arguments"),
                    Just("tool_call_id"),
                    Just("image_url"),
                    Just("url"),
                    Just("parameters"),
                    Just("json_schema"),
                    Just("schema"),
                    Just("x")
                ]
                .prop_map(str::to_owned),
                inner,
                0..5
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    /// Nothing a client sends can panic the translators: a request either parses and translates
    /// (or is refused with an error), or fails to parse.
    #[test]
    fn arbitrary_requests_never_panic_a_translator(
        messages in proptest::collection::vec(any_json(), 0..5),
        tools in any_json(),
        tool_choice in any_json(),
        response_format in any_json(),
        n in any_json(),
        effort in any_json(),
    ) {
        let body = json!({"model": "m", "messages": messages, "tools": tools, "tool_choice": tool_choice,
                          "response_format": response_format, "n": n, "reasoning_effort": effort});
        if let Ok(req) = serde_json::from_value::<o::ChatRequest>(body) {
            let _ = super::anthropic::from_openai::request(req.clone(), "m", 1024);
            let _ = super::gemini::from_openai::request(req.clone());
            let _ = crate::tokens::count_chat(&req);
        }
    }

    /// Upstream stream events in any order never panic a stream state.
    #[test]
    fn anthropic_events_in_any_order_never_panic(events in proptest::collection::vec((0usize..8, 0u32..3, "[a-z{}\":]{0,6}"), 0..20)) {
        let mut st = super::openai::from_anthropic::Stream::new(super::ResponseContext {
            model: "m".into(), created: 0, json_tool: Some("json_response".into()), include_usage: true, prompt_tokens: None,
        });
        for (kind, index, text) in events {
            let ev = match kind {
                0 => json!({"type": "message_start", "message": {"id": "x", "type": "message", "role": "assistant", "content": [], "model": "m", "stop_reason": null, "usage": {"input_tokens": 1, "output_tokens": 1}}}),
                1 => json!({"type": "content_block_start", "index": index, "content_block": {"type": "tool_use", "id": "t", "name": if index == 0 { "json_response" } else { "f" }, "input": {}}}),
                2 => json!({"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": text}}),
                3 => json!({"type": "content_block_delta", "index": index, "delta": {"type": "input_json_delta", "partial_json": text}}),
                4 => json!({"type": "content_block_delta", "index": index, "delta": {"type": "text_delta", "text": text}}),
                5 => json!({"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 3}}),
                6 => json!({"type": "message_stop"}),
                _ => json!({"type": "error", "error": {"type": "overloaded_error", "message": text}}),
            };
            let _ = st.on_event(serde_json::from_value(ev).unwrap());
        }
        let _ = st.finish();
    }

    #[test]
    fn gemini_chunks_in_any_order_never_panic(chunks in proptest::collection::vec(any_json(), 0..6)) {
        let mut st = super::openai::from_gemini::Stream::new(super::ResponseContext {
            model: "m".into(), created: 0, json_tool: None, include_usage: true, prompt_tokens: Some(3),
        });
        for c in chunks {
            if let Ok(ev) = serde_json::from_value(json!({"candidates": [{"content": {"parts": [c]}, "index": 0}]})) {
                let _ = st.on_event(ev);
            }
        }
        let _ = st.finish();
    }
}
