"""Gatehouse's Anthropic Messages ingress (/v1/messages) with the official Anthropic Python SDK as
the client, against models served in each upstream dialect (Anthropic, OpenAI, Gemini mocks):
create, stream, tool use with streamed input, tool results, count_tokens, errors as the SDK's own
exceptions, and the call record such a call leaves.
"""

import anthropic
import pytest

from conftest import KEY
from test_call_log import all_records, catalog
from test_control_plane import Node, eventually, init

MODELS = ["claude", "gpt", "gemini"]
TOOLS = [{"name": "get_weather", "description": "Weather in a city", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture
def claude(gateway):
    return anthropic.Anthropic(base_url=gateway.url, api_key=KEY, max_retries=0, timeout=20)


@pytest.mark.parametrize("model", MODELS)
def test_messages_create(claude, model):
    m = claude.messages.create(model=model, max_tokens=100, system="Be brief.",
                               messages=[{"role": "user", "content": "Hello"}])
    assert m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn"
    assert m.content[0].type == "text" and m.content[0].text
    assert m.usage.input_tokens > 0 and m.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_messages_stream(claude, model):
    with claude.messages.stream(model=model, max_tokens=100,
                                messages=[{"role": "user", "content": "Hello"}]) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop", kinds
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].type == "text" and final.content[0].text
    assert final.stop_reason == "end_turn" and final.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_tool_use_streams_its_input_and_takes_the_result(claude, model):
    with claude.messages.stream(model=model, max_tokens=200, tools=TOOLS, tool_choice={"type": "any"},
                                messages=[{"role": "user", "content": "Weather in Paris?"}]) as s:
        pieces = sum(1 for e in s if e.type == "input_json")
        final = s.get_final_message()
    assert pieces >= 1
    call = next(b for b in final.content if b.type == "tool_use")
    assert call.name == "get_weather" and isinstance(call.input, dict) and call.input
    assert final.stop_reason == "tool_use"
    answer = claude.messages.create(model=model, max_tokens=200, tools=TOOLS, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": final.content},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": call.id, "content": "18C, sunny"}]},
    ])
    assert answer.content[0].type == "text" and answer.stop_reason == "end_turn"


@pytest.mark.parametrize("model", MODELS)
def test_count_tokens(claude, model):
    n = claude.messages.count_tokens(model=model, system="Be brief.",
                                     messages=[{"role": "user", "content": "Hello there, how are you today?"}])
    assert n.input_tokens > 5


def test_thinking_passes_through_to_anthropic(claude):
    m = claude.messages.create(model="claude", max_tokens=2000, thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "Think"}])
    assert [b.type for b in m.content] == ["thinking", "text"]
    assert m.content[0].signature


def test_errors_are_the_sdks_exceptions(claude):
    with pytest.raises(anthropic.AuthenticationError):
        claude.with_options(api_key="wrong").messages.create(
            model="gpt", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.NotFoundError) as e:
        claude.messages.create(model="no-such-model", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert "no-such-model" in str(e.value)
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="limited/claude-haiku-4-5", max_tokens=10,
                               messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as e:
        claude.messages.create(model="gpt", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                               tools=[{"type": "web_search_20250305", "name": "web_search"}])
    assert "web_search_20250305" in str(e.value)


def test_a_messages_call_is_recorded_with_its_dialect_and_tokens(mock, tmp_path):
    password = init(tmp_path / "data")
    node = Node(tmp_path, "node", "--data-dir", str(tmp_path / "data"))
    try:
        node.login("owner", password)
        key, _ = catalog(node, mock)
        claude = anthropic.Anthropic(base_url=node.url, api_key=key["key"], max_retries=0, timeout=20)
        m = claude.messages.with_raw_response.create(
            model="chat", max_tokens=50, messages=[{"role": "user", "content": "Hello"}],
            metadata={"user_id": "user-7"})
        request_id = m.headers["x-request-id"]
        with claude.messages.stream(model="chat", max_tokens=50, messages=[{"role": "user", "content": "Hi"}]) as s:
            s.until_done()
        eventually(lambda: sum(r["surface"] == "messages" for r in all_records(node)) == 2, within=5)
        recs = [r for r in all_records(node) if r["surface"] == "messages"]
        assert all(r["dialect"] == "anthropic" and r["status"] == 200 for r in recs)
        assert all(r["input_tokens"] > 0 and r["output_tokens"] > 0 and r["cost_usd"] > 0 for r in recs)
        one = next(r for r in recs if r["request_id"] == request_id)
        assert one["end_user"] == "user-7" and one["stream"] is False
        assert any(r["stream"] for r in recs)
    finally:
        node.stop()
