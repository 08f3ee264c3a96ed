"""The OpenAI fine-tuning objects: fine_tuning.job, .job.event, .job.checkpoint."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictStr

from rixin.api.params import Integer
from rixin.api.sampling import Lenient
from rixin.compute.resources import Resources
from rixin.jobs.store import ts
from rixin.store.schema import Job, JobCheckpoint, JobEvent
from rixin.train.config import Hyperparameters


class CreateFineTuningJob(Lenient):
    model: StrictStr
    training_file: StrictStr
    hyperparameters: dict | None = None
    integrations: list | None = None
    metadata: dict[str, StrictStr] | None = None
    method: dict | None = None
    seed: Annotated[Integer, Field(ge=0, le=2**31 - 1)] | None = None
    suffix: StrictStr | None = None
    validation_file: StrictStr | None = None
    priority: Annotated[Integer, Field(ge=0, le=9)] = 0
    """rixin extension: queued jobs start by priority (9 first), then first come first served."""
    resources: Resources | None = None
    """rixin extension: workers, CPUs and accelerator class the job needs (default: CPU)."""


def job_object(job: Job, project: str) -> dict:
    p, result, progress = job.params, job.result or {}, job.progress or {}
    hp = Hyperparameters.model_validate(p["hyperparameters"])
    concrete = p.get("resolved") or {}  # "auto" resolved at create (older jobs: as requested)
    resolved = {k: concrete.get(k, getattr(hp, k)) for k in ("n_epochs", "batch_size", "learning_rate_multiplier")}
    method_hp = dict(resolved, **({"beta": concrete.get("beta", hp.beta)} if p["method"] == "dpo" else {}))
    return {
        "id": job.id,
        "object": "fine_tuning.job",
        "created_at": ts(job.created_at),
        "error": job.error,
        "fine_tuned_model": result.get("fine_tuned_model"),
        "finished_at": ts(job.finished_at),
        "hyperparameters": resolved,
        "model": p["model"],
        "organization_id": project,
        "result_files": result.get("result_files", []),
        "seed": p["seed"],
        "status": job.status,
        "trained_tokens": result.get("trained_tokens", progress.get("trained_tokens")),
        "training_file": p["training_file"],
        "validation_file": p.get("validation_file"),
        "estimated_finish": progress.get("estimated_finish") if job.status == "running" else None,
        "integrations": [],
        "metadata": p.get("metadata"),
        "method": {"type": p["method"], p["method"]: {"hyperparameters": method_hp}},
        "user_provided_suffix": p.get("suffix"),
        "priority": p.get("priority", 0),
        "resources": p.get("resources"),
        # rixin extensions
        "progress": progress,
        "rixin_hyperparameters": p["hyperparameters"],
        "rixin_resolved": p.get("resolved"),
    }


def event_object(e: JobEvent) -> dict:
    return {"id": e.id, "object": "fine_tuning.job.event", "created_at": ts(e.created_at), "level": e.level,
            "message": e.message, "data": e.data, "type": e.type}


def checkpoint_object(c: JobCheckpoint, job: Job, model_id: str | None) -> dict:
    return {"id": c.id, "object": "fine_tuning.job.checkpoint", "created_at": ts(c.created_at),
            "fine_tuned_model_checkpoint": f"{model_id or job.id}:ckpt-step-{c.step}",
            "fine_tuning_job_id": job.id, "metrics": c.metrics, "step_number": c.step}
