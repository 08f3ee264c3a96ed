"""Training data: the loss mask follows the chat template, and packed examples cannot
attend to each other (their logits equal those of the examples run alone)."""

from __future__ import annotations

import os

import pytest
import torch

from rixin.train.data import IGNORE, Encoded, collate, encode_chat, encode_prompt_completion, encode_text, pack
from test_tenancy import bundled_gguf

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    gguf = bundled_gguf()
    return AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)


@pytest.fixture(scope="module")
def tiny_model(tokenizer):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512)
    return LlamaForCausalLM(config).eval()


def trained_text(tokenizer, encoded: Encoded) -> str:
    return tokenizer.decode([t for t, label in zip(encoded.input_ids, encoded.labels) if label != IGNORE])


def test_chat_loss_only_on_assistant_replies(tokenizer):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi there"},
                {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "Bye"},
                {"role": "assistant", "content": "Goodbye."}]
    encoded = encode_chat(tokenizer, messages)
    assert len(encoded.input_ids) == len(encoded.labels)
    text = trained_text(tokenizer, encoded)
    assert "Hello!" in text and "Goodbye." in text
    assert "Hi there" not in text and "Be brief" not in text and "assistant" not in text
    whole = tokenizer.apply_chat_template(messages, tokenize=False)
    assert tokenizer.decode(encoded.input_ids) == whole


def test_weight_zero_is_not_trained(tokenizer):
    messages = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "skip me", "weight": 0},
                {"role": "user", "content": "b"}, {"role": "assistant", "content": "learn me"}]
    text = trained_text(tokenizer, encode_chat(tokenizer, messages))
    assert "learn me" in text and "skip me" not in text


def test_prompt_completion_and_text(tokenizer):
    pc = encode_prompt_completion(tokenizer, "2+2=", " 4")
    assert trained_text(tokenizer, pc).startswith(" 4")
    text = encode_text(tokenizer, "All of this is trained.")
    assert all(label != IGNORE for label in text.labels)


def test_packing_keeps_examples_apart(tokenizer, tiny_model):
    examples = [encode_text(tokenizer, "The first example talks about rivers and boats."),
                encode_text(tokenizer, "A second one, about mountains."),
                encode_text(tokenizer, "Third: short.")]
    rows = pack(examples, max_len=64)
    assert len(rows) == 1 and rows[0].lengths == [len(e.input_ids) for e in examples]
    assert [rows[0].labels[i] for i in (0, examples[0].input_ids.__len__())] == [IGNORE, IGNORE]
    batch = collate(rows, tokenizer.pad_token_id or 0)
    with torch.no_grad():
        packed = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                            attention_mask=batch["attention_mask"]).logits[0]
        start = 0
        for example in examples:
            alone = tiny_model(input_ids=torch.tensor([example.input_ids])).logits[0]
            n = len(example.input_ids)
            assert torch.allclose(packed[start:start + n], alone, atol=1e-4), "packed examples interact"
            start += n
    # And the check can fail: without the block-diagonal mask the second example sees the first.
    with torch.no_grad():
        leaky = tiny_model(input_ids=batch["input_ids"], position_ids=batch["position_ids"]).logits[0]
    n0 = len(examples[0].input_ids)
    alone = tiny_model(input_ids=torch.tensor([examples[1].input_ids])).logits[0]
    assert not torch.allclose(leaky[n0:n0 + len(examples[1].input_ids)], alone, atol=1e-4)


def test_collate_pads_rows_of_different_lengths(tokenizer, tiny_model):
    rows = pack([encode_text(tokenizer, "short"), encode_text(tokenizer, "a somewhat longer example here")], 6)
    batch = collate(rows, 0)
    assert batch["input_ids"].shape[0] == len(rows) and batch["attention_mask"].shape[1:] == (1,) + batch["input_ids"].shape[1:] * 2
    out = tiny_model(**{k: v for k, v in batch.items() if k != "labels"}, labels=batch["labels"])
    assert torch.isfinite(out.loss)


def loss_and_grads(model, compute) -> tuple[float, dict[str, torch.Tensor]]:
    model.zero_grad(set_to_none=True)
    loss = compute()
    loss.backward()
    grads = {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return loss.item(), grads


@pytest.mark.parametrize("chunk", [2048, 7])  # one head call; and chunks recomputed in backward
def test_head_on_trained_positions_only_equals_the_stock_loss(tokenizer, tiny_model, monkeypatch, chunk):
    """The recipe's loss (LM head + cross-entropy gathered at trained positions) equals the
    stock transformers loss (head on every position) on a packed, padded batch: value and grads."""
    from rixin.train import loss as loss_module
    from rixin.train.recipe import lm_loss

    monkeypatch.setattr(loss_module, "CHUNK", chunk)
    chats = [[{"role": "user", "content": f"Question {i}?"}, {"role": "assistant", "content": "Answer " * (i + 1)}]
             for i in range(5)]
    rows = pack([encode_chat(tokenizer, c) for c in chats], max_len=64)
    assert len(rows) > 1 and len({len(r.input_ids) for r in rows}) > 1  # several rows, padded
    batch = collate(rows, tokenizer.pad_token_id or 0)
    assert (batch["labels"] == IGNORE).float().mean() > 0.3  # prompts and padding are not trained
    stock, stock_grads = loss_and_grads(tiny_model, lambda: tiny_model(
        input_ids=batch["input_ids"], position_ids=batch["position_ids"], attention_mask=batch["attention_mask"],
        labels=batch["labels"]).loss)
    ours, our_grads = loss_and_grads(tiny_model, lambda: lm_loss(tiny_model, batch))
    assert abs(ours - stock) < 1e-6 * max(1.0, abs(stock)), (ours, stock)
    assert stock_grads.keys() == our_grads.keys() and len(our_grads) > 10
    for name, grad in stock_grads.items():  # summation order differs: compare at the grad's own scale
        error = (our_grads[name] - grad).abs().max().item()
        assert error <= 1e-5 * grad.abs().max().item() + 1e-9, (name, error, grad.abs().max().item())
    total, count = loss_module.token_loss_sum(tiny_model, batch)
    assert count == int((batch["labels"][:, 1:] != IGNORE).sum())
