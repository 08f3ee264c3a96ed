"""GET/PUT /v1/organization/projects/{project_id}/quota: a project's share of the compute
(rixin's own Admin API route; admin keys only). `project_id` is the id or the name."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.deps import get_admin, get_platform
from rixin.compute.admission import capacity
from rixin.compute.quotas import QuotaBody, Quotas
from rixin.compute.resources import accelerators
from rixin.platform import Platform

router = APIRouter(prefix="/v1/organization/projects/{project_id}/quota")


@router.get("")
async def get_quota(project_id: str, platform: Platform = Depends(get_platform), _=Depends(get_admin)):
    return await run_in_threadpool(Quotas(platform.db).get, project_id)


@router.put("")
async def put_quota(project_id: str, body: QuotaBody, platform: Platform = Depends(get_platform),
                    _=Depends(get_admin)):
    """Replace the project's quota; takes effect at the scheduler's next decision. Guarantees
    may not add up to more than the cluster has (the gateway's job slots, Ray's accelerators)."""
    cluster = await run_in_threadpool(capacity, platform.settings.job_slots, accelerators())
    quota = await run_in_threadpool(Quotas(platform.db).put, project_id, body, cluster)
    platform.controls.budgets.forget()  # the quota's budget is the one the gate enforces
    return quota
