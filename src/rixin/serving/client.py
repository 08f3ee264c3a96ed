"""The engine client: calls to an engine replica (a Ray actor) with the one retry policy.

The policy: a call that hits a replica which died is retried once, after Ray restarted it
(waited for at most RESTART_WAIT_S), when nothing was sent to the caller yet: embeddings and
job generations (greedy, collected whole) always, a stream only before its first chunk.
Errors raised inside the engine (a bad schema, a prompt over the context) arrive as the rixin
errors they are. The gateway uses the async calls (through serving/pool.py, which adds queues
and placement); job code (labelers, evals) uses the sync `ActorEngine` from `connect`.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from typing import AsyncIterator, Awaitable, Callable

import numpy as np
import ray
from ray.exceptions import (ActorUnavailableError, ActorUnschedulableError, GetTimeoutError, ObjectLostError,
                            RayActorError, RayTaskError, WorkerCrashedError)

from rixin.config import Settings
from rixin.engines.base import Chunk, GenerateRequest
from rixin.errors import EngineUnavailable, RixinError
from rixin.models.registry import Registry, spec_of
from rixin.serving.replicas import Replica, engine_actor

# ActorUnschedulableError: a pinned replica whose node is gone (serving/pool.py relocates it).
DEAD = (RayActorError, ActorUnavailableError, WorkerCrashedError, ObjectLostError, ActorUnschedulableError)
RESTART_WAIT_S = 60.0
ATTEMPTS = (1, 2)  # the first call and the one retry


def engine_error(e: RayTaskError) -> BaseException:
    """The rixin error raised inside the engine (it travels as the cause), else `e` itself."""
    return e.cause if isinstance(e.cause, RixinError) else e


class _Deadline:
    """How long a dead replica is waited for, and what the caller is told when it is not back."""

    def __init__(self, model_id: str, advice: str):
        self.model_id, self.advice, self.end = model_id, advice, time.monotonic() + RESTART_WAIT_S

    def check(self, e: BaseException) -> None:
        if time.monotonic() > self.end:
            raise EngineUnavailable(f"The engine serving '{self.model_id}' did not come back within "
                                    f"{RESTART_WAIT_S:.0f} s; {self.advice}") from e


# ---------------------------------------------------------------- async (the gateway)


async def until_alive(replica: Replica, moved: Callable[[], Awaitable[bool]]) -> None:
    """Wait for Ray to restart a dead replica and reload its model (replica.info refreshed).
    `moved()` is asked after each failed look: True when it started the replica elsewhere (its
    node is gone), and the look is taken again at once."""
    deadline = _Deadline(replica.spec.id, "retry later.")
    while True:
        try:
            replica.info = await asyncio.wait_for(replica.actor.info.remote(), timeout=RESTART_WAIT_S)
            return
        except (*DEAD, asyncio.TimeoutError) as e:
            if await moved():
                continue
            deadline.check(e)
            await asyncio.sleep(0.5)


async def call(replica: Replica, revive: Callable[[], Awaitable[None]], method: str, *args):
    """An idempotent call to the replica; retried once if it died before answering."""
    for attempt in ATTEMPTS:
        try:
            return await getattr(replica.actor, method).remote(*args)
        except DEAD:
            if attempt == ATTEMPTS[-1]:
                raise
            await revive()


async def generate(replica: Replica, revive: Callable[[], Awaitable[None]],
                   request: GenerateRequest) -> AsyncIterator[Chunk]:
    """Stream chunks; a replica that dies before the first chunk is revived and the request
    retried once (nothing was sent yet); after that, the error reaches the caller."""
    for attempt in ATTEMPTS:
        started = False
        try:
            async for chunk in _stream(replica, request):
                started = True
                yield chunk
            return
        except DEAD:
            if started or attempt == ATTEMPTS[-1]:
                raise
            await revive()


async def _stream(replica: Replica, request: GenerateRequest) -> AsyncIterator[Chunk]:
    request_id = uuid.uuid4().hex
    stream = replica.actor.generate.options(num_returns="streaming").remote(request, request_id)
    finished = False
    try:
        async for ref in stream:
            chunk = await ref
            finished = chunk.finish_reason is not None
            yield chunk
    finally:
        if not finished:  # the client went away: free the replica for the next request
            replica.actor.cancel.remote(request_id)


# ---------------------------------------------------------------- sync (job code)


class ActorEngine:
    """An engine replica as job code sees it: blocking generate and embed."""

    def __init__(self, actor, model_id: str, adapter: str | None = None):
        self.actor, self.model_id, self.adapter = actor, model_id, adapter

    def generate(self, request: GenerateRequest) -> list[Chunk]:
        """Every chunk of one generation (the last one carries finish_reason and counts)."""
        if self.adapter is not None:  # a fine-tuned adapter over its base's replica
            request = replace(request, adapter=self.adapter)

        def run() -> list[Chunk]:
            stream = self.actor.generate.options(num_returns="streaming").remote(request, uuid.uuid4().hex)
            return [ray.get(ref) for ref in stream]

        return self._call(run)

    def embed(self, texts: list[str]) -> np.ndarray:
        """(len(texts), dim) float32, L2-normalised."""
        return self._call(lambda: ray.get(self.actor.embed.remote(texts)).vectors)

    def _call(self, fn):
        for attempt in ATTEMPTS:
            try:
                return fn()
            except RayTaskError as e:
                raise engine_error(e) from None
            except DEAD as e:
                if attempt == ATTEMPTS[-1]:
                    raise EngineUnavailable(f"The engine serving '{self.model_id}' stopped twice "
                                            "while labeling; resume the job later.") from e
                self._until_alive()

    def _until_alive(self) -> None:
        deadline = _Deadline(self.model_id, "resume the job later.")
        while True:
            try:
                ray.get(self.actor.info.remote(), timeout=RESTART_WAIT_S)
                return
            except (*DEAD, GetTimeoutError) as e:
                deadline.check(e)
                time.sleep(0.5)


def connect(registry: Registry, settings: Settings, model_id: str, caller, kind: str) -> ActorEngine:
    """The engine for `model_id` (visible to `caller`), started on Ray if needed."""
    spec = spec_of(registry.get(model_id, caller, kind=kind))
    return ActorEngine(engine_actor(spec, settings), spec.id, spec.adapter)
