"""/v1/review_items (rixin extension): the labeling review queue, and committing its verdicts
into a new dataset version."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from rixin.api.datasets.protocol import version_object
from rixin.api.deps import get_caller, get_platform
from rixin.api.review.protocol import CorrectItem, review_item_object, review_list_object
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.get("/review_items")
async def list_review_items(dataset_id: str | None = None, job_id: str | None = None,
                            status: Literal["pending", "accepted", "corrected", "rejected"] | None = None,
                            limit: int = Query(20, ge=1, le=1000), after: str | None = None,
                            platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    items, has_more = await run_in_threadpool(lambda: platform.review.list(
        caller, dataset_id=dataset_id, job_id=job_id, status=status, limit=limit, after=after))
    return review_list_object(items, has_more)


@router.get("/review_items/{item_id}")
async def retrieve_review_item(item_id: str, platform: Platform = Depends(get_platform),
                               caller: Caller = Depends(get_caller)):
    return review_item_object(await run_in_threadpool(platform.review.get, caller, item_id))


@router.post("/review_items/{item_id}/accept")
async def accept_review_item(item_id: str, platform: Platform = Depends(get_platform),
                             caller: Caller = Depends(get_caller)):
    return review_item_object(await run_in_threadpool(platform.review.accept, caller, item_id))


@router.post("/review_items/{item_id}/correct")
async def correct_review_item(item_id: str, body: CorrectItem, platform: Platform = Depends(get_platform),
                              caller: Caller = Depends(get_caller)):
    return review_item_object(await run_in_threadpool(platform.review.correct, caller, item_id, body.label))


@router.post("/review_items/{item_id}/reject")
async def reject_review_item(item_id: str, platform: Platform = Depends(get_platform),
                             caller: Caller = Depends(get_caller)):
    return review_item_object(await run_in_threadpool(platform.review.reject, caller, item_id))


@router.post("/datasets/{dataset_id}/review/commit")
async def commit_review(dataset_id: str, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    return version_object(await run_in_threadpool(platform.review.commit, caller, dataset_id))
