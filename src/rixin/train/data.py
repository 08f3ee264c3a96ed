"""Examples → token ids with a loss mask, and packing with correct attention boundaries.

An encoded example is (input_ids, labels) with labels = -100 where no loss is taken: every
token that is not an assistant reply (chat), the prompt (prompt/completion), nothing (text).
Packing concatenates examples into rows of at most `max_len` tokens; each row keeps the
example boundaries so that positions restart and attention is block-diagonal (no example
attends to another one in the same row).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from rixin.toolcalls import declared, render

IGNORE = -100


@dataclass
class Encoded:
    input_ids: list[int]
    labels: list[int]


@dataclass
class Row:
    """One training row: one example, or several packed ones with their lengths."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    lengths: list[int] = field(default_factory=list)


def _render(tokenizer, messages: list[dict], generation_prompt: bool) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=generation_prompt)


def _plain(messages: list[dict], tools: list | None = None) -> list[dict]:
    """Messages as the chat template expects them: role and string content, with tool calls,
    tool results and the `tools` rendered the way serving renders them (rixin/toolcalls.py)."""
    out = []
    for m in messages:
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text", "") for p in content)
        role = {"developer": "system", "function": "tool"}.get(m["role"], m["role"])
        keep = {k: m[k] for k in ("tool_calls", "weight") if m.get(k) is not None}
        out.append({"role": role, "content": content or "", **keep})
    return render(out, declared(tools))


def encode_chat(tokenizer, messages: list[dict], tools: list | None = None) -> Encoded:
    """Loss on assistant replies only (and not on those with weight 0), tool calls included.

    The template is rendered turn by turn; each assistant turn's text is the difference
    between the conversation rendered with and without it, so the mask follows the template
    exactly (end-of-turn tokens included, the header `<|im_start|>assistant` excluded)."""
    plain = _plain(messages, tools)
    segments: list[tuple[str, bool]] = []
    done = ""
    for k, message in enumerate(plain):
        if message["role"] != "assistant":
            continue
        prompt = _render(tokenizer, plain[:k], True) if k else ""
        full = _render(tokenizer, plain[:k + 1], False)
        if not (prompt.startswith(done) and full.startswith(prompt)):
            raise ValueError("the chat template does not render turns as prefixes; cannot mask the loss")
        segments += [(prompt[len(done):], False), (full[len(prompt):], message.get("weight", 1) != 0)]
        done = full
    segments.append((_render(tokenizer, plain, False)[len(done):], False))
    return _tokenize_segments(tokenizer, segments)


def encode_prompt_completion(tokenizer, prompt: str, completion: str) -> Encoded:
    return _tokenize_segments(tokenizer, [(prompt, False), (completion + tokenizer.eos_token, True)])


def encode_text(tokenizer, text: str) -> Encoded:
    return _tokenize_segments(tokenizer, [(text + tokenizer.eos_token, True)])


def _tokenize_segments(tokenizer, segments: list[tuple[str, bool]]) -> Encoded:
    ids, labels = [], []
    for text, trained in segments:
        if not text:
            continue
        piece = tokenizer(text, add_special_tokens=False)["input_ids"]
        ids += piece
        labels += piece if trained else [IGNORE] * len(piece)
    return Encoded(ids, labels)


def encode_record(tokenizer, record: dict) -> Encoded:
    if "messages" in record:
        return encode_chat(tokenizer, record["messages"], record.get("tools"))
    if "prompt" in record:
        return encode_prompt_completion(tokenizer, record["prompt"], record["completion"])
    return encode_text(tokenizer, record["text"])


def truncate(example: Encoded, max_len: int) -> Encoded:
    return Encoded(example.input_ids[:max_len], example.labels[:max_len])


def pack(examples: list[Encoded], max_len: int) -> list[Row]:
    """First-fit packing in order; an example longer than max_len is truncated to it."""
    rows: list[Row] = []
    current = Row()
    for example in examples:
        example = truncate(example, max_len)
        if current.lengths and len(current.input_ids) + len(example.input_ids) > max_len:
            rows.append(current)
            current = Row()
        current.input_ids += example.input_ids
        # The first token of an example is never a target: it would be "predicted" from the
        # previous example's last token.
        current.labels += [IGNORE] + example.labels[1:]
        current.lengths.append(len(example.input_ids))
    if current.lengths:
        rows.append(current)
    return rows


def unpacked(examples: list[Encoded], max_len: int) -> list[Row]:
    rows = []
    for example in examples:
        example = truncate(example, max_len)
        rows.append(Row(example.input_ids, [IGNORE] + example.labels[1:], [len(example.input_ids)]))
    return rows


def collate(rows: list[Row], pad_id: int) -> dict[str, torch.Tensor]:
    """Batch tensors. input_ids/labels/position_ids: (B, L); attention_mask: (B, 1, L, L)
    additive float mask, 0 where a query may attend a key (same example, not in the future)
    and -inf elsewhere — block-diagonal causal, so packed examples are isolated."""
    length = max(len(r.input_ids) for r in rows)
    batch = len(rows)
    input_ids = torch.full((batch, length), pad_id, dtype=torch.long)
    labels = torch.full((batch, length), IGNORE, dtype=torch.long)
    position_ids = torch.zeros((batch, length), dtype=torch.long)
    segment = torch.full((batch, length), -1, dtype=torch.long)  # -1: padding
    for b, row in enumerate(rows):
        n = len(row.input_ids)
        input_ids[b, :n] = torch.tensor(row.input_ids)
        labels[b, :n] = torch.tensor(row.labels)
        start = 0
        for s, size in enumerate(row.lengths):
            position_ids[b, start:start + size] = torch.arange(size)
            segment[b, start:start + size] = s
            start += size
    causal = torch.ones(length, length, dtype=torch.bool).tril()
    same = (segment[:, :, None] == segment[:, None, :]) & (segment[:, :, None] >= 0)
    allowed = same & causal  # (B, L, L)
    allowed |= torch.eye(length, dtype=torch.bool)  # padded queries attend themselves (no NaN rows)
    mask = torch.zeros(batch, 1, length, length)
    mask.masked_fill_(~allowed[:, None], float("-inf"))
    return {"input_ids": input_ids, "labels": labels, "position_ids": position_ids, "attention_mask": mask}


def count_trained_tokens(rows: list[Row]) -> int:
    return sum(sum(1 for label in r.labels if label != IGNORE) for r in rows)
