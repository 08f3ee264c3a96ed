from __future__ import annotations

from fastapi import APIRouter, Depends, Request

from rixin.api.chat import service
from rixin.api.chat.protocol import ChatCompletionRequest
from rixin.api.deps import get_caller, get_platform
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/chat/completions")
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    return await service.create(platform, caller, body, request)
