"""Continuous batching in the llama.cpp engine (engines/llama_batch.py), in-process with the
bundled GGUF: batched greedy output equals output alone up to near-ties, requests join a running batch, prompt
prefixes are reused, each sequence keeps its own sampling features, cancel frees the slot."""

from __future__ import annotations

import json
import threading

import pytest

from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.engines.llama_cpp import LlamaCppEngine
from test_tenancy import bundled_gguf

PROMPTS = ["Tell me about the moon.", "What is 2+2?", "Write a haiku about cats.", "Name three colors."]


@pytest.fixture(scope="module")
def engine():
    # No idle prompt cache: every run starts from the same (empty) KV state.
    return LlamaCppEngine("smollm2", str(bundled_gguf()), context_length=256, threads=2, slots=4,
                          cache_tokens=0)


def request(content: str, **params) -> GenerateRequest:
    return GenerateRequest(SamplingParams(**params), messages=[{"role": "user", "content": content}])


def run(engine, req: GenerateRequest, keep: bool = False) -> tuple:
    """(text, last chunk) — and every chunk too with keep=True."""
    chunks = list(engine.generate(req))
    text = "".join(c.text for c in chunks)
    return (text, chunks[-1], chunks) if keep else (text, chunks[-1])


def run_together(engine, reqs: list[GenerateRequest], keep: bool = False) -> list[tuple]:
    """Submit all requests at once from separate threads (as the threaded actor does)."""
    out: dict[int, tuple] = {}
    threads = [threading.Thread(target=lambda i=i, r=r: out.__setitem__(i, run(engine, r, keep)))
               for i, r in enumerate(reqs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    return [out[i] for i in range(len(reqs))]


def token_logprobs(result) -> list:
    return [lp for c in result[2] for lp in c.logprobs]


def test_greedy_batched_equals_alone_up_to_near_ties(engine):
    """llama.cpp's kernels sum in a batch-size-dependent order, so a batched greedy run may
    pick the runner-up where two tokens are (almost) tied; anywhere else it must agree."""
    params = dict(max_tokens=24, temperature=0, logprobs=True, top_logprobs=2)
    alone = [run(engine, request(p, **params), keep=True) for p in PROMPTS]
    steps_before = engine.scheduler.stats["steps"]
    together = run_together(engine, [request(p, **params) for p in PROMPTS], keep=True)
    agreed = 0
    for a, b in zip(alone, together):
        ta, tb = token_logprobs(a), token_logprobs(b)
        k = next((i for i, (x, y) in enumerate(zip(ta, tb)) if x.token != y.token), None)
        if k is None:
            assert (a[0], a[1].finish_reason, len(ta)) == (b[0], b[1].finish_reason, len(tb))
            agreed += 1
            continue
        best, second = ta[k].top_logprobs[:2]
        assert tb[k].token == second.token, (k, ta[k], tb[k])  # the batched run took the runner-up
        assert best.logprob - second.logprob < 0.3, (k, best, second)  # ... of a near-tie
    assert agreed >= 2  # most prompts have no near-tie at all in 24 tokens
    assert engine.scheduler.stats["max_batch_seqs"] == 4
    # Decoded together: far fewer steps than the 4 × 24 tokens one at a time would take.
    assert engine.scheduler.stats["steps"] - steps_before < 2 * 24


def test_each_sequence_keeps_its_own_features(engine):
    plain, _ = run(engine, request(PROMPTS[0], max_tokens=20, temperature=0))
    stop = plain[12:16]
    schema = {"type": "object", "properties": {"name": {"type": "string"}}, "required": ["name"]}
    reqs = [request(PROMPTS[0], max_tokens=20, temperature=0, stop=[stop]),
            request(PROMPTS[1], max_tokens=5, temperature=0, logprobs=True, top_logprobs=3),
            request("Give me a JSON object with a name.", max_tokens=40, temperature=0, json_schema=schema)]
    out: dict[int, list] = {}
    threads = [threading.Thread(target=lambda i=i, r=r: out.__setitem__(i, list(engine.generate(r))))
               for i, r in enumerate(reqs)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=600)
    stopped, logged, constrained = (out[i] for i in range(3))
    assert "".join(c.text for c in stopped) == plain[:plain.find(stop)]
    assert stopped[-1].finish_reason == "stop"
    logprobs = [lp for c in logged for lp in c.logprobs]
    assert len(logprobs) == 5 and all(len(lp.top_logprobs) == 3 for lp in logprobs)
    assert all(lp.top_logprobs[0].logprob >= lp.logprob for lp in logprobs)
    text = "".join(c.text for c in constrained)
    if constrained[-1].finish_reason == "stop":
        assert isinstance(json.loads(text)["name"], str)
    else:  # ran out of tokens inside the object: still the grammar's shape so far
        assert text.lstrip().startswith("{")


def test_request_joins_a_running_batch_and_cancel_frees_the_slot(engine):
    long = engine.generate(request(PROMPTS[0], max_tokens=200, temperature=0))
    first = next(long)  # the long one is now decoding
    assert first.finish_reason is None
    text, last = run(engine, request(PROMPTS[1], max_tokens=8, temperature=0))
    assert last.completion_tokens == 8  # it ran while the long one was still generating
    assert engine.scheduler.active() == 1
    long.close()  # the client went away
    for _ in range(200):
        if engine.scheduler.active() == 0:
            break
        threading.Event().wait(0.05)
    assert engine.scheduler.active() == 0


def test_shared_prompt_prefix_is_reused():
    engine = LlamaCppEngine("smollm2", str(bundled_gguf()), context_length=256, threads=2, slots=2)
    system = {"role": "system", "content": "You are a terse assistant for the rixin platform. " * 4}
    ask = lambda q: GenerateRequest(SamplingParams(max_tokens=4, temperature=0),  # noqa: E731
                                    messages=[system, {"role": "user", "content": q}])
    _, first = run(engine, ask("What is Ray?"))
    assert engine.scheduler.stats["prompt_tokens_reused"] == 0
    _, second = run(engine, ask("What is llama.cpp?"))
    reused = engine.scheduler.stats["prompt_tokens_reused"]
    assert reused >= 40 and reused < second.prompt_tokens  # the system prompt, not the question


def test_a_prefix_held_by_a_generating_slot_is_copied_to_a_new_one():
    # Slot streams are separate (kv_unified = false): the shared system prompt of a request
    # that is still generating is copied into the newcomer's stream, not read again.
    engine = LlamaCppEngine("smollm2", str(bundled_gguf()), context_length=512, threads=2, slots=2)
    system = {"role": "system", "content": "You answer questions about the rixin platform in detail. " * 5}
    ask = lambda q, n: GenerateRequest(SamplingParams(max_tokens=n, temperature=0),  # noqa: E731
                                       messages=[system, {"role": "user", "content": q}])
    alone_text, _ = run(engine, ask("What is llama.cpp?", 12))
    fresh = LlamaCppEngine("smollm2", str(bundled_gguf()), context_length=512, threads=2, slots=2)
    long_running = fresh.generate(ask("Tell me a long story about Ray clusters.", 200))
    next(long_running)  # the first slot now holds the system prompt and is generating
    text, last = run(fresh, ask("What is llama.cpp?", 12))
    long_running.close()
    reused = fresh.scheduler.stats["prompt_tokens_reused"]
    assert reused >= 50 and reused < last.prompt_tokens
    assert text == alone_text  # same answer as computed without the copy
