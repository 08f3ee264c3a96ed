"""The job object (rixin extension) for data jobs: cleaning, labeling."""

from __future__ import annotations

from rixin.jobs.store import ts
from rixin.store.schema import Job


def job_object(job: Job) -> dict:
    return {"id": job.id, "object": "job", "kind": job.kind, "status": job.status,
            "params": job.params, "progress": job.progress, "result": job.result, "error": job.error,
            "attempts": job.attempts, "created_at": ts(job.created_at), "started_at": ts(job.started_at),
            "finished_at": ts(job.finished_at)}
