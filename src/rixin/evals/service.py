"""Eval runs: start one (an EvalRun row + a queued "eval" job), read it back.

The flywheel's promotion gate calls exactly these two functions:

    start_run(services, caller, *, models: list[str], eval_file_id: str, graders: list[dict],
              name: str | None = None, max_tokens: int = 64) -> EvalRun
    get_run(services, caller, run_id: str) -> EvalRun
    (and, to block: wait_run(services, caller, run_id, timeout_s=3600) -> EvalRun, or, from
    inside another job, run_inline(services, caller, run_id) -> EvalRun: runs it in this thread)

`services`: the platform's EvalServices (evals/job.py), built once in platform.py.

A `models` entry may also be a variant `{"model": id, "name": label, "system": prompt}` (the
same model under another system prompt); the summary then uses its name instead of the id.

`EvalRun.status`: queued | running | succeeded | failed | cancelled (the job's status).
`EvalRun.summary` once succeeded (diff = b − a on the per-item mean score, a = models[0],
b = models[1]; None when fewer or more than two models):

    {"models": {model_id: {"mean": float, "graders": {grader_name: mean}}},
     "n": int,
     "diff": {"a": id, "b": id, "mean": float, "ci_low": float, "ci_high": float,
              "wins": int, "ties": int, "losses": int} | None,
     "reasons": {model_id: {"<grader>:<reason>": count}}}

(`wins` counts items where b scored higher than a.) The CI is a seeded paired bootstrap 95%
interval (2000 resamples) of the mean per-item difference.
"""

from __future__ import annotations

from functools import partial

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sqlalchemy import select, tuple_

from rixin.errors import InvalidRequest, ModelNotFound, NotFound, invalid_from
from rixin.evals.evalset import load_items
from rixin.evals.graders import duplicate_at, engine_models, parse_graders
from rixin.evals.job import EvalServices, run_eval
from rixin.jobs.store import FINAL, JobStore
from rixin.models.registry import Registry
from rixin.store.files import Files
from rixin.store.schema import EvalRun
from rixin.store.tenancy import Caller, new_id

DEFAULT_MAX_TOKENS = 64
MAX_MODELS = 8


class ModelVariant(BaseModel):
    """A model with its own system prompt, compared under its own name (rixin extension)."""

    model_config = ConfigDict(extra="forbid")
    model: str = Field(min_length=1, description="A chat model id.")
    name: str = Field("", max_length=128, description="Its name in the summary; default: the model id.")
    system: str = Field("", description="A system message put before each item's messages.")


def variants(models: list) -> list[ModelVariant]:
    """Model entries (an id, or {"model", "name", "system"}) as variants; 400 naming the entry."""
    if not isinstance(models, list) or not models:
        raise InvalidRequest("'models' must be a non-empty list of model ids.", param="models")
    if len(models) > MAX_MODELS:
        raise InvalidRequest(f"At most {MAX_MODELS} models per run.", param="models")
    out = []
    for i, entry in enumerate(models):
        try:
            v = ModelVariant(model=entry) if isinstance(entry, str) else ModelVariant.model_validate(entry)
        except ValidationError as e:
            err = invalid_from(e, prefix_param=f"models[{i}]", model=ModelVariant, hint='An entry is a model '
                               'id or {"model": id, "name": ..., "system": ...}.')
            err.param = f"models[{i}]"  # the entry, which the client replaces as a whole
            raise err from e
        out.append(v if v.name else v.model_copy(update={"name": v.model}))
    i = duplicate_at([v.name for v in out])
    if i is not None:
        raise InvalidRequest(f"'models' names '{out[i].name}' twice; give a variant its own 'name'.",
                             param=f"models[{i}]")
    return out


def _check_models(registry: Registry, caller: Caller, models: list) -> list[ModelVariant]:
    out = variants(models)
    for i, v in enumerate(out):
        try:
            registry.get(v.model, caller, kind="chat")
        except (ModelNotFound, InvalidRequest) as e:
            raise type(e)(e.message, param=f"models[{i}]", code=e.code) from e
    return out


def _check_file(files: Files, caller: Caller, eval_file_id: str) -> None:
    try:
        row = files.get(caller, eval_file_id)  # 404 for unknown ids and other projects' files
    except NotFound as e:
        raise NotFound(e.message, param="eval_file_id") from e
    if row.purpose != "evals":
        raise InvalidRequest(f"File {row.id} has purpose '{row.purpose}'; eval sets are uploaded with "
                             "purpose 'evals'.", param="eval_file_id", code="invalid_file_purpose")
    load_items(files.path(row), f"file {row.id}")  # line-numbered 400s now, not in the job


