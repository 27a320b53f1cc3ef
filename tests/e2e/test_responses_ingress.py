"""Gatehouse's OpenAI Responses ingress (/v1/responses, stateless) with the official OpenAI Python
SDK's `responses.create` and `responses.stream`, against models served by OpenAI's own Responses
API (passed through) and by Anthropic-, Gemini- and chat-dialect upstreams (translated).
"""

import json

import openai
import pytest

MODELS = ["gpt", "claude", "gemini"]
TOOLS = [{"type": "function", "name": "get_weather", "description": "Weather in a city",
          "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.mark.parametrize("model", MODELS)
def test_responses_create(client, model):
    r = client.responses.create(model=model, instructions="Be brief.", input="Hello")
    assert r.status == "completed" and r.output_text
    assert r.usage.input_tokens > 0 and r.usage.output_tokens > 0


@pytest.mark.parametrize("model", MODELS)
def test_responses_stream(client, model):
    deltas = []
    with client.responses.stream(model=model, input=[{"role": "user", "content": "Hello"}]) as s:
        for event in s:
            if event.type == "response.output_text.delta":
                deltas.append(event.delta)
        final = s.get_final_response()
    assert deltas and final.output_text == "".join(deltas)
    assert final.status == "completed"


@pytest.mark.parametrize("model", MODELS)
def test_function_calls_and_their_outputs(client, model):
    first = client.responses.create(model=model, input="Weather in Paris?", tools=TOOLS, tool_choice="required")
    call = next(o for o in first.output if o.type == "function_call")
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments), dict)
    second = client.responses.create(model=model, tools=TOOLS, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18C, sunny"},
    ])
    assert second.output_text


@pytest.mark.parametrize("model", MODELS)
def test_streamed_function_call_arguments(client, model):
    with client.responses.stream(model=model, input="Weather?", tools=TOOLS, tool_choice="required") as s:
        pieces = [e.delta for e in s if e.type == "response.function_call_arguments.delta"]
        final = s.get_final_response()
    call = next(o for o in final.output if o.type == "function_call")
    assert "".join(pieces) == call.arguments


@pytest.mark.parametrize("model", ["claude", "gemini"])
def test_json_schema_output(client, model):
    r = client.responses.create(model=model, input="A city", text={"format": {
        "type": "json_schema", "name": "city",
        "schema": {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"],
                   "additionalProperties": False}, "strict": True}})
    assert isinstance(json.loads(r.output_text)["name"], str)


def test_errors_are_the_sdks_exceptions(client):
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="x")
    with pytest.raises(openai.BadRequestError) as e:
        client.responses.create(model="claude", input="x", previous_response_id="resp_1")
    assert "previous_response_id" in str(e.value)
