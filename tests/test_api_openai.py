"""The official `openai` client against a live `rixin up`, on every database backend."""

from __future__ import annotations

import base64
import json

import jsonschema
import numpy as np
import openai
import pytest

from conftest import CHAT, EMBED

HELLO = [{"role": "user", "content": "Say hello to Ada."}]


def test_models_list_shows_bundled_models(server):
    models = {m.id: m for m in server.client().models.list()}
    assert {CHAT, EMBED} <= set(models)
    for model in models.values():
        assert model.owned_by and model.created > 1_600_000_000
    assert server.client().models.retrieve(CHAT).id == CHAT


def test_chat_non_streaming_with_usage(server):
    r = server.client().chat.completions.create(model=CHAT, messages=HELLO, max_tokens=12, temperature=0)
    choice = r.choices[0]
    assert r.object == "chat.completion" and r.model == CHAT and r.id.startswith("chatcmpl-")
    assert choice.message.role == "assistant" and choice.message.content
    assert choice.finish_reason in ("stop", "length")
    assert 0 < r.usage.completion_tokens <= 12 and r.usage.prompt_tokens > 5
    assert r.usage.total_tokens == r.usage.prompt_tokens + r.usage.completion_tokens


def test_max_tokens_and_max_completion_tokens_cap_the_output(server):
    c = server.client()
    prompt = [{"role": "user", "content": "Write a very long story about a dragon."}]
    for kwargs in ({"max_tokens": 3}, {"max_completion_tokens": 3}):
        r = c.chat.completions.create(model=CHAT, messages=prompt, temperature=0, **kwargs)
        assert r.usage.completion_tokens == 3 and r.choices[0].finish_reason == "length"


def test_streaming_matches_non_streaming_and_reports_usage(server):
    c = server.client()
    kwargs = dict(model=CHAT, messages=HELLO, max_tokens=16, temperature=0)
    full = c.chat.completions.create(**kwargs).choices[0].message.content
    chunks = list(c.chat.completions.create(stream=True, stream_options={"include_usage": True}, **kwargs))
    assert chunks[0].choices[0].delta.role == "assistant"
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == full
    finishes = [ch.choices[0].finish_reason for ch in chunks if ch.choices and ch.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].choices == [] and chunks[-1].usage.completion_tokens > 0
    assert all(ch.usage is None for ch in chunks[:-1])


def test_stream_without_include_usage_has_no_usage(server):
    chunks = list(server.client().chat.completions.create(model=CHAT, messages=HELLO, max_tokens=4, stream=True))
    assert chunks and all(getattr(ch, "usage", None) is None for ch in chunks)


def test_stop_sequence_ends_the_text_before_it(server):
    c = server.client()
    kwargs = dict(model=CHAT, messages=[{"role": "user", "content": "Count from 1 to 20, separated by commas."}],
                  max_tokens=60, temperature=0)
    full = c.chat.completions.create(**kwargs).choices[0].message.content
    stop = full[len(full) // 2: len(full) // 2 + 2]
    assert stop.strip(), f"no usable stop string in {full!r}"
    r = c.chat.completions.create(stop=[stop], **kwargs)
    assert r.choices[0].finish_reason == "stop"
    assert stop not in r.choices[0].message.content
    assert full.startswith(r.choices[0].message.content)


def test_same_seed_same_text_different_seed_differs(server):
    c = server.client()
    kwargs = dict(model=CHAT, messages=[{"role": "user", "content": "Invent a name for a cat."}],
                  max_tokens=24, temperature=1.0, top_p=1.0)
    a = c.chat.completions.create(seed=1234, **kwargs).choices[0].message.content
    b = c.chat.completions.create(seed=1234, **kwargs).choices[0].message.content
    assert a == b
    others = {c.chat.completions.create(seed=s, **kwargs).choices[0].message.content for s in (1, 2, 3)}
    assert len(others | {a}) > 1


def test_n_choices_are_indexed_and_counted(server):
    r = server.client().chat.completions.create(model=CHAT, messages=HELLO, max_tokens=8, n=3,
                                                temperature=1.0, seed=7)
    assert [ch.index for ch in r.choices] == [0, 1, 2]
    assert r.usage.completion_tokens == sum(
        len(ch.logprobs.content) if ch.logprobs else 0 for ch in r.choices) or r.usage.completion_tokens >= 3
    single = server.client().chat.completions.create(model=CHAT, messages=HELLO, max_tokens=1)
    assert r.usage.prompt_tokens == single.usage.prompt_tokens  # the prompt is counted once


def test_logprobs_and_top_logprobs(server):
    r = server.client().chat.completions.create(model=CHAT, messages=HELLO, max_tokens=6, temperature=0,
                                                logprobs=True, top_logprobs=3)
    content = r.choices[0].logprobs.content
    assert len(content) == r.usage.completion_tokens
    assert "".join(t.token for t in content) == r.choices[0].message.content
    for token in content:
        assert token.logprob <= 0 and len(token.top_logprobs) == 3
        tops = [t.logprob for t in token.top_logprobs]
        assert tops == sorted(tops, reverse=True)
        assert token.top_logprobs[0].token == token.token  # greedy picks the most likely
        assert bytes(token.bytes).decode("utf-8", "replace") == token.token


@pytest.mark.parametrize("temperature", [0, 0.7])
def test_json_object_mode_returns_json(server, temperature):
    prompt = 'What is 2+2? Answer in JSON like {"answer": 1}.'
    r = server.client().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": prompt}], seed=1,
        response_format={"type": "json_object"}, max_tokens=200, temperature=temperature)
    assert r.choices[0].finish_reason == "stop"
    assert isinstance(json.loads(r.choices[0].message.content), dict)


