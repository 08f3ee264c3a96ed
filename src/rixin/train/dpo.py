"""Direct Preference Optimization on top of a LoRA adapter.

The reference model is the same network with the adapter switched off, so DPO costs one
extra no-grad forward per pair instead of a second copy of the weights.
    loss = -log σ(β · [(log π(chosen) − log π_ref(chosen)) − (log π(rejected) − log π_ref(rejected))])
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from rixin.train.data import IGNORE, Row, collate, encode_chat, truncate


def encode_preference(tokenizer, record: dict, max_len: int) -> tuple[Row, Row]:
    """(chosen, rejected) rows: the input conversation plus each answer, loss on the answer."""
    messages = record["input"]["messages"]

    def row(output: list[dict]) -> Row:
        encoded = truncate(encode_chat(tokenizer, messages + output[:1]), max_len)
        return Row(encoded.input_ids, [IGNORE] + encoded.labels[1:], [len(encoded.input_ids)])

    return row(record["preferred_output"]), row(record["non_preferred_output"])


def sequence_logps(model, rows: list[Row], pad_id: int) -> tuple[torch.Tensor, int]:
    """Sum of log-probabilities of the trained tokens of each row: (B,), and their count."""
    batch = collate(rows, pad_id)
    logits = model(input_ids=batch["input_ids"], position_ids=batch["position_ids"],
                   attention_mask=batch["attention_mask"]).logits[:, :-1]  # (B, L-1, V)
    labels = batch["labels"][:, 1:]  # (B, L-1): token t+1 is predicted at t
    mask = labels != IGNORE
    picked = torch.gather(F.log_softmax(logits.float(), dim=-1), 2, labels.clamp(min=0)[..., None])[..., 0]
    return (picked * mask).sum(-1), int(mask.sum())


def dpo_loss(model, pairs: list[tuple[Row, Row]], pad_id: int, beta: float) -> tuple[torch.Tensor, int]:
    rows = [r for pair in pairs for r in pair]  # chosen, rejected, chosen, rejected, ...
    policy, tokens = sequence_logps(model, rows, pad_id)
    base = model.module if hasattr(model, "module") else model
    with torch.no_grad(), base.disable_adapter():
        reference, _ = sequence_logps(base, rows, pad_id)
    margin = (policy[0::2] - reference[0::2]) - (policy[1::2] - reference[1::2])
    return -F.logsigmoid(beta * margin).mean(), tokens
