"""Flywheel turns and exports (rixin extension) under /v1/deployments/{name}/flywheel."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

from rixin.api.params import UnixSeconds
from rixin.jobs.store import ts
from rixin.store.schema import FlywheelTurn


class ExportRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: UnixSeconds | None = None
    """Unix seconds: only feedback given after this (default: all)."""


def turn_object(row: FlywheelTurn) -> dict:
    decision = dict(row.decision or {})
    return {"id": row.id, "object": "flywheel.turn", "status": row.status, "stage": decision.pop("stage", None),
            "current_model": row.current_model, "candidate_model": row.candidate_model,
            "feedback_since": ts(row.feedback_since), "feedback_until": ts(row.feedback_until),
            "dataset_version_id": row.dataset_version_id, "fine_tune_job_id": row.fine_tune_job_id,
            "eval_run_id": row.eval_run_id, "decision": decision, "created_at": ts(row.created_at),
            "finished_at": ts(row.finished_at)}
