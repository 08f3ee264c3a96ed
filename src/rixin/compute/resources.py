"""What a job asks of the shared compute (DESIGN.md: the optional `resources` field) and what
the cluster has: accelerator classes are Ray's own resource names."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator

from rixin.compute.quotas import CLASS_NAME

# The gateway's job slots (settings.job_slots) are a resource class of their own: every job the
# gateway runs holds one while it runs; CLI runs hold none (they run in their own process).
JOB_SLOT = "job_slot"
# Ray's bookkeeping resources, never accelerators.
NOT_ACCELERATORS = ("CPU", "memory", "object_store_memory")


class Resources(BaseModel):
    """`{"accelerator": "cpu" | CLASS, "accelerators_per_worker", "cpus_per_worker", "workers"}`."""

    model_config = ConfigDict(extra="forbid")
    accelerator: str = Field("cpu", description="'cpu' or an accelerator class GET /v1/cluster lists.")
    accelerators_per_worker: Annotated[StrictInt, Field(ge=0, le=64)] = Field(
        1, description="Accelerators each worker holds (ignored for 'cpu').")
    cpus_per_worker: Annotated[float, Field(gt=0, le=1024, allow_inf_nan=False)] = Field(
        1.0, description="CPUs each worker holds.")
    workers: Annotated[StrictInt, Field(ge=1, le=1024)] = Field(1, description="Ray Train workers.")

    @field_validator("accelerator")
    @classmethod
    def _class_name(cls, value: str) -> str:
        if value != "cpu" and (not CLASS_NAME.match(value) or value in NOT_ACCELERATORS):
            raise ValueError(f"{value!r} is not an accelerator class: use 'cpu' or a name GET /v1/cluster "
                             "lists under accelerators (e.g. 'GPU')")
        return value


def demand(resources: dict | None, *, slot: bool = True) -> dict[str, float]:
    """What a job holds while it runs, per resource class (the policy's `demand`). CPUs are
    not counted: CPU jobs share the gateway's node with the engines and are bounded by job slots."""
    out: dict[str, float] = {JOB_SLOT: 1.0} if slot else {}
    if resources:
        r = Resources.model_validate(resources)
        if r.accelerator != "cpu" and r.accelerators_per_worker:
            out[r.accelerator] = float(r.accelerators_per_worker * r.workers)
    return out


def accelerators() -> list[dict]:
    """Every accelerator class of the Ray cluster with total and free (empty without Ray)."""
    import ray

    if not ray.is_initialized():
        return []
    total, free = ray.cluster_resources(), ray.available_resources()
    names = sorted(k for k in total if k not in NOT_ACCELERATORS
                   and not k.startswith(("node:", "accelerator_type:")))
    return [{"name": k, "total": total[k], "free": free.get(k, 0.0)} for k in names]
