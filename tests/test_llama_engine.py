"""The llama.cpp engine in-process: stop strings across tokens, context checks, seeds."""

from __future__ import annotations

import pytest

from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.engines.llama_cpp import LlamaCppEngine
from rixin.engines.stops import StopScanner
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


def test_a_reader_that_falls_behind_gets_the_waiting_tokens_in_one_chunk(engine):
    import time

    request = GenerateRequest(SamplingParams(max_tokens=24, temperature=0, logprobs=True),
                              messages=[{"role": "user", "content": "Count from one to twenty."}])
    fast = list(engine.generate(request))
    slow = []
    for chunk in engine.generate(request):
        slow.append(chunk)
        time.sleep(0.25)  # several decode steps go by while this reader sleeps
    assert "".join(c.text for c in slow) == "".join(c.text for c in fast)
    assert [lp.token for c in slow for lp in c.logprobs] == [lp.token for c in fast for lp in c.logprobs]
    assert (slow[-1].finish_reason, slow[-1].completion_tokens) == (fast[-1].finish_reason, fast[-1].completion_tokens)
    assert len(slow) < len(fast)


def test_drain_stops_at_the_last_chunk_and_hands_back_an_error():
    import queue

    from rixin.engines.llama_cpp import drain, merge
    from rixin.engines.base import Chunk

    out = queue.SimpleQueue()
    for item in (Chunk("a"), Chunk("b"), RuntimeError("boom"), Chunk("never")):
        out.put(item)
    chunks, error = drain(out)
    assert merge(chunks).text == "ab" and str(error) == "boom"
    for item in (Chunk("c"), Chunk("d", finish_reason="length", completion_tokens=2), Chunk("next request")):
        out.put(item)
    out.get()  # "never"
    chunks, error = drain(out)
    last = merge(chunks)
    assert (last.text, last.finish_reason, last.completion_tokens, error) == ("cd", "length", 2, None)
    assert out.get_nowait().text == "next request"
