"""Synchronous calls to an engine replica (a Ray actor) from job code.

Labeling calls are idempotent (greedy decoding, embeddings), so a call that hits a replica
which died is retried once after Ray restarted it; errors raised inside the engine (a bad
schema, a prompt over the context) arrive as the rixin errors they are.
"""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import numpy as np

from rixin.engines.base import Chunk, GenerateRequest
from rixin.errors import EngineUnavailable, RixinError

RESTART_WAIT_S = 60.0


class ActorEngine:
    def __init__(self, actor, model_id: str, adapter: str | None = None):
        self.actor, self.model_id, self.adapter = actor, model_id, adapter

    def generate(self, request: GenerateRequest) -> list[Chunk]:
        """Every chunk of one generation (the last one carries finish_reason and counts)."""
        import ray

        if self.adapter is not None:  # a fine-tuned adapter over its base's replica
            request = replace(request, adapter=self.adapter)

        def run() -> list[Chunk]:
            stream = self.actor.generate.options(num_returns="streaming").remote(request, uuid.uuid4().hex)
            return [ray.get(ref) for ref in stream]

        return self._call(run)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised."""
        import ray

        return self._call(lambda: ray.get(self.actor.embed.remote(texts)).vectors)

    def _call(self, fn):
        from ray.exceptions import RayTaskError

        from rixin.engines.pool import DEAD

        for attempt in (1, 2):
            try:
                return fn()
            except RayTaskError as e:
                if isinstance(e.cause, RixinError):
                    raise e.cause from None
                raise
            except DEAD as e:
                if attempt == 2:
                    raise EngineUnavailable(f"The engine serving '{self.model_id}' stopped twice "
                                            "while labeling; resume the job later.") from e
                self._until_alive()

    def _until_alive(self) -> None:
        import ray

        from rixin.engines.pool import DEAD

        deadline = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                ray.get(self.actor.info.remote(), timeout=RESTART_WAIT_S)
                return
            except (*DEAD, ray.exceptions.GetTimeoutError) as e:
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"The engine serving '{self.model_id}' did not come back "
                                            f"within {RESTART_WAIT_S:.0f} s; resume the job later.") from e
                time.sleep(0.5)


def connect(platform, model_id: str, caller, kind: str) -> ActorEngine:
    """The engine for `model_id` (visible to `caller`), started on Ray if needed."""
    from rixin.engines.pool import engine_actor
    from rixin.models.registry import spec_of

    spec = spec_of(platform.registry.get(model_id, caller, kind=kind))
    return ActorEngine(engine_actor(spec, platform.settings), spec.id, spec.adapter)
