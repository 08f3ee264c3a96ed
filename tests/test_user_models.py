"""Models a user adds with `rixin models add` are served like the bundled ones: a Hugging
Face-format directory (transformers engine, in its own Ray actor) through the openai client."""

from __future__ import annotations

import os

import pytest
import torch

from test_tenancy import bundled_gguf

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_hf_model(tmp_path_factory):
    """A randomly initialised 2-layer Llama with SmolLM2's tokenizer, saved as safetensors."""
    from transformers import AutoTokenizer, LlamaConfig, LlamaForCausalLM

    gguf = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id)
    directory = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def test_hf_directory_is_served_through_the_api(server, tiny_hf_model):
    model_id = f"tiny-llama-{server.backend}"
    out = server.offline("models", "add", str(tiny_hf_model), "--id", model_id).stdout
    assert "transformers" in out
    listed = server.cli("models", "list").stdout
    assert model_id in listed
    client = server.client()
    assert model_id in {m.id for m in client.models.list()}
    messages = [{"role": "user", "content": "hello"}]
    r = client.chat.completions.create(model=model_id, messages=messages, max_tokens=5, temperature=0)
    assert r.model == model_id and 0 < r.usage.completion_tokens <= 5
    streamed = "".join(ch.choices[0].delta.content or "" for ch in client.chat.completions.create(
        model=model_id, messages=messages, max_tokens=5, temperature=0, stream=True) if ch.choices)
    assert streamed == r.choices[0].message.content
    with server.http() as http:
        engines = {e["model"]: e for e in http.get("/v1/engines").json()["data"]}
    assert engines[model_id]["engine"] == "transformers"
