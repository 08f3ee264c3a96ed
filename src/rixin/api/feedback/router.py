"""/v1/feedback: judge a logged completion; list the judgements."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deps import get_caller, get_platform
from rixin.api.feedback.protocol import CreateFeedback, feedback_object
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/feedback")
async def create_feedback(body: CreateFeedback, platform: Platform = Depends(get_platform),
                          caller: Caller = Depends(get_caller)):
    fields = body.model_dump(exclude={"completion_id"})
    row = await run_in_threadpool(lambda: platform.feedback.add(caller, body.completion_id, **fields))
    return feedback_object(row)


@router.get("/feedback")
async def list_feedback(completion_id: str | None = None, deployment: str | None = None,
                        limit: int = Query(100, ge=1, le=10000), platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    def rows():
        dep = platform.deployments.get(caller, deployment).id if deployment else None
        return platform.feedback.list(caller, completion_id=completion_id, deployment_id=dep, limit=limit)

    data = [feedback_object(r) for r in await run_in_threadpool(rows)]
    return page(data)
