"""Tool calling in chat completions, with the official `openai` client against a real server
and the bundled model (docs/tools.md): calls whole and streamed, parallel and named, arguments
valid against the function's schema, a tool result fed back, and 400s for bad tools.

Greedy decoding (temperature 0) makes the streamed and the whole answer the same text, so the
stream must accumulate to exactly the same calls."""

from __future__ import annotations

import json

import jsonschema
import openai
import pytest

from conftest import CHAT
from test_user_models import tiny_hf_model  # noqa: F401 - a fixture

WEATHER = {"type": "object", "properties": {"city": {"type": "string", "maxLength": 20},
                                            "unit": {"enum": ["celsius", "fahrenheit"]}},
           "required": ["city", "unit"], "additionalProperties": False}
ADD = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"type": "integer"}},
       "required": ["a", "b"], "additionalProperties": False}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Get the weather in a city",
                                           "parameters": WEATHER, "strict": True}},
         {"type": "function", "function": {"name": "add", "description": "Add two integers", "parameters": ADD}}]
SCHEMAS = {"get_weather": WEATHER, "add": ADD}
ASK = [{"role": "user", "content": "What is the weather in Paris?"}]


def _valid(calls) -> list[tuple[str, dict]]:
    """(name, arguments) of each call, after checking its arguments against the function's schema."""
    out = []
    for call in calls:
        assert call.type == "function" and call.id.startswith("call_")
        arguments = json.loads(call.function.arguments)
        jsonschema.validate(arguments, SCHEMAS[call.function.name])
        out.append((call.function.name, arguments))
    return out


def _create(client, **kwargs):
    return client.chat.completions.create(model=CHAT, messages=kwargs.pop("messages", ASK), tools=TOOLS,
                                          temperature=0, max_tokens=kwargs.pop("max_tokens", 48), **kwargs)


def test_required_call_round_trip_whole_and_streamed(server):
    client = server.client()
    whole = _create(client, tool_choice="required", parallel_tool_calls=False)
    choice = whole.choices[0]
    assert choice.finish_reason == "tool_calls", choice
    assert choice.message.content is None
    assert len(choice.message.tool_calls) == 1
    expected = _valid(choice.message.tool_calls)

    with client.chat.completions.stream(model=CHAT, messages=ASK, tools=TOOLS, tool_choice="required",
                                        parallel_tool_calls=False, temperature=0, max_tokens=48) as stream:
        events = [e for e in stream]
        streamed = stream.get_final_completion()
    assert streamed.choices[0].finish_reason == "tool_calls"
    assert _valid(streamed.choices[0].message.tool_calls) == expected
    # OpenAI's shape: the first delta of a call has its id, type and name with arguments "",
    # the later ones only argument fragments.
    deltas = [c.choices[0].delta.tool_calls for c in (e.chunk for e in events if e.type == "chunk")
              if c.choices and c.choices[0].delta.tool_calls]
    first, rest = deltas[0][0], [d[0] for d in deltas[1:]]
    assert first.id.startswith("call_") and first.type == "function" and first.function.name == expected[0][0]
    assert first.function.arguments == ""
    assert rest and all(d.id is None and d.function.name is None and d.function.arguments for d in rest)
    assert "".join(d.function.arguments for d in rest) == streamed.choices[0].message.tool_calls[0].function.arguments


def test_named_tool_choice_calls_that_function(server):
    answer = _create(server.client(), messages=[{"role": "user", "content": "What is 2 plus 3?"}],
                     tool_choice={"type": "function", "function": {"name": "add"}}, parallel_tool_calls=False)
    calls = _valid(answer.choices[0].message.tool_calls)
    assert [name for name, _ in calls] == ["add"]


