"""The official OpenAI Python SDK against the gateway, with OpenAI, Anthropic and Gemini upstreams.

The promise under test: whatever serves the model, the SDK gets the same shapes, streams included,
tools included, and every failure arrives as the SDK's own exception with a clear message.
"""

import json
import time

import httpx
import openai
import pytest

from conftest import KEY, mock_stats

MODELS = ["gpt", "claude", "gemini"]
WEATHER = [{
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Weather in a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "days": {"type": "integer"}}, "required": ["city"]},
    },
}]


def shape(v):
    if isinstance(v, dict):
        return {k: shape(x) for k, x in v.items()}
    if isinstance(v, list):
        return [shape(v[0])] if v else []
    return type(v).__name__


@pytest.mark.parametrize("model", MODELS)
def test_chat_non_stream(client, model):
    r = client.chat.completions.create(model=model, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hello"}])
    assert r.object == "chat.completion"
    assert r.choices[0].message.role == "assistant"
    assert r.choices[0].message.content
    assert r.choices[0].finish_reason == "stop"
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens > 0


def test_shapes_are_identical_across_upstream_dialects(client):
    shapes = []
    for model in MODELS:
        r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Hi"}])
        d = r.model_dump(exclude_none=True)
        d.pop("system_fingerprint", None)
        shapes.append(shape(d))
    assert shapes[0] == shapes[1] == shapes[2]


@pytest.mark.parametrize("model", MODELS)
def test_chat_stream_with_usage(client, model):
    chunks = list(client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Hello"}], stream=True,
        stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert len(text.split(" ")) == 16
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes == ["stop"]
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens == 16


@pytest.mark.parametrize("model", MODELS)
def test_tool_call_non_stream(client, model):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "Weather in Paris?"}],
                                       tools=WEATHER, tool_choice="required")
    call = r.choices[0].message.tool_calls[0]
    assert r.choices[0].finish_reason == "tool_calls"
    assert call.type == "function" and call.function.name == "get_weather" and call.id
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}


@pytest.mark.parametrize("model", MODELS)
def test_tool_call_streamed_arguments_assemble_in_the_sdk_helper(client, model):
    pieces = 0
    with client.chat.completions.stream(model=model, messages=[{"role": "user", "content": "Weather?"}], tools=WEATHER) as s:
        for event in s:
            if event.type == "tool_calls.function.arguments.delta":
                pieces += 1
        final = s.get_final_completion()
    assert pieces >= (1 if model == "gemini" else 2), "arguments should arrive in pieces where the upstream streams them"
    call = final.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "mock", "days": 1}
    assert final.choices[0].finish_reason == "tool_calls"


@pytest.mark.parametrize("model", MODELS)
def test_tool_results_continue_the_conversation(client, model):
    r = client.chat.completions.create(model=model, tools=WEATHER, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "{\"temp_c\": 21}"},
    ])
    assert r.choices[0].finish_reason == "stop" and r.choices[0].message.content


