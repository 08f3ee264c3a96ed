"""/v1/deployments: stable names for models, switched atomically, with their history."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.deployments.protocol import (CreateDeployment, Rollback, UpdateDeployment, change_object,
                                            deployment_object)
from rixin.api.deps import get_caller, get_platform
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/deployments")
async def create_deployment(body: CreateDeployment, platform: Platform = Depends(get_platform),
                            caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(lambda: platform.deployments.create(caller, **body.model_dump()))
    return deployment_object(row)


@router.get("/deployments")
async def list_deployments(platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    rows = await run_in_threadpool(platform.deployments.list, caller)
    return {"object": "list", "data": [deployment_object(r) for r in rows], "has_more": False}


@router.get("/deployments/{name}")
async def get_deployment(name: str, platform: Platform = Depends(get_platform),
                         caller: Caller = Depends(get_caller)):
    return deployment_object(await run_in_threadpool(platform.deployments.get, caller, name))


@router.post("/deployments/{name}")
async def update_deployment(name: str, body: UpdateDeployment, platform: Platform = Depends(get_platform),
                            caller: Caller = Depends(get_caller)):
    fields = body.model_dump(exclude_unset=True)
    row = await run_in_threadpool(lambda: platform.deployments.update(caller, name, **fields))
    return deployment_object(row)


@router.post("/deployments/{name}/rollback")
async def rollback_deployment(name: str, body: Rollback | None = Body(None),
                              platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    reason = body.reason if body else None
    row = await run_in_threadpool(lambda: platform.deployments.rollback(caller, name, reason=reason))
    return deployment_object(row)


@router.get("/deployments/{name}/changes")
async def deployment_changes(name: str, platform: Platform = Depends(get_platform),
                             caller: Caller = Depends(get_caller)):
    rows = await run_in_threadpool(platform.deployments.changes, caller, name)
    return {"object": "list", "data": [change_object(r) for r in rows], "has_more": False}


@router.delete("/deployments/{name}")
async def delete_deployment(name: str, platform: Platform = Depends(get_platform),
                            caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.deployments.delete, caller, name)
    return {"id": row.id, "object": "deployment", "name": row.name, "deleted": True}
