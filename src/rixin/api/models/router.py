"""GET /v1/models and /v1/models/{id}: the models the caller's project may use."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deps import get_caller, get_platform
from rixin.api.models.protocol import model_object
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.get("/models")
async def list_models(platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    rows = await run_in_threadpool(platform.registry.list, caller)
    return page([model_object(r) for r in rows], has_more=None)


@router.get("/models/{model_id:path}")
async def retrieve_model(model_id: str, platform: Platform = Depends(get_platform),
                         caller: Caller = Depends(get_caller)):
    return model_object(await run_in_threadpool(platform.registry.get, model_id, caller))