@pytest.mark.parametrize("model", MODELS)
def test_json_schema_and_image_input(client, model):
    r = client.chat.completions.create(model=model, messages=[{"role": "user", "content": [
        {"type": "text", "text": "What city is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}],
        response_format={"type": "json_schema", "json_schema": {"name": "city", "schema": {
            "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}})
    assert json.loads(r.choices[0].message.content) == {"city": "mock"}


@pytest.mark.parametrize("model", ["embed-openai", "embed-gemini"])
def test_embeddings_through_the_sdk(client, model):
    # The SDK asks for base64 by default and decodes it; floats must come back either way.
    r = client.embeddings.create(model=model, input=["one", "two"], dimensions=16)
    assert [d.index for d in r.data] == [0, 1]
    assert all(len(d.embedding) == 16 for d in r.data)
    norm = sum(x * x for x in r.data[0].embedding)
    assert abs(norm - 1.0) < 1e-3
    floats = client.embeddings.create(model=model, input="one", dimensions=16, encoding_format="float")
    assert floats.data[0].embedding == pytest.approx(r.data[0].embedding, abs=1e-6)


def test_models_list_and_retrieve(client):
    ids = [m.id for m in client.models.list()]
    assert ids[:5] == ["claude", "embed-gemini", "embed-openai", "gemini", "gpt"]
    assert "p-anthropic/claude-sonnet-4-5" in ids
    assert client.models.retrieve("p-openai/gpt-4o").id == "p-openai/gpt-4o"
    with pytest.raises(openai.NotFoundError):
        client.models.retrieve("nope")


def test_provider_slash_model(client):
    raw = client.chat.completions.with_raw_response.create(
        model="p-gemini/gemini-2.5-pro", messages=[{"role": "user", "content": "x"}])
    assert raw.headers["x-gatehouse-provider"] == "p-gemini"
    assert raw.headers["x-request-id"].startswith("req_")
    assert raw.parse().model == "gemini-2.5-pro"


# --- errors ----------------------------------------------------------------------------------

def raw_post(gateway, body, key=KEY, path="/v1/chat/completions"):
    headers = {"content-type": "application/json"}
    if key:
        headers["authorization"] = f"Bearer {key}"
    return httpx.post(gateway.url + path, content=body, headers=headers, timeout=20)


def test_malformed_json_is_400(gateway):
    r = raw_post(gateway, b'{"model": "gpt", "messages": [')
    assert r.status_code == 400
    assert r.json()["error"]["code"] == "invalid_json"
    assert "x-request-id" in r.headers


def test_missing_model_is_404(gateway):
    r = raw_post(gateway, b'{"messages": []}')
    assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_unknown_model_is_404(client):
    with pytest.raises(openai.NotFoundError) as e:
        client.chat.completions.create(model="no-such-model", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "model_not_found"
    assert "no-such-model" in e.value.message


def test_missing_and_wrong_keys_are_401(gateway, client):
    assert raw_post(gateway, b'{"model": "gpt"}', key=None).status_code == 401
    bad = client.with_options(api_key="wrong-key-0123456789")
    with pytest.raises(openai.AuthenticationError) as e:
        bad.chat.completions.create(model="gpt", messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "invalid_api_key"


def test_body_over_the_limit_is_413(gateway):
    body = json.dumps({"model": "gpt", "messages": [{"role": "user", "content": "x" * (2 << 20)}]}).encode()
    r = raw_post(gateway, body)
    assert r.status_code == 413 and r.json()["error"]["code"] == "request_too_large"


def test_upstream_429_keeps_status_message_and_retry_after(client):
    with pytest.raises(openai.RateLimitError) as e:
        client.chat.completions.create(model="limited/claude-sonnet-4-5", messages=[{"role": "user", "content": "x"}])
    assert e.value.response.headers["retry-after"] == "7"
    assert "mock fault: status 429" in e.value.message


@pytest.mark.parametrize("model,status", [("down/gemini-2.5-flash", 503), ("broken/gpt-4o", 500),
                                          ("dead/m", 502), ("slow/m", 504)])
def test_upstream_failures_keep_or_map_their_status(client, model, status):
    with pytest.raises(openai.APIStatusError) as e:
        client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}])
    assert e.value.status_code == status
    assert e.value.message


def test_a_feature_the_upstream_cannot_express_is_400(client):
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model="claude", n=2, messages=[{"role": "user", "content": "x"}])
    assert e.value.code == "unsupported_parameter"
    assert "n > 1" in e.value.message and "claude" in e.value.message


@pytest.mark.parametrize("model", ["cut/claude-sonnet-4-5", "gcut/gemini-2.5-flash"])
def test_an_upstream_dying_mid_stream_raises_in_the_sdk(client, model):
    stream = client.chat.completions.create(model=model, messages=[{"role": "user", "content": "x"}], stream=True)
    with pytest.raises(openai.APIError) as e:
        for _ in stream:
            pass
    assert "stream" in str(e.value) or "broke" in str(e.value)


def test_a_client_abort_cancels_the_upstream_stream(client, mock):
    before = mock_stats(mock)["streams_aborted"]
    stream = client.chat.completions.create(model="slowstream/claude-sonnet-4-5",
                                            messages=[{"role": "user", "content": "x"}], stream=True)
    next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        if mock_stats(mock)["streams_aborted"] > before:
            return
        time.sleep(0.05)
    pytest.fail(f"the upstream stream was not cancelled: {mock_stats(mock)}")
