"""Pause, resume and cancel of fine-tuning jobs: a state change plus, for a running job, a
flag file the training workers read between steps (they stop at a checkpoint)."""

from __future__ import annotations

from rixin.errors import Conflict
from rixin.store.schema import Job


def _flag(platform, job: Job, value: str) -> None:
    work = platform.work_dir / job.id
    work.mkdir(parents=True, exist_ok=True)
    (work / "control").write_text(value)


def cancel(platform, job: Job) -> Job:
    if job.status in ("succeeded", "failed", "cancelled"):
        raise Conflict(f"Job {job.id} already {job.status}; it cannot be cancelled.", param="fine_tuning_job_id")
    if job.status == "running":
        _flag(platform, job, "cancel")
    platform.events.add(job.id, "Job cancelled by request")
    return platform.jobs.finish(job.id, "cancelled")


def pause(platform, job: Job) -> Job:
    if job.status != "running":
        raise Conflict(f"Only a running job can be paused; {job.id} is {job.status}.", param="fine_tuning_job_id")
    _flag(platform, job, "pause")
    platform.events.add(job.id, "Pause requested: stopping at the next step with a checkpoint")
    return platform.jobs.get(None, job.id)


def resume(platform, job: Job) -> Job:
    if job.status != "paused":
        raise Conflict(f"Only a paused job can be resumed; {job.id} is {job.status}.", param="fine_tuning_job_id")
    (platform.work_dir / job.id / "control").unlink(missing_ok=True)
    platform.jobs.set_status(job.id, "queued")
    platform.events.add(job.id, "Job resumed: queued to continue from its last checkpoint")
    return platform.jobs.get(None, job.id)
