"""The Ray actor that hosts one engine replica, whatever the engine.

The gateway talks to it through engines/pool.py. One generation runs at a time per replica
(llama.cpp and torch contexts are not thread-safe); further calls wait on the lock inside
the actor, and the pool bounds how many may wait.
"""

from __future__ import annotations

import threading
from typing import Iterator

from rixin.engines.base import Chunk, Embeddings, EngineInfo, GenerateRequest
from rixin.models.registry import ModelSpec


def build_engine(spec: ModelSpec, threads: int, context_length: int):
    """The engine object for `spec`, loaded in this process."""
    if spec.engine == "llama.cpp":
        from rixin.engines.llama_cpp import LlamaCppEngine

        return LlamaCppEngine(spec.id, spec.path, context_length=spec.context_length or context_length,
                              threads=threads)
    if spec.engine == "transformers":
        from rixin.engines.transformers_engine import TransformersEngine

        return TransformersEngine(spec.id, spec.path, context_length=spec.context_length, threads=threads)
    if spec.engine == "sentence":
        from rixin.engines.sentence import SentenceEmbedder

        return SentenceEmbedder(spec.id, spec.path, threads=threads)
    raise ValueError(f"unknown engine {spec.engine!r}")


class EngineActor:
    def __init__(self, spec: ModelSpec, threads: int, context_length: int):
        self.engine = build_engine(spec, threads, context_length)
        self.lock = threading.Lock()
        self.cancelled: set[str] = set()
        self.counts = {"generations": 0, "cancelled": 0}

    def info(self) -> EngineInfo:
        return self.engine.info()

    def generate(self, request: GenerateRequest, request_id: str) -> Iterator[Chunk]:
        """Stream chunks; stops early once `cancel(request_id)` was called (client went away)."""
        with self.lock:
            self.counts["generations"] += 1
            try:
                for chunk in self.engine.generate(request):
                    if request_id in self.cancelled:
                        self.counts["cancelled"] += 1
                        return
                    yield chunk
            finally:
                self.cancelled.discard(request_id)

    def stats(self) -> dict:
        return dict(self.counts)

    def cancel(self, request_id: str) -> None:
        self.cancelled.add(request_id)

    def embed(self, texts: list[str]) -> Embeddings:
        with self.lock:
            return self.engine.embed(texts)
