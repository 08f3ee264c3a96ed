"""/v1/fine_tuning/jobs: create, list, retrieve, events, checkpoints, cancel, pause, resume, and
rixin's estimate (a dry run of create)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deps import get_caller, get_platform
from rixin.api.fine_tuning.protocol import CreateFineTuningJob, checkpoint_object, event_object, job_object
from rixin.errors import NotFound
from rixin.platform import Platform
from rixin.store.tenancy import Caller
from rixin.train import control
from rixin.train.job import create_job, estimate_job

router = APIRouter(prefix="/v1/fine_tuning")


def own_job(platform: Platform, caller: Caller, job_id: str):
    job = platform.jobs.get(caller, job_id)
    if job.kind != "fine_tune":
        raise NotFound(f"No such fine-tuning job: {job_id}", param="fine_tuning_job_id")
    return job


@router.post("/jobs")
async def create(body: CreateFineTuningJob, platform: Platform = Depends(get_platform),
                 caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(lambda: create_job(
        platform.training, caller, model=body.model, training_file_id=body.training_file,
        validation_file_id=body.validation_file, suffix=body.suffix, seed=body.seed, method=body.method,
        hyperparameters=body.hyperparameters, metadata=body.metadata, priority=body.priority,
        resources=body.resources.model_dump() if body.resources else None))
    return job_object(job, caller.project_name)


@router.post("/jobs/estimate")
async def estimate(body: CreateFineTuningJob, platform: Platform = Depends(get_platform),
                   caller: Caller = Depends(get_caller)):
    """rixin extension: the hyperparameters a job with this body would train with ("auto"
    resolved for its file and model) and the estimated time; creates nothing."""
    found = await run_in_threadpool(lambda: estimate_job(
        platform.training, caller, model=body.model, training_file_id=body.training_file,
        validation_file_id=body.validation_file, suffix=body.suffix, method=body.method,
        hyperparameters=body.hyperparameters))
    return {"object": "fine_tuning.job.estimate", **found}


@router.get("/jobs")
async def list_jobs(after: str | None = None, limit: int = Query(20, ge=1, le=100),
                    platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    jobs = await run_in_threadpool(platform.jobs.list, caller, "fine_tune")
    if after:
        ids = [j.id for j in jobs]
        if after not in ids:
            raise NotFound(f"No such fine-tuning job: {after}", param="after")
        jobs = jobs[ids.index(after) + 1:]
    return page([job_object(j, caller.project_name) for j in jobs[:limit]], len(jobs) > limit, cursor=True)


@router.get("/jobs/{job_id}")
async def retrieve(job_id: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    return job_object(await run_in_threadpool(own_job, platform, caller, job_id), caller.project_name)


@router.get("/jobs/{job_id}/events")
async def events(job_id: str, after: str | None = None, limit: int = Query(20, ge=1, le=1000),
                 platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    await run_in_threadpool(own_job, platform, caller, job_id)
    rows, has_more = await run_in_threadpool(lambda: platform.events.page(job_id, after=after, limit=limit))
    return page([event_object(e) for e in rows], has_more, cursor=True)


@router.get("/jobs/{job_id}/checkpoints")
async def checkpoints(job_id: str, after: str | None = None, limit: int = Query(10, ge=1, le=100),
                      platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(own_job, platform, caller, job_id)
    rows, has_more = await run_in_threadpool(lambda: platform.events.checkpoints(job_id, after=after, limit=limit))
    model = (job.result or {}).get("fine_tuned_model")
    return page([checkpoint_object(c, job, model) for c in rows], has_more, cursor=True)


@router.post("/jobs/{job_id}/cancel")
async def cancel(job_id: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(own_job, platform, caller, job_id)
    return job_object(await run_in_threadpool(control.cancel, platform.training, job), caller.project_name)


@router.post("/jobs/{job_id}/pause")
async def pause(job_id: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(own_job, platform, caller, job_id)
    return job_object(await run_in_threadpool(control.pause, platform.training, job), caller.project_name)


@router.post("/jobs/{job_id}/resume")
async def resume(job_id: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(own_job, platform, caller, job_id)
    return job_object(await run_in_threadpool(control.resume, platform.training, job), caller.project_name)
