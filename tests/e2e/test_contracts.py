"""Contract tests: what Gatehouse and its mock put on the wire, checked against the providers'
published schemas (OpenAI and Anthropic OpenAPI, Gemini discovery).

- Gatehouse's answers in the OpenAI dialect, in OpenAI Responses' (/v1/responses) and in
  Anthropic's (/v1/messages), whichever dialect served them.
- The requests Gatehouse translates for Anthropic and Gemini (the reviewed snapshots of
  crates/llm/tests/snapshots), and the fixtures the translators are tested on.
- The mock's Anthropic and Gemini answers, so the mock cannot drift from the real APIs.
"""

import json
import pathlib

import httpx
import pytest

from conftest import KEY, ROOT, UPSTREAM_KEY
from specs import check, gemini_validator, openapi_validator

SNAPSHOTS = ROOT / "crates/llm/tests/snapshots"
FIXTURES = ROOT / "crates/llm/tests/fixtures"
MODELS = ["gpt", "claude", "gemini"]


def post(gateway, path, body):
    return httpx.post(gateway.url + path, json=body, headers={"authorization": f"Bearer {KEY}"}, timeout=20)


def sse_data(text):
    out = []
    for event in text.split("\n\n"):
        for line in event.splitlines():
            if line.startswith("data: ") and line != "data: [DONE]":
                out.append(json.loads(line[6:]))
    return out


def snapshot(name):
    text = (SNAPSHOTS / f"translate__{name}.snap").read_text()
    return json.loads(text.split("---", 2)[2])


# --- Gatehouse, OpenAI dialect -----------------------------------------------------------------

