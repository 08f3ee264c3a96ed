"""/v1/deployments: stable names for models, switched atomically, with their history."""

from __future__ import annotations

from fastapi import APIRouter, Body, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deployments.protocol import (CreateDeployment, Rollback, UpdateDeployment, change_object,
                                            deployment_object)
from rixin.api.deps import get_caller, get_platform
from rixin.errors import NotFound
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


def check_references(platform: Platform, caller: Caller, flywheel: dict | None) -> None:
    """A file the flywheel names must be the caller's: another project's id is a 404, as
    everywhere else (the eval gate would otherwise read another tenant's eval set)."""
    file_id = (flywheel or {}).get("eval_file_id")
    if isinstance(file_id, str):
        try:
            platform.files.get(caller, file_id)
        except NotFound as e:
            raise NotFound(e.message, param="flywheel.eval_file_id") from e


@router.post("/deployments")
async def create_deployment(body: CreateDeployment, platform: Platform = Depends(get_platform),
                            caller: Caller = Depends(get_caller)):
    def create():
        check_references(platform, caller, body.flywheel)
        return platform.deployments.create(caller, **body.model_dump())

    return deployment_object(await run_in_threadpool(create))


@router.get("/deployments")
async def list_deployments(platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    rows = await run_in_threadpool(platform.deployments.list, caller)
    return page([deployment_object(r) for r in rows])


@router.get("/deployments/{name}")
async def get_deployment(name: str, platform: Platform = Depends(get_platform),
                         caller: Caller = Depends(get_caller)):
    return deployment_object(await run_in_threadpool(platform.deployments.get, caller, name))


@router.post("/deployments/{name}")
async def update_deployment(name: str, body: UpdateDeployment, platform: Platform = Depends(get_platform),
                            caller: Caller = Depends(get_caller)):
    fields = body.model_dump(exclude_unset=True)

    def update():
        check_references(platform, caller, body.flywheel)
        return platform.deployments.update(caller, name, **fields)

    return deployment_object(await run_in_threadpool(update))


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
    return page([change_object(r) for r in rows])


@router.delete("/deployments/{name}")
async def delete_deployment(name: str, platform: Platform = Depends(get_platform),
                            caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.deployments.delete, caller, name)
    return {"id": row.id, "object": "deployment", "name": row.name, "deleted": True}
