"""The Batch object of the OpenAI API and the create request."""

from __future__ import annotations

from pydantic import Field, StrictStr

from rixin.api.sampling import Lenient
from rixin.batches.service import status
from rixin.jobs.store import ts
from rixin.store.schema import Job


class CreateBatch(Lenient):
    completion_window: StrictStr
    endpoint: StrictStr
    input_file_id: StrictStr
    metadata: dict[StrictStr, StrictStr] | None = Field(None, max_length=16)


def batch_object(job: Job) -> dict:
    params, progress = job.params or {}, job.progress or {}
    state = status(job)
    errors = None
    if state == "failed" and job.error:
        errors = {"object": "list", "data": [{"code": job.error.get("code"), "message": job.error.get("message"),
                                              "param": job.error.get("param"), "line": None}]}
    return {
        "id": job.id,
        "object": "batch",
        "endpoint": params.get("endpoint"),
        "errors": errors,
        "input_file_id": params.get("input_file_id"),
        "completion_window": params.get("completion_window"),
        "status": state,
        "output_file_id": progress.get("output_file_id"),
        "error_file_id": progress.get("error_file_id"),
        "created_at": params.get("created_at") or ts(job.created_at),
        "in_progress_at": progress.get("in_progress_at"),
        "expires_at": params.get("expires_at"),
        "finalizing_at": progress.get("finalizing_at"),
        "completed_at": progress.get("completed_at"),
        "failed_at": ts(job.finished_at) if state == "failed" else None,
        "expired_at": progress.get("expired_at"),
        "cancelling_at": progress.get("cancelling_at"),
        "cancelled_at": progress.get("cancelled_at") or (ts(job.finished_at) if state == "cancelled" else None),
        "request_counts": progress.get("request_counts") or {"total": 0, "completed": 0, "failed": 0},
        "metadata": params.get("metadata"),
    }
