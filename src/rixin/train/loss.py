"""The causal-LM training loss, computed only where it is taken.

The stock `model(..., labels=...)` runs the LM head on every position: (rows, seq, vocab 49152)
fp32 logits, most of which belong to prompts, padding and packed-example boundaries whose label
is ignored. Here the decoder's hidden states are gathered at the trained positions first, so the
head and the cross-entropy see (n_trained, hidden) → (n_trained, vocab); the result is the same
sum of per-token cross-entropies, in a different summation order (equal to ~1e-6).

`TokenLoss` wraps the model in one module so that DDP sees a single forward (DDP only syncs
gradients of a backward that followed its own forward); `token_loss_sum` is the plain function.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

from rixin.train.data import IGNORE

CHUNK = 2048  # trained positions per head+cross-entropy chunk: 2048 x 49152 fp32 logits = 400 MB


def _causal_lm(model):
    """The transformers *ForCausalLM under a peft wrapper (LoRA layers already injected)."""
    return model.get_base_model() if hasattr(model, "get_base_model") else model


def supports_gathered_head(model) -> bool:
    """Plain head + cross-entropy only: architectures that scale or soft-cap logits, or add a
    router loss, keep the stock forward (their extra terms live in their own forward)."""
    config = _causal_lm(model).config
    text = config.get_text_config() if hasattr(config, "get_text_config") else config
    extras = ("final_logit_softcapping", "logit_scale", "logits_scaling")
    return (not getattr(text, "output_router_logits", False)
            and all(getattr(text, name, None) in (None, 1.0) for name in extras)
            and _causal_lm(model).get_output_embeddings() is not None)


def _head_cross_entropy(head, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    return F.cross_entropy(head(hidden).float(), targets, reduction="sum")


def token_loss_sum(model, batch: dict) -> tuple[torch.Tensor, int]:
    """(sum of cross-entropies over trained positions, their count) for one collated batch."""
    if not supports_gathered_head(model):
        labels = batch["labels"]
        count = int((labels[:, 1:] != IGNORE).sum())
        mean = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                     attention_mask=batch["attention_mask"], labels=labels, use_cache=False).loss
        return mean * count, count
    lm = _causal_lm(model)
    decoder = getattr(lm, lm.base_model_prefix)
    hidden = decoder(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                     attention_mask=batch["attention_mask"], use_cache=False).last_hidden_state
    targets = batch["labels"][:, 1:]  # the token at t+1 is predicted from position t
    keep = targets != IGNORE
    hidden, targets = hidden[:, :-1][keep], targets[keep]  # (n, hidden), (n,)
    count = int(targets.numel())
    if count == 0:  # nothing trained in this batch: a zero that still reaches every parameter
        return hidden.sum() * 0.0, 0
    head = lm.get_output_embeddings()
    if count <= CHUNK:
        return _head_cross_entropy(head, hidden, targets), count
    # Longer: chunks, each recomputed in backward, so at most CHUNK rows of logits live at once.
    total = hidden.new_zeros((), dtype=torch.float32)
    for start in range(0, count, CHUNK):
        total = total + checkpoint(_head_cross_entropy, head, hidden[start:start + CHUNK],
                                   targets[start:start + CHUNK], use_reentrant=False)
    return total, count


class TokenLoss(torch.nn.Module):
    """model + loss as one module: forward(batch tensors) → (loss sum, trained count)."""

    def __init__(self, model):
        super().__init__()
        self.model = model

    def forward(self, input_ids, position_ids, attention_mask, labels) -> tuple[torch.Tensor, int]:
        return token_loss_sum(self.model, {"input_ids": input_ids, "position_ids": position_ids,
                                           "attention_mask": attention_mask, "labels": labels})
