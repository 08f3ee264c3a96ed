"""/v1/evals (rixin extension): the graders a run may use; start an eval run, list runs, read one
and its items."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.params import offset_query
from rixin.api.deps import get_caller, get_platform
from rixin.api.evals.protocol import CreateEvalRun, grader_object, run_object
from rixin.evals import service
from rixin.evals.graders import registered
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1/evals")


def _object(platform: Platform, run) -> dict:
    return run_object(run, service.job_of(platform.jobs, run))


@router.get("/graders", dependencies=[Depends(get_caller)])
async def list_graders():
    """Every registered grader with its config schema (the console's form builds its hint on it)."""
    return page([grader_object(spec) for spec in registered().values()], has_more=False)


@router.post("/runs")
async def create_run(body: CreateEvalRun, platform: Platform = Depends(get_platform),
                     caller: Caller = Depends(get_caller)):
    run = await run_in_threadpool(lambda: service.start_run(
        platform.evals, caller, models=body.models, eval_file_id=body.eval_file_id, graders=body.graders,
        name=body.name, max_tokens=body.max_tokens))
    return await run_in_threadpool(_object, platform, run)


@router.get("/runs")
async def list_runs(eval_file_id: str | None = None, limit: int = Query(20, ge=1, le=100),
                    after: str | None = None, platform: Platform = Depends(get_platform),
                    caller: Caller = Depends(get_caller)):
    rows, has_more = await run_in_threadpool(lambda: service.list_runs(
        platform.evals, caller, eval_file_id=eval_file_id, limit=limit, after=after))
    data = [await run_in_threadpool(_object, platform, r) for r in rows]
    return page(data, has_more, cursor=True)


@router.get("/runs/{run_id}")
async def retrieve_run(run_id: str, platform: Platform = Depends(get_platform),
                       caller: Caller = Depends(get_caller)):
    run = await run_in_threadpool(service.get_run, platform.evals, caller, run_id)
    return await run_in_threadpool(_object, platform, run)


@router.get("/runs/{run_id}/items")
async def run_items(run_id: str, offset: int = offset_query(), limit: int = Query(50, ge=1, le=1000),
                    platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    items, has_more = await run_in_threadpool(lambda: service.run_items(
        platform.evals, caller, run_id, offset=offset, limit=limit))
    return page(items, has_more, offset=offset)