def start_run(services: EvalServices, caller: Caller, *, models: list[str | dict], eval_file_id: str,
              graders: list[dict], name: str | None = None, max_tokens: int = DEFAULT_MAX_TOKENS) -> EvalRun:
    """Validate everything a run needs, then create the EvalRun row and its queued "eval" job."""
    variants_ = _check_models(services.registry, caller, models)
    configs = parse_graders(graders)
    for i, config in enumerate(configs):
        needs = engine_models([config])
        try:
            for model, kind in needs:
                services.registry.get(model, caller, kind=kind)
        except (ModelNotFound, InvalidRequest) as e:
            raise type(e)(f"Grader graders[{i}]: {e.message}", param=f"graders[{i}].model", code=e.code) from e
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or not 1 <= max_tokens <= 4096:
        raise InvalidRequest("'max_tokens' must be an integer from 1 to 4096.", param="max_tokens")
    if name is not None and (not isinstance(name, str) or len(name) > 128):
        raise InvalidRequest("'name' must be a string of at most 128 characters.", param="name")
    _check_file(services.files, caller, eval_file_id)
    dumped = [c.model_dump(mode="json", by_alias=True, exclude_defaults=True) | {"type": c.type}
              for c in configs]
    run = EvalRun(id=new_id("evalrun"), project_id=caller.project_id, name=name, eval_file_id=eval_file_id,
                  models=list(models), graders=dumped, status="queued", summary={})
    with services.db.session() as s:  # the row first: the runner may claim the job at once
        s.add(run)
    job = services.jobs.create(caller, "eval", {"run_id": run.id, "eval_file_id": eval_file_id,
                                                "models": [v.model_dump() for v in variants_],
                                                "graders": dumped,
                                                "max_tokens": max_tokens})
    with services.db.session() as s:
        s.get(EvalRun, run.id).job_id = job.id
    return get_run(services, caller, run.id)


def get_run(services: EvalServices, caller: Caller, run_id: str) -> EvalRun:
    """The run (404 for unknown ids and other projects' runs), its status following its job's."""
    with services.db.session() as s:
        run = s.get(EvalRun, run_id)
        if run is None or run.project_id != caller.project_id:
            raise NotFound(f"No such eval run: {run_id}", param="run_id")
        if run.status not in FINAL and run.job_id:
            job = services.jobs.get(None, run.job_id)
            if job.status in ("failed", "cancelled"):  # the handler never got to say so itself
                run.status, run.finished_at = job.status, job.finished_at
        return run


def wait_run(services: EvalServices, caller: Caller, run_id: str, *, timeout_s: float = 3600,
             poll_s: float = 1.0) -> EvalRun:
    """Block until the run is final (the gateway's runner does the work); TimeoutError otherwise."""
    import time

    deadline = time.monotonic() + timeout_s
    while True:
        run = get_run(services, caller, run_id)
        if run.status in FINAL:
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"eval run {run_id} still {run.status} after {timeout_s:.0f} s")
        time.sleep(poll_s)


def run_inline(services: EvalServices, caller: Caller, run_id: str) -> EvalRun:
    """Run the run's queued job in this thread and return the final run. For a caller that is
    itself a job (a flywheel turn): waiting for the runner could deadlock when every job slot is
    taken. If a runner claimed the job first, this waits for it instead."""
    from rixin.jobs.runner import run_job

    run = get_run(services, caller, run_id)
    job = services.jobs.claim(run.job_id) if run.job_id else None
    if job is None:
        return wait_run(services, caller, run_id)
    run_job(services.jobs, job, {"eval": partial(run_eval, services)})
    return get_run(services, caller, run_id)


def job_of(jobs: JobStore, run: EvalRun):
    return jobs.get(None, run.job_id) if run.job_id else None


def list_runs(services: EvalServices, caller: Caller, *, eval_file_id: str | None = None, limit: int = 20,
              after: str | None = None) -> tuple[list[EvalRun], bool]:
    """The project's runs, newest first; (page, has_more). `after`: the last id of the previous page."""
    with services.db.session() as s:
        q = select(EvalRun).where(EvalRun.project_id == caller.project_id)
        if eval_file_id:
            q = q.where(EvalRun.eval_file_id == eval_file_id)
        if after:
            anchor = s.get(EvalRun, after)
            if anchor is None or anchor.project_id != caller.project_id:
                raise NotFound(f"No such eval run: {after}", param="after")
            q = q.where(tuple_(EvalRun.created_at, EvalRun.id) < tuple_(anchor.created_at, anchor.id))
        rows = list(s.scalars(q.order_by(EvalRun.created_at.desc(), EvalRun.id.desc()).limit(limit + 1)))
    return [get_run(services, caller, r.id) for r in rows[:limit]], len(rows) > limit


def run_items(services: EvalServices, caller: Caller, run_id: str, *, offset: int = 0,
              limit: int = 50) -> tuple[list[dict], bool]:
    """Per-item outputs, scores and differences of a finished run; (page, has_more)."""
    from rixin.data.records import iter_jsonl

    run = get_run(services, caller, run_id)
    if not run.results_sha256:
        return [], False
    page = []
    for i, record in enumerate(iter_jsonl(services.artifacts.path(run.results_sha256))):
        if i >= offset + limit:
            return page, True
        if i >= offset:
            page.append(record)
    return page, False
