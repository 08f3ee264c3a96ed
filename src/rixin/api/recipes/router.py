"""/v1/recipes (rixin extension): cleaning recipes stored in the project, and the packaged ones.

A cleaning request names a recipe by packaged name, by a stored recipe's id or name, or
sends one inline; it never names a file on the server (see rixin.data.recipe_store)."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from rixin.api.deps import get_caller, get_platform
from rixin.api.recipes import service
from rixin.api.recipes.protocol import RECIPE_BODY
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/recipes", openapi_extra=RECIPE_BODY)
async def create_recipe(request: Request, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    raw = await request.body()
    content_type = request.headers.get("content-type", "application/json")
    return await run_in_threadpool(service.create, platform, caller, raw, content_type)


@router.get("/recipes")
async def list_recipes(platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    return await run_in_threadpool(service.list_all, platform, caller)


@router.get("/recipes/{recipe_id}")
async def retrieve_recipe(recipe_id: str, platform: Platform = Depends(get_platform),
                          caller: Caller = Depends(get_caller)):
    return await run_in_threadpool(service.get, platform, caller, recipe_id)


@router.delete("/recipes/{recipe_id}")
async def delete_recipe(recipe_id: str, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    return await run_in_threadpool(service.delete, platform, caller, recipe_id)
