"""The gateway's job rows as the policy sees them: pending and running jobs with their demand,
and which running work is borrowed. Shared by the job runner and its tests."""

from __future__ import annotations

from collections import defaultdict
from typing import Collection, Iterable, Mapping

from rixin.compute.policy import EPS, Pending, Quota, Running
from rixin.compute.resources import JOB_SLOT, demand
from rixin.store.schema import Job


def priority(job: Job) -> int:
    return int((job.params or {}).get("priority", 0))


def pending(rows: Iterable[Job]) -> list[Pending]:
    return [Pending(j.id, j.project_id, demand((j.params or {}).get("resources")), priority(j),
                    j.created_at.timestamp() if j.created_at else 0.0) for j in rows]


def work_since_checkpoint(job: Job) -> float:
    """Steps a preemption of `job` would lose, from its record: its progress `step` less the
    `checkpoint_step` of its last checkpoint (every step when it has none yet)."""
    progress = job.progress or {}
    return float(max(0, int(progress.get("step") or 0) - int(progress.get("checkpoint_step") or 0)))


def running(rows: Iterable[Job], quotas: Mapping[str, Quota], holds_slot: set[str],
            preemptible: Collection[str] = ()) -> list[Running]:
    """Running jobs; a job holds a job slot only if this runner runs it, and may be preempted
    only then (the runner can reach it) and if its kind is in `preemptible` (kinds that
    checkpoint and resume). Which work is borrowed is not stored: within each project the
    highest-priority, longest-running work fills the guarantee first and the rest is borrowed,
    as the policy would have decided."""
    out, used = [], defaultdict(lambda: defaultdict(float))
    for j in sorted(rows, key=lambda j: (-priority(j), j.started_at.timestamp() if j.started_at else 0.0, j.id)):
        need = demand((j.params or {}).get("resources"), slot=j.id in holds_slot)
        g = (quotas.get(j.project_id) or Quota()).guaranteed
        borrowed = any(used[j.project_id][c] + n > g.get(c, 0.0) + EPS for c, n in need.items() if n > 0)
        if not borrowed:
            for c, n in need.items():
                used[j.project_id][c] += n
        out.append(Running(j.id, j.project_id, need, priority(j), borrowed, work_since_checkpoint(j),
                           preemptible=j.kind in preemptible and j.id in holds_slot))
    return out


def capacity(job_slots: int, accelerators: list[dict]) -> dict[str, float]:
    """The gateway's job slots and every accelerator class of the Ray cluster (in total)."""
    return {JOB_SLOT: float(job_slots), **{a["name"]: float(a["total"]) for a in accelerators}}
