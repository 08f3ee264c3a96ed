"""The llama.cpp engine in-process: stop strings across tokens, context checks, seeds."""

from __future__ import annotations

import pytest

from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.engines.llama_cpp import LlamaCppEngine, StopScanner
from rixin.errors import ContextLengthExceeded, InvalidRequest
from test_tenancy import bundled_gguf


def scan(pieces: list[str], stops: list[str]) -> tuple[str, bool]:
    scanner, out = StopScanner(stops), ""
    for piece in pieces:
        text, hit = scanner.feed(piece)
        out += text
        if hit:
            return out, True
    return out + scanner.flush(), False


@pytest.mark.parametrize("pieces, stops, expected", [
    (["Hello", " wor", "ld"], ["world"], ("Hello ", True)),
    (["ab", "c", "d"], ["cd"], ("ab", True)),
    (["a", "b", "c"], ["x"], ("abc", False)),
    (["The end", "."], ["end."], ("The ", True)),
    (["wo", "w", "orld"], ["world"], ("wo", True)),
    (["wow", "xworld"], ["world"], ("wowx", True)),
    (["x", "<", "|", "im"], ["<|im_end|>"], ("x<|im", False)),
    (["12", "34"], ["3", "23"], ("1", True)),
    (["abc"], [], ("abc", False)),
])
def test_stop_scanner(pieces, stops, expected):
    assert scan(pieces, stops) == expected


@pytest.fixture(scope="module")
def engine():
    return LlamaCppEngine("smollm2", str(bundled_gguf()), context_length=256, threads=2)


def generate(engine, **params):
    messages = params.pop("messages", [{"role": "user", "content": "Tell me about the moon."}])
    chunks = list(engine.generate(GenerateRequest(SamplingParams(**params), messages=messages)))
    return "".join(c.text for c in chunks), chunks[-1]


def test_last_chunk_has_counts(engine):
    text, last = generate(engine, max_tokens=8, temperature=0)
    assert text and last.finish_reason == "length" and last.completion_tokens == 8
    request = GenerateRequest(SamplingParams(), messages=[{"role": "user", "content": "Tell me about the moon."}])
    assert last.prompt_tokens == engine.count_prompt_tokens(request)


def test_context_is_checked_before_generating(engine):
    with pytest.raises(ContextLengthExceeded):
        generate(engine, max_tokens=200, messages=[{"role": "user", "content": "word " * 100}])
    with pytest.raises(ContextLengthExceeded):
        generate(engine, messages=[{"role": "user", "content": "word " * 400}])


def test_without_max_tokens_fills_at_most_the_context(engine):
    text, last = generate(engine, temperature=0)
    assert last.prompt_tokens + last.completion_tokens <= 256


def test_seeded_sampling_is_reproducible(engine):
    a, _ = generate(engine, max_tokens=16, temperature=1.0, seed=42)
    b, _ = generate(engine, max_tokens=16, temperature=1.0, seed=42)
    assert a == b


def test_unusable_schema_is_invalid_request(engine):
    with pytest.raises(InvalidRequest) as e:
        generate(engine, max_tokens=4, json_schema={"type": "object", "properties": {"a": {"$ref": "#/nowhere"}}})
    assert e.value.param == "response_format.json_schema.schema"
