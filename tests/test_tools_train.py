"""Fine-tuning files with tool calls (OpenAI's format: `tools` per example, assistant
`tool_calls`, `tool` messages): the format checker accepts them, training renders them as
serving does (rixin/toolcalls.render, one renderer) with the loss on the calls and the final
answer only, and the recipe trains a few steps on them. Also the format's own pieces: the
grammar llama.cpp must accept, and reading a reply back into calls."""

from __future__ import annotations

import json

import pytest

from rixin import toolcalls
from rixin.data.formats import check_file
from rixin.errors import InvalidRequest
from rixin.train.data import encode_chat, encode_record
from rixin.train.recipe import train
from test_train_data import tokenizer, trained_text  # noqa: F401 - a fixture
from test_train_recipe import config, losses
from test_user_models import tiny_hf_model  # noqa: F401 - a fixture

WEATHER = {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}
TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                           "parameters": WEATHER}}]


def example(city: str, degrees: int) -> dict:
    return {"tools": TOOLS, "messages": [
        {"role": "user", "content": f"Weather in {city}?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_1", "type": "function",
             "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}]},
        {"role": "tool", "tool_call_id": "call_1", "content": json.dumps({"degrees": degrees})},
        {"role": "assistant", "content": f"It is {degrees} degrees in {city}."}]}


@pytest.fixture(scope="module")
def tool_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tools") / "train.jsonl"
    cities = ["Paris", "Rome", "Oslo", "Lima", "Cairo", "Quito", "Bern", "Riga", "Kyiv", "Baku", "Doha", "Suva"]
    path.write_text("".join(json.dumps(example(c, 10 + i)) + "\n" for i, c in enumerate(cities)))
    return path


def test_a_tool_call_file_passes_the_format_check(tool_file):
    report = check_file(tool_file)
    assert report.problems == [] and report.examples == 12


def test_training_renders_calls_as_serving_does_and_trains_on_them(tokenizer):  # noqa: F811
    record = example("Paris", 21)
    encoded = encode_record(tokenizer, record)
    text = trained_text(tokenizer, encoded)
    served = toolcalls.render(
        [{**m, "content": m["content"]} for m in record["messages"]], toolcalls.check_tools(TOOLS))
    call = served[2]["content"]  # system (tools), user, assistant call, user (tool result), assistant
    assert call == '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>'
    assert call in text and "It is 21 degrees in Paris." in text
    assert "<tool_response>" not in text and "<tools>" not in text  # prompt parts: no loss
    whole = tokenizer.decode(encoded.input_ids)
    assert whole == tokenizer.apply_chat_template(served, tokenize=False)
    assert encode_chat(tokenizer, record["messages"], TOOLS).input_ids == encoded.input_ids


def test_the_recipe_trains_a_few_steps_on_tool_calls(tmp_path, tiny_hf_model, tool_file):  # noqa: F811
    train(config(tmp_path, tiny_hf_model, tool_file, n_epochs=1, max_seq_length=256))
    curve = losses(tmp_path)
    assert len(curve) == 3 and all(0 < v < 20 for v in curve.values()), curve


def test_the_grammar_is_one_llama_cpp_accepts():
    import llama_cpp
    from llama_cpp import Llama

    from test_tenancy import bundled_gguf

    functions = toolcalls.check_tools(TOOLS + [{"type": "function", "function": {"name": "noop"}}])
    llm = Llama(str(bundled_gguf()), vocab_only=True, verbose=False)
    for choice in (toolcalls.Choice("auto"), toolcalls.Choice("required", parallel=False),
                   toolcalls.Choice("named", "noop")):
        text = toolcalls.grammar(functions, choice)
        sampler = llama_cpp.llama_sampler_init_grammar(llm._model.vocab, text.encode(), b"root")
        assert sampler, text
        llama_cpp.llama_sampler_free(sampler)
    assert toolcalls.grammar(functions, toolcalls.Choice("none")) is None


def test_a_reply_is_read_the_same_whole_and_in_pieces():
    reply = ('<tool_call>\n{"name": "add", "arguments": {"a": 1, "b": {"c": "}"}}}\n</tool_call>\n'
             '<tool_call>\n{"name": "get_weather", "arguments": {"city": "Rome"}}\n</tool_call>')
    kind, whole = toolcalls.scan(reply, final=True)
    assert kind == "calls" and [(c.name, json.loads(c.arguments)) for c in whole] == [
        ("add", {"a": 1, "b": {"c": "}"}}), ("get_weather", {"city": "Rome"})]
    seen: dict[int, str] = {}
    for end in range(len(reply) + 1):  # every prefix: arguments only ever grow
        kind, calls = toolcalls.scan(reply[:end], final=end == len(reply))
        assert kind in ("pending", "calls")
        for k, call in enumerate(calls):
            assert call.arguments.startswith(seen.get(k, ""))
            seen[k] = call.arguments
    assert [seen[0], seen[1]] == [c.arguments for c in whole]
    assert toolcalls.scan("Sunny.", final=False) == ("text", [])
    assert toolcalls.scan("<tool", final=False) == ("pending", [])


@pytest.mark.parametrize("tools,choice,param", [
    (TOOLS, {"type": "function", "function": {"name": "other"}}, "tool_choice.function.name"),
    (TOOLS + TOOLS, None, "tools[1].function.name"),
    ([{"type": "function", "function": {"name": "f", "parameters": {"type": "array"}}}], None,
     "tools[0].function.parameters"),
    (None, "auto", "tool_choice"),
])
def test_bad_tools_name_the_field(tools, choice, param):
    with pytest.raises(InvalidRequest) as caught:
        toolcalls.check_choice(choice, None, toolcalls.check_tools(tools))
    assert caught.value.param == param
