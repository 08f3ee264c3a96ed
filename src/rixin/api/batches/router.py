"""/v1/batches: create from an uploaded JSONL file, retrieve, list, cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query
from starlette.concurrency import run_in_threadpool

from rixin.api.batches.protocol import CreateBatch, batch_object
from rixin.api.deps import get_caller, get_platform
from rixin.api.pages import page
from rixin.batches import service
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/batches")
async def create_batch(body: CreateBatch, platform: Platform = Depends(get_platform),
                       caller: Caller = Depends(get_caller)):
    job = await run_in_threadpool(service.create, platform.jobs, platform.files, caller,
                                  input_file_id=body.input_file_id, endpoint=body.endpoint,
                                  completion_window=body.completion_window, metadata=body.metadata)
    return batch_object(job)


@router.get("/batches")
async def list_batches(after: str | None = None, limit: int = Query(20, ge=1, le=100),
                       platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    rows, has_more = await run_in_threadpool(service.listing, platform.jobs, caller, after=after, limit=limit)
    return page([batch_object(r) for r in rows], has_more, cursor=True)


@router.get("/batches/{batch_id}")
async def retrieve_batch(batch_id: str, platform: Platform = Depends(get_platform),
                         caller: Caller = Depends(get_caller)):
    return batch_object(await run_in_threadpool(service.get, platform.jobs, caller, batch_id))


@router.post("/batches/{batch_id}/cancel")
async def cancel_batch(batch_id: str, platform: Platform = Depends(get_platform),
                       caller: Caller = Depends(get_caller)):
    return batch_object(await run_in_threadpool(service.cancel, platform.jobs, caller, batch_id))
