from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from rixin.api.completions import service
from rixin.api.completions.protocol import CompletionRequest
from rixin.api.deps import get_caller, get_platform
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/completions")
async def completions(body: CompletionRequest, request: Request,
                      platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    return await service.create(platform, caller, body, request)
