"""Sentence embeddings with plain transformers: mean pooling over the attention mask, then L2.

This is how all-MiniLM-L6-v2 was trained (its modules.json: Transformer → Pooling(mean) →
Normalize); doing it here avoids sentence-transformers and its hub-oriented loading.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from rixin.engines.base import Embeddings, EngineInfo
from rixin.errors import ContextLengthExceeded
from rixin.models.engines import SENTENCE, EngineOptions
from rixin.models.registry import ModelSpec


def build(spec: ModelSpec, options: EngineOptions) -> "SentenceEmbedder":
    """The factory the engine registry (models/engines.py) calls."""
    return SentenceEmbedder(spec.id, spec.path, threads=options.threads)


class SentenceEmbedder:
    def __init__(self, model_id: str, path: str, *, threads: int | None = None, batch_size: int = 32):
        import torch
        from transformers import AutoModel, AutoTokenizer

        if threads:
            torch.set_num_threads(threads)
        self.model_id = model_id
        self.batch_size = batch_size
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True, use_safetensors=True).eval()
        st_config = Path(path) / "sentence_bert_config.json"
        limit = json.loads(st_config.read_text()).get("max_seq_length") if st_config.exists() else None
        self.max_length = int(limit or self.model.config.max_position_embeddings)
        self.dimensions = int(self.model.config.hidden_size)

    def info(self) -> EngineInfo:
        return EngineInfo(self.model_id, SENTENCE.name, self.max_length, os.getpid())

    def embed(self, texts: list[str]) -> Embeddings:
        import torch

        lengths = [len(ids) for ids in self.tokenizer(texts, add_special_tokens=True)["input_ids"]]
        for i, n in enumerate(lengths):
            if n > self.max_length:
                raise ContextLengthExceeded(
                    f"Input {i} has {n} tokens; this model's maximum input length is "
                    f"{self.max_length} tokens. Split the text into shorter pieces.",
                    param="input",
                )
        vectors = []
        with torch.inference_mode():
            for start in range(0, len(texts), self.batch_size):
                batch = self.tokenizer(texts[start:start + self.batch_size], padding=True,
                                       truncation=False, return_tensors="pt")
                hidden = self.model(**batch).last_hidden_state  # (batch, seq, dim)
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # (batch, seq, 1)
                pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1e-9)  # (batch, dim)
                vectors.append(torch.nn.functional.normalize(pooled, p=2, dim=1).numpy())
        return Embeddings(np.concatenate(vectors).astype(np.float32), prompt_tokens=sum(lengths))
