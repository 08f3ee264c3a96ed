"""Admin routes for projects and keys, and GET /v1/me for any key."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deps import get_admin, get_caller, get_platform
from rixin.api.projects.protocol import CreateKey, CreateProject, key_object, project_object
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.get("/me")
async def me(caller: Caller = Depends(get_caller)):
    return {"object": "caller", "project": caller.project_name, "project_id": caller.project_id,
            "key_id": caller.key_id, "admin": caller.is_admin}


@router.get("/projects")
async def list_projects(platform: Platform = Depends(get_platform), _=Depends(get_admin)):
    rows = await run_in_threadpool(platform.tenancy.list_projects)
    return page([project_object(p) for p in rows], has_more=None)


@router.post("/projects")
async def create_project(body: CreateProject, platform: Platform = Depends(get_platform),
                         _=Depends(get_admin)):
    return project_object(await run_in_threadpool(platform.tenancy.ensure_project, body.name))


@router.get("/projects/{project}/api_keys")
async def list_keys(project: str, platform: Platform = Depends(get_platform), _=Depends(get_admin)):
    rows = await run_in_threadpool(platform.tenancy.list_keys, project)
    return page([key_object(k, project) for k in rows], has_more=None)


@router.post("/projects/{project}/api_keys")
async def create_key(project: str, body: CreateKey | None = None,
                     platform: Platform = Depends(get_platform), _=Depends(get_admin)):
    body = body or CreateKey()
    new = await run_in_threadpool(lambda: platform.tenancy.create_key(project, name=body.name,
                                                                      admin=body.admin,
                                                                      read_only=body.read_only))
    rows = await run_in_threadpool(platform.tenancy.list_keys, new.project)
    row = next(k for k in rows if k.id == new.id)
    return key_object(row, new.project, secret=new.key)


@router.delete("/projects/{project}/api_keys/{key_id}")
async def revoke_key(project: str, key_id: str, platform: Platform = Depends(get_platform),
                     _=Depends(get_admin)):
    row = await run_in_threadpool(platform.tenancy.revoke_key, project, key_id)
    return key_object(row, project)
