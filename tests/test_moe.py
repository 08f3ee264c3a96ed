"""Mixture-of-experts: a tiny Qwen2-MoE model built here (random init, safetensors, SmolLM2's
tokenizer) is registered with `rixin models add`, fine-tuned (all weights, experts included)
through the openai client, and the result is served."""

from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import load_file

from test_fine_tuning import fact_file, wait
from test_tenancy import bundled_gguf

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def tiny_moe(tmp_path_factory):
    from transformers import AutoTokenizer, Qwen2MoeConfig, Qwen2MoeForCausalLM

    gguf = bundled_gguf()
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    torch.manual_seed(0)
    config = Qwen2MoeConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                            num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                            num_experts=4, num_experts_per_tok=2, moe_intermediate_size=64,
                            shared_expert_intermediate_size=64, tie_word_embeddings=True,
                            bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id)
    directory = tmp_path_factory.mktemp("tiny-moe")
    Qwen2MoeForCausalLM(config).save_pretrained(directory, safe_serialization=True)
    tokenizer.save_pretrained(directory)
    return directory


def test_moe_model_is_fine_tuned_and_served(server, tiny_moe):
    model_id = f"tiny-moe-{server.backend}"
    assert "transformers" in server.offline("models", "add", str(tiny_moe), "--id", model_id).stdout
    client = server.client()
    messages = [{"role": "user", "content": "What is the capital of Zorbania?"}]
    assert client.chat.completions.create(model=model_id, messages=messages, max_tokens=4).usage.completion_tokens
    training = client.files.create(file=("moe.jsonl", io.BytesIO(fact_file(16))), purpose="fine-tune")
    job = client.fine_tuning.jobs.create(model=model_id, training_file=training.id, suffix="moe", method={
        "type": "supervised", "supervised": {"hyperparameters": {
            "full_finetune": True, "n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 4.7, "replay": 0,
            "packing": False, "max_seq_length": 96}}})
    job = wait(client, job.id)
    assert job.status == "succeeded", job.error
    assert job.fine_tuned_model == f"ft:{model_id}:default:moe:{job.id}"
    events = client.fine_tuning.jobs.list_events(job.id, limit=100).data
    losses = [e.data["train_loss"] for e in reversed(events) if e.type == "metrics"]
    assert len(losses) == 8 and losses[-1] < losses[0]
    base = load_file(str(tiny_moe / "model.safetensors"))
    r = client.chat.completions.create(model=job.fine_tuned_model, messages=messages, max_tokens=6, temperature=0)
    assert r.model == job.fine_tuned_model and r.usage.completion_tokens > 0
    # The experts were trained: their weights differ from the base model's.
    expert_keys = [k for k in base if "experts" in k]
    assert expert_keys, "the tiny model has no expert weights"
    tuned = load_file(str(server.data_dir / "models" / "ft" / job.id / "model.safetensors"))
    assert any(not torch.equal(base[k], tuned[k]) for k in expert_keys)
