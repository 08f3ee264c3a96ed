"""Which weights a llama.cpp engine serves (engines/llama_cpp.py, docs/decisions/0006).

The bundled GGUF is Q4_1; the engine serves it from a Q8_0 copy because llama.cpp batches
Q8_0 much faster. The copy must be as faithful to the file's weights as llama.cpp's own Q4_1
arithmetic is: both are measured against an F16 copy, which holds every Q4_1 weight almost
exactly (F16 keeps 11 significant bits; a Q4_1 weight is a 4-bit step plus an F16 offset).
"""

from __future__ import annotations

import os

import numpy as np
import pytest

from rixin.engines.base import GenerateRequest, SamplingParams
from rixin.engines.llama_cpp import LlamaCppEngine, open_llama, serving_weights
from test_tenancy import bundled_gguf

TEXTS = [
    "<|im_start|>user\nWhat is the capital of France?<|im_end|>\n<|im_start|>assistant\nThe capital is Paris.",
    "def fibonacci(n):\n    if n < 2:\n        return n\n    return fibonacci(n - 1) + fibonacci(n - 2)",
    "The river ran past the old mill, where the miller's daughter sat every evening watching the water.",
]


def file_type(path: str) -> int:
    llm = open_llama(path, vocab_only=True, verbose=False)
    try:
        return int(llm.metadata["general.file_type"])
    finally:
        llm.close()


def log_probs(path: str) -> list[np.ndarray]:
    """Next-token log-probabilities at every position of every text."""
    llm = open_llama(path, n_ctx=256, logits_all=True, n_threads=2, verbose=False)
    try:
        out = []
        for text in TEXTS:
            ids = llm.tokenize(text.encode(), add_bos=False, special=True)
            llm.reset()
            llm.eval(ids)
            x = np.array(llm.scores[:len(ids)], dtype=np.float64)
            x -= x.max(-1, keepdims=True)
            out.append(x - np.log(np.exp(x).sum(-1, keepdims=True)))
        return out
    finally:
        llm.close()


def mean_kl(reference: list[np.ndarray], other: list[np.ndarray]) -> float:
    return float(np.mean(np.concatenate([(np.exp(p) * (p - q)).sum(-1) for p, q in zip(reference, other)])))


@pytest.fixture(scope="module")
def copies(tmp_path_factory):
    import llama_cpp

    work = tmp_path_factory.mktemp("weights")
    source = str(bundled_gguf())
    q8 = serving_weights(source, str(work / "cache"))
    f16 = str(work / "f16.gguf")
    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype, params.allow_requantize = llama_cpp.LLAMA_FTYPE_MOSTLY_F16, True
    assert llama_cpp.llama_model_quantize(source.encode(), f16.encode(), params) == 0
    return {"source": source, "q8_0": q8, "f16": f16, "cache": str(work / "cache")}


def test_a_q4_1_file_is_served_from_one_q8_0_copy(copies):
    assert file_type(copies["source"]) == 3  # LLAMA_FTYPE_MOSTLY_Q4_1
    assert copies["q8_0"] != copies["source"] and copies["q8_0"].startswith(copies["cache"])
    assert file_type(copies["q8_0"]) == 7  # LLAMA_FTYPE_MOSTLY_Q8_0
    made = os.stat(copies["q8_0"]).st_mtime_ns
    assert serving_weights(copies["source"], copies["cache"]) == copies["q8_0"]  # made once
    assert os.stat(copies["q8_0"]).st_mtime_ns == made
    assert [p for p in os.listdir(copies["cache"]) if p.endswith(".partial")] == []


def test_other_files_and_no_cache_are_served_as_they_are(copies):
    assert serving_weights(copies["source"], None) == copies["source"]
    assert serving_weights(copies["q8_0"], copies["cache"]) == copies["q8_0"]
    assert serving_weights(copies["f16"], copies["cache"]) == copies["f16"]


def test_the_q8_0_copy_is_as_faithful_as_llama_cpps_own_q4_1_arithmetic(copies):
    exact = log_probs(copies["f16"])
    native, copy = mean_kl(exact, log_probs(copies["source"])), mean_kl(exact, log_probs(copies["q8_0"]))
    # Measured: native 2.8e-3, copy 3.3e-3 nats; a Q4_0 re-quantisation would be 3.1e-1.
    assert copy < 2 * native, (copy, native)


def test_an_engine_on_the_copy_answers_a_long_prompt(copies):
    # On Intel CPUs with AMX, llama.cpp's AMX weight copies crash on batches of more than one
    # token: a prompt of many tokens is what would kill the engine (open_llama avoids them).
    engine = LlamaCppEngine("m", copies["source"], context_length=512, threads=2, slots=2,
                            weights_cache=copies["cache"])
    assert engine.weights == copies["q8_0"]
    story = "Once upon a time, a fox and a crow met by the river. " * 12
    chunks = list(engine.generate(GenerateRequest(SamplingParams(max_tokens=8, temperature=0),
                                                  messages=[{"role": "user", "content": story}])))
    assert chunks[-1].prompt_tokens > 100 and chunks[-1].completion_tokens >= 1
