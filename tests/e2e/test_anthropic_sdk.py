"""The official Anthropic Python SDK against the mock's Anthropic dialect.

This suite proves that the mock the gateway is tested against speaks Anthropic as the official
client expects: message shapes, the full stream event sequence, tool use with streamed input,
thinking, errors. Gatehouse's own Anthropic ingress is tested in test_anthropic_ingress.py.
"""

import anthropic
import pytest

from conftest import UPSTREAM_KEY

TOOLS = [{"name": "get_weather", "description": "Weather", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture
def claude(mock):
    return anthropic.Anthropic(base_url=f"http://{mock}", api_key=UPSTREAM_KEY, max_retries=0)


def test_messages_create(claude):
    m = claude.messages.create(model="claude-haiku-4-5", max_tokens=100, system="Be brief.",
                               messages=[{"role": "user", "content": "Hello"}])
    assert m.type == "message" and m.role == "assistant" and m.stop_reason == "end_turn"
    assert m.content[0].type == "text" and len(m.content[0].text.split(" ")) == 16
    assert m.usage.output_tokens == 16


def test_messages_stream_full_event_sequence(claude):
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=100,
                                messages=[{"role": "user", "content": "Hello"}]) as s:
        kinds = [e.type for e in s]
        final = s.get_final_message()
    assert kinds[0] == "message_start" and kinds[-1] == "message_stop"
    assert {"content_block_start", "content_block_delta", "content_block_stop", "message_delta"} <= set(kinds)
    assert final.content[0].text and final.stop_reason == "end_turn"


def test_tool_use_streams_its_input(claude):
    with claude.messages.stream(model="claude-haiku-4-5", max_tokens=100, tools=TOOLS,
                                messages=[{"role": "user", "content": "Weather?"}]) as s:
        json_pieces = sum(1 for e in s if e.type == "input_json")
        final = s.get_final_message()
    assert json_pieces >= 2
    block = final.content[0]
    assert block.type == "tool_use" and block.name == "get_weather" and block.input == {"city": "mock"}
    assert final.stop_reason == "tool_use"


def test_thinking_blocks(claude):
    m = claude.messages.create(model="claude-haiku-4-5", max_tokens=2000,
                               thinking={"type": "enabled", "budget_tokens": 1024},
                               messages=[{"role": "user", "content": "Think"}])
    assert [b.type for b in m.content] == ["thinking", "text"]


def test_errors_are_the_sdks_exceptions(claude):
    with pytest.raises(anthropic.RateLimitError):
        claude.messages.create(model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}],
                               extra_headers={"x-mock-fault": "429"})
    with pytest.raises(anthropic.AuthenticationError):
        claude.with_options(api_key="wrong").messages.create(
            model="m", max_tokens=10, messages=[{"role": "user", "content": "x"}])
