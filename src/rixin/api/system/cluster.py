"""The cluster at a glance (admin): Ray nodes and their resources, the accelerator classes
jobs may ask for (total and free), jobs per project, limits.

Engines and where they run come from /v1/engines; this adds what the engines run on and
what is waiting for a job slot."""

from __future__ import annotations

from collections import Counter

from sqlalchemy import select

from rixin.compute.resources import accelerators
from rixin.store.schema import Job, Project

LIMITS = ("job_slots", "max_running_jobs_per_project", "engine_queue_size", "engine_num_cpus",
          "engine_threads", "max_n", "max_file_bytes", "max_body_bytes", "chat_context")
ACTIVE = ("validating_files", "queued", "running", "paused")


def node_object(node: dict) -> dict:
    """One Ray node: (id, address, alive) and its total resources, accelerators named."""
    res = node.get("Resources") or {}
    return {"node_id": node.get("NodeID"), "address": node.get("NodeManagerAddress"),
            "alive": bool(node.get("Alive")), "cpus": res.get("CPU", 0.0), "gpus": res.get("GPU", 0.0),
            "memory_bytes": int(res.get("memory", 0)),
            "object_store_bytes": int(res.get("object_store_memory", 0)),
            "accelerators": sorted(k.split(":", 1)[1] for k in res if k.startswith("accelerator_type:")),
            "custom": {k: v for k, v in res.items()
                       if k not in ("CPU", "GPU", "memory", "object_store_memory")
                       and not k.startswith(("node:", "accelerator_type:"))}}


def ray_state() -> dict:
    import ray

    if not ray.is_initialized():
        return {"nodes": [], "available": {}}
    nodes = [node_object(n) for n in ray.nodes()]
    available = ray.available_resources()
    return {"nodes": sorted(nodes, key=lambda n: (not n["alive"], n["address"] or "")),
            "available": {"cpus": available.get("CPU", 0.0), "gpus": available.get("GPU", 0.0)}}


def job_counts(db) -> list[dict]:
    """Active jobs by project, kind and status (what holds or waits for a slot)."""
    with db.session() as s:
        rows = s.execute(select(Project.name, Job.kind, Job.status)
                         .join(Project, Project.id == Job.project_id)
                         .where(Job.status.in_(ACTIVE))).all()
    counts = Counter((r.name, r.kind, r.status) for r in rows)
    return [{"project": p, "kind": k, "status": st, "count": n} for (p, k, st), n in sorted(counts.items())]


def cluster(platform) -> dict:
    return {"object": "cluster", **ray_state(), "accelerators": accelerators(), "jobs": job_counts(platform.db),
            "limits": {name: getattr(platform.settings, name) for name in LIMITS}}
