"""The gateway's view of the engine replicas: create them on Ray on first use, bound their
queues, and turn Ray failures into rixin errors (a dead replica → 503, retry allowed).

A model may have several replicas (`engine_replicas`, chat/completion models only): each
request goes to the one with the fewest requests in flight, and the replicas are placed on
distinct Ray nodes where the cluster has several. Replica 0 goes wherever Ray puts it; each
other replica is pinned to a chosen node with HARD node affinity. Soft affinity is not
enough: an actor that asks for no resources (engine_num_cpus = 0, the default) is placed on
a random node by Ray's scheduler whatever soft affinity it names (only hard affinity is
honoured for it). A pinned replica whose node is gone cannot be restarted by Ray
(ActorUnschedulableError); the pool then pins a new one to another alive node.

Replicas are Ray actors with max_restarts=-1: Ray restarts a crashed one, and the request
that hit it fails fast instead of hanging (max_task_retries=0: a generation is not
idempotent from the client's point of view once text has been streamed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from contextlib import asynccontextmanager
from dataclasses import replace
from typing import AsyncIterator

import ray
from ray.exceptions import ActorUnschedulableError, RayTaskError

from rixin import metrics
from rixin.config import Settings
from rixin.engines.base import Chunk, Embeddings, GenerateRequest
from rixin.errors import EngineUnavailable, QueueFull
from rixin.models.engines import engine
from rixin.models.registry import ModelSpec
from rixin.serving import client
from rixin.serving.client import DEAD
from rixin.serving.replicas import Replica, alive_nodes, launch

log = logging.getLogger("rixin.engines")


class EnginePool:
    def __init__(self, settings: Settings):
        self.settings = settings
        self.replicas: dict[str, list[Replica]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._project_inflight: dict[tuple[str, str | None], int] = {}
        """Requests in flight per (model, project), across the model's replicas."""

    def _count(self, spec: ModelSpec) -> int:
        return 1 if engine(spec.engine).single_replica else self.settings.engine_replicas

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
        first, info = await launch(spec, self.settings, 0, None)
        replicas = [Replica(spec, first, info, 0, node_id=await self._node_of(first))]
        n = self._count(spec)
        if n > 1:
            nodes = alive_nodes()
            others = [x for x in nodes if x != replicas[0].node_id] + [replicas[0].node_id]
            launched = await asyncio.gather(*(self._launch_pinned(spec, i, others[(i - 1) % len(others)])
                                              for i in range(1, n)))
            replicas += [Replica(spec, a, inf, i, node_id=node, pinned=True)
                         for i, (a, inf, node) in enumerate(launched, start=1)]
        return replicas

    @staticmethod
    async def _node_of(actor) -> str:
        return (await actor.stats.remote())["node_id"]

    async def _launch_pinned(self, spec: ModelSpec, index: int, node_id: str, avoid: tuple[str, ...] = ()):
        """Replica `index` pinned to `node_id`, or, if that node is gone by the time Ray
        schedules it, to another alive node (those in `avoid` last)."""
        tried: set[str] = set()
        while True:
            tried.add(node_id)
            try:
                actor, info = await launch(spec, self.settings, index, node_id)
                return actor, info, node_id
            except ActorUnschedulableError:
                nodes = [x for x in alive_nodes() if x not in tried]
                if not nodes:
                    raise EngineUnavailable(f"No Ray node is left to run replica {index} of '{spec.id}'.") from None
                node_id = min(nodes, key=lambda x: x in avoid)

    @asynccontextmanager
    async def _slot(self, replica: Replica, project: str | None):
        """Hold a place in `replica`'s queue for one request of `project`: 429 when the queue
        is full, or when the project already holds its share of the model's queues (so one
        tenant flooding a model leaves room for the others; docs/security.md)."""
        if replica.inflight >= self.settings.engine_queue_size:
            raise QueueFull(f"The queue of model '{replica.spec.id}' is full "
                            f"({replica.inflight} requests); retry after a second.", retry_after=1)
        share = (replica.spec.id, project)
        held = self._project_inflight.get(share, 0)
        cap = self.settings.engine_queue_per_project * len(self.replicas.get(replica.spec.id) or (replica,))
        if held >= cap:
            raise QueueFull(f"Your project already has {held} requests queued or running on model "
                            f"'{replica.spec.id}', its share of the queue; retry after a second.",
                            retry_after=1)
        self._project_inflight[share] = held + 1
        replica.inflight += 1
        metrics.QUEUE_DEPTH.labels(replica.spec.id).set(replica.inflight)
        try:
            yield
        except RayTaskError as e:
            # An error raised inside the engine (bad request, context length) travels as its cause.
            raise client.engine_error(e) from None
        except DEAD as e:
            metrics.ENGINE_FAILURES.labels(replica.spec.id).inc()
            raise EngineUnavailable(f"The engine serving '{replica.spec.id}' stopped while answering; "
                                    "it is being restarted. Retry the request.") from e
        finally:
            replica.inflight -= 1
            left = self._project_inflight.pop(share) - 1
            if left:
                self._project_inflight[share] = left
            metrics.QUEUE_DEPTH.labels(replica.spec.id).set(replica.inflight)

    async def _revive(self, replica: Replica) -> None:
        """Wait (bounded, serving/client's policy) for Ray to restart a dead replica; a pinned
        replica whose node is gone is started again on another node."""
        async def moved() -> bool:
            if replica.pinned and replica.node_id not in alive_nodes():
                await self._relocate(replica)
                return True
            return False

        await client.until_alive(replica, moved)

    async def _relocate(self, replica: Replica) -> None:
        """Pin a new actor for `replica` (same name and index) to an alive node, preferring
        one that no other replica of its model occupies. Concurrent callers move it once."""
        dead = replica.actor
        async with replica.moving:
            if replica.actor is not dead:
                return  # another request moved it already
            with contextlib.suppress(Exception):
                ray.kill(dead, no_restart=True)  # frees the name (already free if Ray gave up on it)
            siblings = tuple(r.node_id for r in self.replicas.get(replica.spec.id, ()) if r is not replica)
            nodes = alive_nodes()
            if not nodes:
                raise EngineUnavailable(f"No Ray node is left to run replica {replica.index} of "
                                        f"'{replica.spec.id}'.")
            target = min(nodes, key=siblings.count)
            log.warning("replica %d of '%s': its node %s is gone; starting it on node %s", replica.index,
                        replica.spec.id, replica.node_id, target)
            replica.actor, replica.info, replica.node_id = await self._launch_pinned(
                replica.spec, replica.index, target, avoid=siblings)

    async def embed(self, spec: ModelSpec, texts: list[str], project: str | None = None) -> Embeddings:
        replica = await self.replica(spec)
        async with self._slot(replica, project):
            return await client.call(replica, lambda: self._revive(replica), "embed", texts, project)

    async def generate(self, spec: ModelSpec, request: GenerateRequest) -> AsyncIterator[Chunk]:
        """Stream chunks from the least-loaded replica, within its queue (serving/client.py
        retries a replica that died before the first chunk)."""
        if spec.adapter is not None:
            request = replace(request, adapter=spec.adapter)
        replica = await self.replica(spec)
        async with self._slot(replica, request.project):
            async for chunk in client.generate(replica, lambda: self._revive(replica), request):
                yield chunk

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

