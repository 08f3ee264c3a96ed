"""Batches as OpenAI shows them: created from an uploaded JSONL file, listed newest first,
cancelled. A batch is a job of kind `batch` (jobs/store.py); its OpenAI status is read from
the job's status and the phase its handler reports."""

from __future__ import annotations

import time

from sqlalchemy import select, tuple_

from rixin.batches.lines import ENDPOINTS
from rixin.errors import Conflict, InvalidRequest, NotFound
from rixin.jobs.store import FINAL, JobStore, owner_alive
from rixin.store.files import Files
from rixin.store.schema import Job
from rixin.store.tenancy import Caller

WINDOWS = {"24h": 24 * 3600}


def create(jobs: JobStore, files: Files, caller: Caller, *, input_file_id: str, endpoint: str,
           completion_window: str, metadata: dict | None) -> Job:
    if endpoint not in ENDPOINTS:
        raise InvalidRequest(f"Invalid 'endpoint': {endpoint!r}. Supported values are: "
                             f"{', '.join(repr(e) for e in ENDPOINTS)}.", param="endpoint", code="invalid_value")
    if completion_window not in WINDOWS:
        raise InvalidRequest(f"Invalid 'completion_window': {completion_window!r}. Supported values are: '24h'.",
                             param="completion_window", code="invalid_value")
    source = files.get(caller, input_file_id)
    if source.purpose != "batch":
        raise InvalidRequest(f"File {input_file_id} has purpose {source.purpose!r}; upload the requests with "
                             "purpose 'batch'.", param="input_file_id", code="invalid_value")
    now = int(time.time())
    # priority 0, the lowest: batches fill what interactive jobs leave
    return jobs.create(caller, "batch", {"input_file_id": input_file_id, "endpoint": endpoint,
                                         "completion_window": completion_window, "metadata": metadata,
                                         "created_at": now, "expires_at": now + WINDOWS[completion_window],
                                         "key_id": caller.key_id, "priority": 0})


def get(jobs: JobStore, caller: Caller, batch_id: str) -> Job:
    with jobs.db.session() as s:
        job = s.get(Job, batch_id)
    if job is None or job.kind != "batch" or job.project_id != caller.project_id:
        raise NotFound(f"No such Batch object: {batch_id}", param="batch_id")
    return job


def listing(jobs: JobStore, caller: Caller, *, after: str | None, limit: int) -> tuple[list[Job], bool]:
    """The project's batches, newest first; (page, has_more)."""
    with jobs.db.session() as s:
        q = select(Job).where(Job.project_id == caller.project_id, Job.kind == "batch")
        if after:
            anchor = get(jobs, caller, after)
            q = q.where(tuple_(Job.created_at, Job.id) < tuple_(anchor.created_at, anchor.id))
        rows = list(s.scalars(q.order_by(Job.created_at.desc(), Job.id.desc()).limit(limit + 1)))
    return rows[:limit], len(rows) > limit


def cancel(jobs: JobStore, caller: Caller, batch_id: str) -> Job:
    job = get(jobs, caller, batch_id)
    if job.status in FINAL:
        raise Conflict(f"Batch {batch_id} is already {status(job)}; it cannot be cancelled.", param="batch_id")
    jobs.progress(job.id, cancelling_at=int(time.time()))
    jobs.finish(job.id, "cancelled")  # the running handler notices, writes what was answered
    return get(jobs, caller, batch_id)


def status(job: Job) -> str:
    """OpenAI's batch status from the job's status and the phase its handler reported."""
    phase = (job.progress or {}).get("phase")
    if job.status == "queued":
        return "validating"
    if job.status == "running":
        return phase if phase in ("in_progress", "finalizing") else "validating"
    if job.status == "succeeded":
        return "expired" if phase == "expired" else "completed"
    if job.status == "cancelled":
        # the handler is still writing the answered lines: cancelling until it is done
        busy = phase in ("in_progress", "finalizing") and owner_alive(job.owner)
        return "cancelling" if busy else "cancelled"
    return "failed"
