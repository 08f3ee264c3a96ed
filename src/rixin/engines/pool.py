"""The gateway's view of the engine replicas: create them on Ray on first use, bound their
queues, and turn Ray failures into rixin errors (a dead replica → 503, retry allowed).

A model may have several replicas (`engine_replicas`, chat/completion models only): each
request goes to the one with the fewest requests in flight, and the replicas are placed on
distinct Ray nodes where the cluster has several (soft node affinity, so a restarted replica
may land elsewhere if its node is gone).

Replicas are Ray actors with max_restarts=-1: Ray restarts a crashed one, and the request
that hit it fails fast instead of hanging (max_task_retries=0: a generation is not
idempotent from the client's point of view once text has been streamed).
"""

from __future__ import annotations

import asyncio
import time
import uuid
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from typing import AsyncIterator

import ray
from ray.exceptions import ActorUnavailableError, ObjectLostError, RayActorError, RayTaskError, WorkerCrashedError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rixin import metrics
from rixin.config import Settings
from rixin.engines.actor import EngineActor
from rixin.engines.base import Chunk, Embeddings, EngineInfo, GenerateRequest
from rixin.errors import EngineUnavailable, QueueFull, RixinError
from rixin.models.registry import ModelSpec

NAMESPACE = "rixin"
DEAD = (RayActorError, ActorUnavailableError, WorkerCrashedError, ObjectLostError)
RESTART_WAIT_S = 60.0


class ModelLoadFailed(RixinError):
    code = "model_load_failed"
    should_retry = False


@dataclass
class Replica:
    spec: ModelSpec
    actor: ray.actor.ActorHandle
    info: EngineInfo
    index: int = 0
    inflight: int = 0


def _actor_options(spec: ModelSpec, settings: Settings, index: int, node_id: str | None) -> dict:
    """Ray options of replica `index` of `spec`; replica 0 keeps the plain name that
    engine_actor() (jobs, CLI) looks up, so they share it with the gateway."""
    options = dict(name=f"engine:{spec.id}" + (f"#{index}" if index else ""), namespace=NAMESPACE,
                   get_if_exists=True, max_restarts=-1, max_task_retries=0, num_cpus=settings.engine_num_cpus,
                   max_concurrency=settings.engine_queue_size + 4)
    if node_id is not None:
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=True)
    return options


def _actor_args(settings: Settings) -> tuple:
    weights_cache = str((settings.data_dir / "cache" / "gguf").resolve()) if settings.engine_requantize else None
    return settings.engine_threads, settings.chat_context, settings.engine_batch_slots, weights_cache


