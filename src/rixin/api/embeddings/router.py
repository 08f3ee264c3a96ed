from __future__ import annotations

from fastapi import APIRouter, Depends

from rixin.api.deps import get_caller, get_platform
from rixin.api.embeddings import service
from rixin.api.embeddings.protocol import EmbeddingRequest
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/embeddings")
async def embeddings(body: EmbeddingRequest, platform: Platform = Depends(get_platform),
                     caller: Caller = Depends(get_caller)):
    return await service.create(platform, caller, body)
