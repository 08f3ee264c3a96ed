"""Eval runs (rixin extension): the request body and the run object."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictStr

from rixin.api.params import Integer
from rixin.api.sampling import Lenient
from rixin.evals.graders import GraderSpec
from rixin.evals.service import DEFAULT_MAX_TOKENS
from rixin.jobs.store import ts
from rixin.store.schema import EvalRun, Job


class CreateEvalRun(Lenient):
    name: Annotated[StrictStr, Field(max_length=128)] | None = None
    eval_file_id: StrictStr
    models: Annotated[list[StrictStr | dict], Field(min_length=1, max_length=8)]
    graders: Annotated[list[dict], Field(min_length=1)]
    max_tokens: Annotated[Integer, Field(ge=1, le=4096)] = DEFAULT_MAX_TOKENS


def run_object(run: EvalRun, job: Job | None = None) -> dict:
    return {"id": run.id, "object": "eval.run", "name": run.name, "eval_file_id": run.eval_file_id,
            "models": run.models, "graders": run.graders, "status": run.status,
            "job_id": run.job_id, "progress": (job.progress or {}) if job else {},
            "error": job.error if job else None, "summary": run.summary or None,
            "results_sha256": run.results_sha256, "created_at": ts(run.created_at),
            "finished_at": ts(run.finished_at)}


def grader_object(spec: GraderSpec) -> dict:
    """A grader as the console and clients discover it: its type, the kind of model it calls
    (null for text-only graders) and its config's JSON schema (descriptions included)."""
    return {"object": "eval.grader", "type": spec.name, "engine": spec.engine,
            "config_schema": spec.config.model_json_schema(by_alias=True)}