class EnginePool:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.replicas: dict[str, list[Replica]] = {}
        self._locks: dict[str, asyncio.Lock] = {}

    def _count(self, spec: ModelSpec) -> int:
        return 1 if spec.engine == "sentence" else self.settings.engine_replicas

    async def replica(self, spec: ModelSpec) -> Replica:
        """The least-loaded replica serving `spec`; all of them started (and their model
        loaded) on first use."""
        spec = spec.replica
        lock = self._locks.setdefault(spec.id, asyncio.Lock())
        async with lock:
            current = self.replicas.get(spec.id)
            if not current or current[0].spec != spec:
                current = self.replicas[spec.id] = await self._start(spec)
        return min(current, key=lambda r: r.inflight)

    async def _start(self, spec: ModelSpec) -> list[Replica]:
        # Replica 0 first: it may already exist wherever a job or the CLI started it
        # (engine_actor), and the others go to the nodes it does not occupy.
        first, info = await self._launch(spec, 0, None)
        replicas = [Replica(spec, first, info, 0)]
        n = self._count(spec)
        if n > 1:
            taken = (await first.stats.remote())["node_id"]
            nodes = sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
            others = [x for x in nodes if x != taken] + [taken]
            launched = await asyncio.gather(*(self._launch(spec, i, others[(i - 1) % len(others)])
                                              for i in range(1, n)))
            replicas += [Replica(spec, a, inf, i) for i, (a, inf) in enumerate(launched, start=1)]
        return replicas

    async def _launch(self, spec: ModelSpec, index: int, node_id: str | None):
        actor = ray.remote(EngineActor).options(**_actor_options(spec, self.settings, index, node_id)).remote(
            spec, *_actor_args(self.settings))
        try:
            return actor, await actor.info.remote()
        except RayTaskError as e:
            ray.kill(actor)
            raise ModelLoadFailed(f"The model '{spec.id}' failed to load: {e.cause}") from e

    @asynccontextmanager
    async def _slot(self, replica: Replica):
        if replica.inflight >= self.settings.engine_queue_size:
            raise QueueFull(f"The queue of model '{replica.spec.id}' is full "
                            f"({replica.inflight} requests); retry after a second.", retry_after=1)
        replica.inflight += 1
        metrics.QUEUE_DEPTH.labels(replica.spec.id).set(replica.inflight)
        try:
            yield
        except RayTaskError as e:
            # An error raised inside the engine (bad request, context length) travels as its cause.
            if isinstance(e.cause, RixinError):
                raise e.cause from None
            raise
        except DEAD as e:
            metrics.ENGINE_FAILURES.labels(replica.spec.id).inc()
            raise EngineUnavailable(f"The engine serving '{replica.spec.id}' stopped while answering; "
                                    "it is being restarted. Retry the request.") from e
        finally:
            replica.inflight -= 1
            metrics.QUEUE_DEPTH.labels(replica.spec.id).set(replica.inflight)

    async def _until_alive(self, replica: Replica) -> None:
        """Wait (bounded) for Ray to restart a dead replica and reload its model."""
        deadline = time.monotonic() + RESTART_WAIT_S
        while True:
            try:
                replica.info = await asyncio.wait_for(replica.actor.info.remote(), timeout=RESTART_WAIT_S)
                return
            except (*DEAD, asyncio.TimeoutError) as e:
                if time.monotonic() > deadline:
                    raise EngineUnavailable(f"The engine serving '{replica.spec.id}' did not come "
                                            f"back within {RESTART_WAIT_S:.0f} s; retry later.") from e
                await asyncio.sleep(0.5)

    async def _call(self, spec: ModelSpec, method: str, *args):
        """An idempotent call; retried once on a replica that died before answering."""
        replica = await self.replica(spec)
        async with self._slot(replica):
            try:
                return await getattr(replica.actor, method).remote(*args)
            except DEAD:
                await self._until_alive(replica)
                return await getattr(replica.actor, method).remote(*args)

    async def embed(self, spec: ModelSpec, texts: list[str]) -> Embeddings:
        return await self._call(spec, "embed", texts)

    async def generate(self, spec: ModelSpec, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Stream chunks. A replica that dies before the first chunk is waited for and the
        request retried once (nothing was sent yet); after that, the error reaches the client."""
        if spec.adapter is not None:
            request = replace(request, adapter=spec.adapter)
        replica = await self.replica(spec)
        async with self._slot(replica):
            for attempt in (1, 2):
                started = False
                try:
                    async for chunk in self._stream(replica, request):
                        started = True
                        yield chunk
                    return
                except DEAD:
                    if started or attempt == 2:
                        raise
                    await self._until_alive(replica)

    async def _stream(self, replica: Replica, request: GenerateRequest) -> AsyncIterator[Chunk]:
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

    async def describe(self) -> list[dict]:
        """Every replica with its process, node and queue (for /v1/engines and `rixin status`)."""
        out = []
        for r in (r for group in self.replicas.values() for r in group):
            try:
                info, stats = await asyncio.wait_for(
                    asyncio.gather(r.actor.info.remote(), r.actor.stats.remote()), timeout=5)
                state = "running"
            except Exception:  # noqa: BLE001 - a replica that cannot answer is reported, not raised
                info, stats, state = r.info, {}, "restarting"
            out.append({"model": r.spec.id, "replica": r.index, "engine": info.engine, "pid": info.pid,
                        "state": state, "context_length": info.context_length, "inflight": r.inflight, **stats})
        return out


def engine_actor(spec: ModelSpec, settings: Settings) -> ray.actor.ActorHandle:
    """The replica serving `spec` for synchronous callers (job code in a worker thread or the
    CLI): the same named actor, with the same options, as EnginePool.replica, so a job and the
    gateway share one replica; created and loaded if it does not exist yet. A model that only
    adds an adapter is served by its base's replica: callers set request.adapter."""
    spec = spec.replica
    actor = ray.remote(EngineActor).options(**_actor_options(spec, settings, 0, None)).remote(
        spec, *_actor_args(settings))
    try:
        ray.get(actor.info.remote())
    except RayTaskError as e:
        ray.kill(actor)
        raise ModelLoadFailed(f"The model '{spec.id}' failed to load: {e.cause}") from e
    return actor
