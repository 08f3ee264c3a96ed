"""The Ray actor that hosts one engine replica, whatever the engine.

The gateway talks to it through serving/pool.py. The actor is threaded (max_concurrency):
an engine that batches (`concurrent = True`, llama.cpp) gets every generate() call at once
and decodes them together on its own scheduler thread; for the others (torch contexts are
not thread-safe) one generation runs at a time and further calls wait on the lock inside the
actor. The pool bounds how many may wait.
"""

from __future__ import annotations

import contextlib
import threading
from dataclasses import replace
from typing import Iterator

import ray

from rixin.engines.base import Cancelled, Chunk, Embeddings, EngineInfo, GenerateRequest
from rixin.engines.fair import FairLock
from rixin.models.engines import EngineOptions, engine
from rixin.models.registry import ModelSpec


def build_engine(spec: ModelSpec, options: EngineOptions):
    """The engine object for `spec`, loaded in this process, by the engine registry's factory."""
    return engine(spec.engine).build(spec, options)


class EngineActor:
    def __init__(self, spec: ModelSpec, options: EngineOptions):
        self.engine = build_engine(spec, options)
        # Serial engines (and every embedder) run one call at a time; the waiting calls get the
        # model round-robin across projects (engines/fair.py).
        self.lock = FairLock()
        self.count_lock = threading.Lock()
        self.cancelled: set[str] = set()
        self.counts = {"generations": 0, "cancelled": 0}

    def info(self) -> EngineInfo:
        return self.engine.info()

    def generate(self, request: GenerateRequest, request_id: str) -> Iterator[Chunk]:
        """Stream chunks; stops early once `cancel(request_id)` was called (client went away),
        whether the request is still waiting, tokenizing or decoding."""
        request = replace(request, request_id=request_id)
        serial = not getattr(self.engine, "concurrent", False)
        finished = False
        try:
            with (self.lock.hold(request.project, lambda: request_id in self.cancelled) if serial
                  else contextlib.nullcontext()):
                self._count("generations")
                chunks = self.engine.generate(request)
                try:
                    for chunk in chunks:
                        if request_id in self.cancelled:
                            return
                        yield chunk
                        finished = chunk.finish_reason is not None
                finally:
                    if hasattr(chunks, "close"):
                        chunks.close()  # a batching engine frees the sequence's slot now
        except Cancelled:
            pass  # it left the line before its turn
        finally:
            if request_id in self.cancelled and not finished:
                self._count("cancelled")
            self.cancelled.discard(request_id)

    def _count(self, key: str) -> None:
        with self.count_lock:
            self.counts[key] += 1

    def stats(self) -> dict:
        engine_stats = getattr(self.engine, "stats", dict)()
        return {**self.counts, **engine_stats, "node_id": ray.get_runtime_context().get_node_id()}

    def cancel(self, request_id: str) -> None:
        self.cancelled.add(request_id)
        if hasattr(self.engine, "cancel"):
            self.engine.cancel(request_id)

    def embed(self, texts: list[str], project: str | None = None) -> Embeddings:
        with self.lock.hold(project):
            return self.engine.embed(texts)