@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [False, True])
def test_chat_responses_match_openai_schema(gateway, model, tools):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}]}
    if tools:
        body["tools"] = [{"type": "function", "function": {"name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}}]
    r = post(gateway, "/v1/chat/completions", body)
    assert r.status_code == 200
    check(openapi_validator("openai", "CreateChatCompletionResponse"), r.json())


@pytest.mark.parametrize("model", MODELS)
def test_stream_chunks_match_openai_schema(gateway, model):
    body = {"model": model, "messages": [{"role": "user", "content": "hi"}], "stream": True,
            "stream_options": {"include_usage": True},
            "tools": [{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}]}
    for with_tools in (False, True):
        b = dict(body) if with_tools else {k: v for k, v in body.items() if k != "tools"}
        r = post(gateway, "/v1/chat/completions", b)
        chunks = sse_data(r.text)
        assert chunks
        validator = openapi_validator("openai", "CreateChatCompletionStreamResponse")
        for c in chunks:
            check(validator, c)


def test_errors_embeddings_and_models_match_openai_schema(gateway):
    err = post(gateway, "/v1/chat/completions", {"model": "nope", "messages": []})
    check(openapi_validator("openai", "ErrorResponse"), err.json())
    for model in ["embed-openai", "embed-gemini"]:
        emb = post(gateway, "/v1/embeddings", {"model": model, "input": ["a", "b"]})
        check(openapi_validator("openai", "CreateEmbeddingResponse"), emb.json())
    models = httpx.get(gateway.url + "/v1/models", headers={"authorization": f"Bearer {KEY}"})
    check(openapi_validator("openai", "ListModelsResponse"), models.json())


def test_upstream_errors_translated_match_openai_schema(gateway):
    for model in ["limited/claude-haiku-4-5", "down/gemini-2.5-flash"]:
        r = post(gateway, "/v1/chat/completions", {"model": model, "messages": [{"role": "user", "content": "x"}]})
        check(openapi_validator("openai", "ErrorResponse"), r.json())


# --- Gatehouse, Anthropic dialect (/v1/messages) --------------------------------------------------

def post_messages(gateway, path, body):
    return httpx.post(gateway.url + path, json=body, timeout=20,
                      headers={"x-api-key": KEY, "anthropic-version": "2023-06-01"})


ANTHROPIC_EVENTS_ALL = {"message_start": "MessageStartEvent", "content_block_start": "ContentBlockStartEvent",
                        "content_block_delta": "ContentBlockDeltaEvent", "content_block_stop": "ContentBlockStopEvent",
                        "message_delta": "MessageDeltaEvent", "message_stop": "MessageStopEvent"}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [False, True])
def test_messages_match_anthropic_schema_from_every_dialect(gateway, model, tools):
    body = {"model": model, "max_tokens": 200, "messages": [{"role": "user", "content": "hi"}]}
    if tools:
        body["tools"] = [{"name": "f", "input_schema": {"type": "object", "properties": {"a": {"type": "string"}}}}]
        body["tool_choice"] = {"type": "any"}
    r = post_messages(gateway, "/v1/messages", body)
    assert r.status_code == 200, r.text
    check(openapi_validator("anthropic", "Message"), r.json())
    s = post_messages(gateway, "/v1/messages", {**body, "stream": True})
    events = sse_data(s.text)
    assert events[0]["type"] == "message_start" and events[-1]["type"] == "message_stop"
    for e in events:
        if e["type"] in ANTHROPIC_EVENTS_ALL:
            check(openapi_validator("anthropic", ANTHROPIC_EVENTS_ALL[e["type"]]), e)


def test_messages_errors_and_count_tokens_match_anthropic_schema(gateway):
    for body in [{"model": "nope", "max_tokens": 5, "messages": []},
                 {"model": "limited/claude-haiku-4-5", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]},
                 {"model": "down/gemini-2.5-flash", "max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}]:
        r = post_messages(gateway, "/v1/messages", body)
        assert r.status_code >= 400
        check(openapi_validator("anthropic", "ErrorResponse"), r.json())
    for model in MODELS:
        r = post_messages(gateway, "/v1/messages/count_tokens", {"model": model, "messages": [{"role": "user", "content": "hi"}]})
        check(openapi_validator("anthropic", "CountMessageTokensResponse"), r.json())


# --- Gatehouse, OpenAI Responses dialect (/v1/responses) -----------------------------------------

RESPONSES_EVENTS = {
    "response.created": "ResponseCreatedEvent", "response.in_progress": "ResponseInProgressEvent",
    "response.output_item.added": "ResponseOutputItemAddedEvent", "response.output_item.done": "ResponseOutputItemDoneEvent",
    "response.content_part.added": "ResponseContentPartAddedEvent", "response.content_part.done": "ResponseContentPartDoneEvent",
    "response.output_text.delta": "ResponseTextDeltaEvent", "response.output_text.done": "ResponseTextDoneEvent",
    "response.function_call_arguments.delta": "ResponseFunctionCallArgumentsDeltaEvent",
    "response.function_call_arguments.done": "ResponseFunctionCallArgumentsDoneEvent",
    "response.completed": "ResponseCompletedEvent", "error": "ResponseErrorEvent",
}


@pytest.mark.parametrize("model", MODELS)
@pytest.mark.parametrize("tools", [False, True])
def test_responses_match_openai_schema_from_every_dialect(gateway, model, tools):
    body = {"model": model, "input": "hi", "instructions": "Be brief."}
    if tools:
        body["tools"] = [{"type": "function", "name": "f", "parameters": {"type": "object", "properties": {"a": {"type": "string"}}}}]
        body["tool_choice"] = "required"
    r = post(gateway, "/v1/responses", body)
    assert r.status_code == 200, r.text
    check(openapi_validator("openai", "Response"), r.json())
    s = post(gateway, "/v1/responses", {**body, "stream": True})
    events = sse_data(s.text)
    assert events[0]["type"] == "response.created" and events[-1]["type"] == "response.completed"
    for e in events:
        check(openapi_validator("openai", RESPONSES_EVENTS[e["type"]]), e)


# --- translated requests and fixtures ------------------------------------------------------------

def test_translated_messages_request_matches_create_chat_completion_request():
    check(openapi_validator("openai", "CreateChatCompletionRequest"), snapshot("messages_everything.openai_request"))
    check(openapi_validator("anthropic", "CreateMessageParams"), json.loads((FIXTURES / "anthropic/messages_everything.json").read_text()))


@pytest.mark.parametrize("path", sorted(SNAPSHOTS.glob("translate__*.anthropic_message.snap")), ids=lambda p: p.stem)
def test_translated_anthropic_messages_match_message(path):
    check(openapi_validator("anthropic", "Message"), json.loads(path.read_text().split("---", 2)[2]))


@pytest.mark.parametrize("path", sorted(SNAPSHOTS.glob("translate__*.anthropic_events.snap")), ids=lambda p: p.stem)
def test_translated_anthropic_events_match_the_event_schemas(path):
    for e in json.loads(path.read_text().split("---", 2)[2]):
        if e["type"] in ANTHROPIC_EVENTS_ALL:
            check(openapi_validator("anthropic", ANTHROPIC_EVENTS_ALL[e["type"]]), e)


@pytest.mark.parametrize("case", ["chat_everything", "chat_json_schema"])
def test_translated_anthropic_requests_match_create_message_params(case):
    check(openapi_validator("anthropic", "CreateMessageParams"), snapshot(f"{case}.anthropic"))


@pytest.mark.parametrize("case", ["chat_everything", "chat_json_schema"])
def test_translated_gemini_requests_match_generate_content_request(case):
    check(gemini_validator("GenerateContentRequest"), snapshot(f"{case}.gemini"))


@pytest.mark.parametrize("path", sorted((FIXTURES / "anthropic").glob("response_*.json")), ids=lambda p: p.stem)
def test_anthropic_fixtures_match_message(path):
    check(openapi_validator("anthropic", "Message"), json.loads(path.read_text()))


@pytest.mark.parametrize("path", sorted((FIXTURES / "gemini").glob("response_*.json")), ids=lambda p: p.stem)
def test_gemini_fixtures_match_generate_content_response(path):
    check(gemini_validator("GenerateContentResponse"), json.loads(path.read_text()))


@pytest.mark.parametrize("path", sorted((FIXTURES / "openai").glob("chat_*.json")), ids=lambda p: p.stem)
def test_openai_request_fixtures_match_create_chat_completion_request(path):
    body = json.loads(path.read_text())
    check(openapi_validator("openai", "CreateChatCompletionRequest"), body)


# --- the mock speaks the real dialects ---------------------------------------------------------------

ANTHROPIC_EVENTS = {"message_start": "MessageStartEvent", "content_block_start": "ContentBlockStartEvent",
                    "content_block_delta": "ContentBlockDeltaEvent", "content_block_stop": "ContentBlockStopEvent",
                    "message_delta": "MessageDeltaEvent", "message_stop": "MessageStopEvent"}


@pytest.mark.parametrize("extra", [{}, {"tools": [{"name": "f", "input_schema": {"type": "object"}}]},
                                   {"thinking": {"type": "enabled", "budget_tokens": 1024}}], ids=["text", "tools", "thinking"])
def test_mock_anthropic_matches_the_spec(mock, extra):
    headers = {"x-api-key": UPSTREAM_KEY, "anthropic-version": "2023-06-01"}
    body = {"model": "claude-haiku-4-5", "max_tokens": 2000, "messages": [{"role": "user", "content": "hi"}], **extra}
    r = httpx.post(f"http://{mock}/v1/messages", json=body, headers=headers)
    check(openapi_validator("anthropic", "Message"), r.json())
    s = httpx.post(f"http://{mock}/v1/messages", json={**body, "stream": True}, headers=headers)
    events = sse_data(s.text)
    assert [e["type"] for e in events][0] == "message_start"
    for e in events:
        if e["type"] in ANTHROPIC_EVENTS:
            check(openapi_validator("anthropic", ANTHROPIC_EVENTS[e["type"]]), e)
    err = httpx.post(f"http://{mock}/v1/messages", json=body, headers={**headers, "x-mock-fault": "429"})
    check(openapi_validator("anthropic", "ErrorResponse"), err.json())


@pytest.mark.parametrize("extra", [{}, {"tools": [{"functionDeclarations": [{"name": "f", "parametersJsonSchema": {"type": "object"}}]}]}],
                         ids=["text", "tools"])
def test_mock_gemini_matches_the_spec(mock, extra):
    headers = {"x-goog-api-key": UPSTREAM_KEY}
    body = {"contents": [{"role": "user", "parts": [{"text": "hi"}]}], **extra}
    base = f"http://{mock}/v1beta/models/gemini-2.5-flash"
    r = httpx.post(f"{base}:generateContent", json=body, headers=headers)
    check(gemini_validator("GenerateContentResponse"), r.json())
    s = httpx.post(f"{base}:streamGenerateContent?alt=sse", json=body, headers=headers)
    for chunk in sse_data(s.text):
        check(gemini_validator("GenerateContentResponse"), chunk)
    emb = httpx.post(f"{base}:batchEmbedContents", headers=headers,
                     json={"requests": [{"model": "models/gemini-embedding-001", "content": {"parts": [{"text": "a"}]}}]})
    check(gemini_validator("BatchEmbedContentsResponse"), emb.json())


@pytest.mark.parametrize("path", sorted(SNAPSHOTS.glob("translate__*.openai.snap")), ids=lambda p: p.stem)
def test_translator_outputs_match_openai_schemas(path):
    """Every reviewed snapshot of a translation into OpenAI: responses, stream chunks and errors."""
    value = json.loads(path.read_text().split("---", 2)[2])
    items = value if isinstance(value, list) else [value]
    for item in items:
        if "error" in item:
            schema = "ErrorResponse"
        elif item.get("object") == "chat.completion.chunk":
            schema = "CreateChatCompletionStreamResponse"
        else:
            schema = "CreateChatCompletionResponse"
        check(openapi_validator("openai", schema), item)