SCHEMA = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "maxLength": 12},
        "age": {"type": "integer", "minimum": 0},
        "mood": {"type": "string", "enum": ["happy", "sad"]},
    },
    "required": ["name", "age", "mood"],
    "additionalProperties": False,
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_json_schema_output_is_valid_against_the_schema(server, seed):
    r = server.client().chat.completions.create(
        model=CHAT, messages=[{"role": "user", "content": "Make up a person."}], max_tokens=120,
        temperature=0.8, seed=seed,
        response_format={"type": "json_schema", "json_schema": {"name": "person", "schema": SCHEMA, "strict": True}})
    assert r.choices[0].finish_reason == "stop"
    jsonschema.validate(json.loads(r.choices[0].message.content), SCHEMA)


def test_completions_for_raw_prompts(server):
    c = server.client()
    r = c.completions.create(model=CHAT, prompt="The capital of France is", max_tokens=5, temperature=0)
    assert r.object == "text_completion" and r.choices[0].text and r.usage.completion_tokens <= 5
    batch = c.completions.create(model=CHAT, prompt=["One, two,", "Red, green,"], max_tokens=4,
                                 temperature=0, logprobs=2, echo=True)
    assert [ch.index for ch in batch.choices] == [0, 1]
    assert batch.choices[0].text.startswith("One, two,") and batch.choices[1].text.startswith("Red, green,")
    assert len(batch.choices[0].logprobs.tokens) == len(batch.choices[0].logprobs.token_logprobs)
    assert all(len(t) == 2 for t in batch.choices[0].logprobs.top_logprobs)
    streamed = "".join(ch.choices[0].text for ch in c.completions.create(
        model=CHAT, prompt="The capital of France is", max_tokens=5, temperature=0, stream=True) if ch.choices)
    assert streamed == r.choices[0].text


def test_embeddings_float_and_base64_agree(server):
    c = server.client()
    r = c.embeddings.create(model=EMBED, input=["a cat sat on the mat", "a kitten on a rug", "stock market crash"])
    vectors = np.array([d.embedding for d in r.data])
    assert vectors.shape == (3, 384) and r.usage.prompt_tokens > 0
    assert np.allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-4)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]
    single = c.embeddings.create(model=EMBED, input="a cat sat on the mat", encoding_format="base64")
    raw = single.data[0].embedding
    decoded = np.frombuffer(base64.b64decode(raw), dtype="<f4") if isinstance(raw, str) else np.array(raw)
    assert np.allclose(decoded, vectors[0], atol=1e-5)


def test_embeddings_dimensions_rejected(server):
    with pytest.raises(openai.BadRequestError) as e:
        server.client().embeddings.create(model=EMBED, input="x", dimensions=64)
    assert e.value.body["param"] == "dimensions"


def test_health_and_metrics(server):
    http = server.http()
    assert http.get("/health").json()["status"] == "ok"
    server.client().chat.completions.create(model=CHAT, messages=HELLO, max_tokens=2)
    text = http.get("/metrics").text  # server.http() sends the admin key, which /metrics needs
    for name in ("rixin_requests_total", "rixin_prompt_tokens_total", "rixin_completion_tokens_total",
                 "rixin_request_duration_seconds_bucket", "rixin_engine_queue_depth"):
        assert name in text
    line = next(l for l in text.splitlines() if l.startswith(f'rixin_completion_tokens_total{{model="{CHAT}"}}'))
    assert float(line.split()[-1]) >= 2
