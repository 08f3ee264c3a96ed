"""One engine replica as a Ray actor: its name and options, and how it is started.

Replica 0 of a model has the plain name `engine:<id>`, so the gateway's pool and synchronous
callers (job code, the CLI) share one replica; replica i > 0 is `engine:<id>#i`, pinned to a
node (serving/pool.py says why hard affinity). max_restarts=-1: Ray restarts a crashed replica;
max_task_retries=0: a generation is not idempotent once text has been streamed (the retry
policy is serving/client.py's).
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

import ray
from ray.exceptions import RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from rixin.config import Settings
from rixin.engines.actor import EngineActor
from rixin.engines.base import EngineInfo
from rixin.errors import RixinError
from rixin.models.engines import EngineOptions
from rixin.models.registry import ModelSpec

NAMESPACE = "rixin"


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
    node_id: str | None = None  # where it runs (as last seen)
    pinned: bool = False  # hard affinity to node_id: Ray cannot move it if that node goes
    moving: asyncio.Lock = field(default_factory=asyncio.Lock)


def actor_options(spec: ModelSpec, settings: Settings, index: int, node_id: str | None) -> dict:
    """Ray options of replica `index` of `spec`."""
    options = dict(name=f"engine:{spec.id}" + (f"#{index}" if index else ""), namespace=NAMESPACE,
                   get_if_exists=True, max_restarts=-1, max_task_retries=0, num_cpus=settings.engine_num_cpus,
                   max_concurrency=settings.engine_queue_size + 4)
    if node_id is not None:
        # Hard: Ray places a zero-resource actor at random whatever soft affinity asks.
        options["scheduling_strategy"] = NodeAffinitySchedulingStrategy(node_id, soft=False)
    return options


def engine_options(settings: Settings) -> EngineOptions:
    weights_cache = str((settings.data_dir / "cache" / "gguf").resolve()) if settings.engine_requantize else None
    return EngineOptions(settings.engine_threads, settings.chat_context, settings.engine_batch_slots, weights_cache)


def _create(spec: ModelSpec, settings: Settings, index: int, node_id: str | None) -> ray.actor.ActorHandle:
    return ray.remote(EngineActor).options(**actor_options(spec, settings, index, node_id)).remote(
        spec, engine_options(settings))


def _load_failed(spec: ModelSpec, actor, e: RayTaskError) -> ModelLoadFailed:
    ray.kill(actor)
    return ModelLoadFailed(f"The model '{spec.id}' failed to load: {e.cause}")


async def launch(spec: ModelSpec, settings: Settings, index: int, node_id: str | None):
    """(actor, info) of replica `index`, its model loaded; ModelLoadFailed if it cannot be."""
    actor = _create(spec, settings, index, node_id)
    try:
        return actor, await actor.info.remote()
    except RayTaskError as e:
        raise _load_failed(spec, actor, e) from e


def engine_actor(spec: ModelSpec, settings: Settings) -> ray.actor.ActorHandle:
    """The replica serving `spec` for synchronous callers (job code in a worker thread or the
    CLI): the same named actor, with the same options, as the pool's replica 0, so a job and
    the gateway share one replica; created and loaded if it does not exist yet. A model that
    only adds an adapter is served by its base's replica: callers set request.adapter."""
    spec = spec.replica
    actor = _create(spec, settings, 0, None)
    try:
        ray.get(actor.info.remote())
    except RayTaskError as e:
        raise _load_failed(spec, actor, e) from e
    return actor


def alive_nodes() -> list[str]:
    return sorted(node["NodeID"] for node in ray.nodes() if node["Alive"])