def test_parallel_calls_stream_as_separate_indices(server):
    """With parallel_tool_calls (the default) the model may call several functions; each call
    is its own index in the stream with its own id, and the deltas accumulate to the calls the
    client's stream helper reports (the whole-answer equivalence is the round trip test's)."""
    messages = [{"role": "user", "content": "What is the weather in Paris and in Rome?"}]
    calls: dict[int, dict] = {}
    with server.client().chat.completions.stream(model=CHAT, messages=messages, tools=TOOLS,
                                                 tool_choice="required", temperature=0, max_tokens=128) as stream:
        for event in stream:
            chunk = event.chunk if event.type == "chunk" else None
            for delta in (chunk.choices[0].delta.tool_calls or []) if chunk and chunk.choices else []:
                call = calls.setdefault(delta.index, {"id": delta.id, "name": delta.function.name, "arguments": ""})
                call["arguments"] += delta.function.arguments or ""
        final = stream.get_final_completion().choices[0]
    assert final.finish_reason == "tool_calls", final
    expected = _valid(final.message.tool_calls)
    assert sorted(calls) == list(range(len(expected)))
    assert len({calls[i]["id"] for i in calls}) == len(calls)
    assert [(calls[i]["name"], json.loads(calls[i]["arguments"])) for i in sorted(calls)] == expected


def test_tool_result_fed_back_gives_a_text_answer(server):
    messages = ASK + [
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": '{"city": "Paris", "unit": "celsius"}'}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": '{"temperature": 21, "sky": "sunny"}'}]
    answer = _create(server.client(), messages=messages, tool_choice="none", max_tokens=24)
    choice = answer.choices[0]
    assert choice.finish_reason in ("stop", "length")
    assert choice.message.tool_calls is None and choice.message.content


def test_auto_answers_text_or_valid_calls(server):
    answer = _create(server.client(), max_tokens=48, parallel_tool_calls=False)
    choice = answer.choices[0]
    if choice.message.tool_calls:  # the model's decision: either is a well-formed answer
        assert choice.finish_reason == "tool_calls" and choice.message.content is None
        _valid(choice.message.tool_calls)
    else:
        assert choice.message.content and not choice.message.content.startswith("<tool_call>")


def test_a_model_without_constrained_decoding_refuses_forced_calls(server, tiny_hf_model):  # noqa: F811
    """A transformers-served model cannot force a call (400 naming tool_choice); under 'auto'
    it answers freely, read as text unless it writes the call format."""
    model = f"tiny-tools-{server.backend}"
    server.offline("models", "add", str(tiny_hf_model), "--id", model)
    client = server.client()
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, tool_choice="required", max_tokens=4)
    assert caught.value.body["param"] == "tool_choice" and "auto" in caught.value.body["message"]
    answer = client.chat.completions.create(model=model, messages=ASK, tools=TOOLS, max_tokens=4, temperature=0)
    assert answer.choices[0].message.tool_calls is None and answer.choices[0].message.content


BAD = [
    ({"tool_choice": {"type": "function", "function": {"name": "nope"}}}, "tool_choice.function.name"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"enum": []}}}}}]}, "tools[0].function.parameters"),
    ({"tools": [{"type": "function", "function": {"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"$ref": "https://example.com/s.json"}}}}}]},
     "tools[0].function.parameters"),
    ({"tools": [TOOLS[1], TOOLS[1]]}, "tools[1].function.name"),
    ({"tools": [{"type": "function", "function": {"name": "has space"}}]}, "tools[0].function.name"),
    ({"tools": [{"type": "retrieval"}]}, "tools[0].type"),
    ({"tool_choice": "sometimes"}, "tool_choice"),
    ({"tools": None, "tool_choice": "required"}, "tool_choice"),
    ({"response_format": {"type": "json_object"}}, "response_format"),
    ({"messages": [{"role": "tool", "content": "21"}]}, "messages[0].tool_call_id"),
    ({"messages": [{"role": "assistant", "content": None, "tool_calls": [{"id": "c", "type": "function"}]},
                   {"role": "user", "content": "hi"}]}, "messages[0].tool_calls[0]"),
]


@pytest.mark.parametrize("change,param", BAD, ids=[p for _, p in BAD])
def test_bad_tool_requests_are_400(server, change, param):
    body = {"model": CHAT, "messages": ASK, "tools": TOOLS, "max_tokens": 4, **change}
    body = {k: v for k, v in body.items() if v is not None}
    with pytest.raises(openai.BadRequestError) as caught:
        server.client().chat.completions.create(**body)
    error = caught.value.body
    assert caught.value.status_code == 400 and error["type"] == "invalid_request_error"
    assert error["param"] == param, error
    assert error["message"]
