"""/v1/jobs (rixin extension): data jobs of the caller's project."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deps import get_caller, get_platform
from rixin.api.jobs.protocol import job_object
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.get("/jobs")
async def list_jobs(kind: str | None = None, platform: Platform = Depends(get_platform),
                    caller: Caller = Depends(get_caller)):
    rows = await run_in_threadpool(platform.jobs.list, caller, kind)
    return page([job_object(j) for j in rows], has_more=None)


@router.get("/jobs/{job_id}")
async def retrieve_job(job_id: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    return job_object(await run_in_threadpool(platform.jobs.get, caller, job_id))


@router.post("/jobs/{job_id}/cancel")
async def cancel_job(job_id: str, platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    return job_object(await run_in_threadpool(platform.jobs.cancel, caller, job_id))
