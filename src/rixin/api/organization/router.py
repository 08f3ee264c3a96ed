"""The Admin API's projects, their keys and rate limits (OpenAI's shapes), and rixin's prices
and budgets. Admin keys only; /v1/projects stays as the older alias."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Path
from starlette.concurrency import run_in_threadpool

from rixin.api.deps import get_admin, get_platform
from rixin.api.organization.protocol import (MODEL_ID, SetBudget, SetPrice, UpdateRateLimit, budget_object,
                                             key_object, price_object, project_object,
                                             rate_limit_object)
from rixin.api.pages import page
from rixin.api.projects.protocol import CreateKey, CreateProject
from rixin.compute.budget import Rates
from rixin.errors import NotFound
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1/organization", dependencies=[Depends(get_admin)])


@router.get("/projects")
async def list_projects(platform: Platform = Depends(get_platform)):
    rows = await run_in_threadpool(platform.tenancy.list_projects)
    return page([project_object(p) for p in rows], has_more=False, cursor=True)


@router.post("/projects")
async def create_project(body: CreateProject, platform: Platform = Depends(get_platform)):
    return project_object(await run_in_threadpool(platform.tenancy.ensure_project, body.name))


@router.get("/projects/{project_id}")
async def get_project(project_id: str, platform: Platform = Depends(get_platform)):
    return project_object(await run_in_threadpool(platform.tenancy.find_project, project_id))


@router.get("/projects/{project_id}/api_keys")
async def list_keys(project_id: str, platform: Platform = Depends(get_platform)):
    project = await run_in_threadpool(platform.tenancy.find_project, project_id)
    rows = await run_in_threadpool(platform.tenancy.list_keys, project.name)
    return page([key_object(k) for k in rows], has_more=False, cursor=True)


@router.post("/projects/{project_id}/api_keys")
async def create_key(project_id: str, body: CreateKey | None = None,
                     platform: Platform = Depends(get_platform)):
    body = body or CreateKey()
    project = await run_in_threadpool(platform.tenancy.find_project, project_id)
    new = await run_in_threadpool(lambda: platform.tenancy.create_key(
        project.name, name=body.name, admin=body.admin, read_only=body.read_only))
    rows = await run_in_threadpool(platform.tenancy.list_keys, project.name)
    return key_object(next(k for k in rows if k.id == new.id), secret=new.key)


@router.delete("/projects/{project_id}/api_keys/{key_id}")
async def delete_key(project_id: str, key_id: str, platform: Platform = Depends(get_platform)):
    project = await run_in_threadpool(platform.tenancy.find_project, project_id)
    row = await run_in_threadpool(platform.tenancy.revoke_key, project.name, key_id)
    return {"object": "organization.project.api_key.deleted", "id": row.id, "deleted": True}


@router.get("/projects/{project_id}/rate_limits")
async def list_rate_limits(project_id: str, platform: Platform = Depends(get_platform)):
    project = await run_in_threadpool(platform.tenancy.find_project, project_id)
    caller = Caller(project.id, project.name, key_id="", is_admin=False)
    models = [m.id for m in await run_in_threadpool(platform.registry.list, caller)]
    limits = await run_in_threadpool(platform.controls.limiter.list_limits, project.id, models)
    return page([rate_limit_object(m, lim) for m, lim in limits.items()], has_more=False, cursor=True)


@router.post("/projects/{project_id}/rate_limits/{rate_limit_id}")
async def update_rate_limit(project_id: str, body: UpdateRateLimit,
                            rate_limit_id: str = Path(max_length=MODEL_ID + 3, description="rl-MODEL"),
                            platform: Platform = Depends(get_platform)):
    if not rate_limit_id.startswith("rl-") or len(rate_limit_id) == 3:
        raise NotFound(f"No rate limit {rate_limit_id!r}: ids are rl-MODEL, as GET "
                       f"/v1/organization/projects/{project_id}/rate_limits lists them.", param="rate_limit_id")
    project = await run_in_threadpool(platform.tenancy.find_project, project_id)
    model = rate_limit_id[3:]
    limits = await run_in_threadpool(platform.controls.limiter.set_limit, project.id, model,
                                     body.max_requests_per_1_minute, body.max_tokens_per_1_minute)
    return rate_limit_object(model, limits)


@router.get("/projects/{project_id}/budget")
async def get_budget(project_id: str, platform: Platform = Depends(get_platform)):
    project = await run_in_threadpool(platform.tenancy.find_project, project_id)
    return budget_object(project.id, await run_in_threadpool(platform.controls.budgets.budget, project.id))


@router.post("/projects/{project_id}/budget")
async def set_budget(project_id: str, body: SetBudget, platform: Platform = Depends(get_platform)):
    project = await run_in_threadpool(platform.tenancy.find_project, project_id)
    await run_in_threadpool(platform.controls.budgets.set_budget, project.id, body.monthly_usd)
    return budget_object(project.id, body.monthly_usd)


@router.get("/prices")
async def list_prices(platform: Platform = Depends(get_platform)):
    prices = await run_in_threadpool(platform.controls.budgets.list_prices)
    return page([price_object(m, r) for m, r in sorted(prices.items())], has_more=False, cursor=True)


@router.post("/prices/{model:path}")
async def set_price(body: SetPrice, model: str = Path(max_length=MODEL_ID),
                    platform: Platform = Depends(get_platform)):
    cached = body.input_per_1m if body.cached_input_per_1m is None else body.cached_input_per_1m
    rates = await run_in_threadpool(platform.controls.budgets.set_price, model,
                                    Rates(body.input_per_1m, cached, body.output_per_1m))
    return price_object(model, rates)
