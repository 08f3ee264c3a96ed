"""GET /v1/organization/compute: the shared compute now (admin keys only; rixin's own route,
the console's Compute page): each project's quota, what it holds per resource class (guaranteed,
in use, borrowed, lent), who lends to whom, and the newest waiting and preemption events."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from starlette.concurrency import run_in_threadpool

from rixin.api.deps import get_admin, get_platform
from rixin.compute import admission
from rixin.compute.quotas import Quotas, lending, scheduling_events
from rixin.compute.resources import accelerators
from rixin.platform import Platform

router = APIRouter(prefix="/v1/organization", dependencies=[Depends(get_admin)])


def compute_object(platform: Platform) -> dict:
    settings = platform.settings
    capacity = admission.capacity(settings.job_slots, accelerators())
    quotas = Quotas(platform.db)
    limits = quotas.for_scheduler(settings.max_running_jobs_per_project)
    rows = platform.jobs.running()
    # every running job of this gateway holds a job slot (one gateway runs them all)
    running = admission.running(rows, limits, {j.id for j in rows})
    holds, loans = lending(capacity, limits, running)
    every = quotas.every()
    names = {q["project_id"]: q["project"] for q in every}
    return {
        "object": "organization.compute", "capacity": capacity,
        "projects": [{"project_id": q["project_id"], "project": q["project"], "quota": q,
                      "running_jobs": sum(1 for j in rows if j.project_id == q["project_id"]),
                      "resources": holds.get(q["project_id"], {})} for q in every],
        "loans": [{**loan, "lender": names.get(loan["lender"]), "borrower": names.get(loan["borrower"])}
                  for loan in loans],
        "events": [{**e, "project": names.get(e["project_id"])} for e in scheduling_events(platform.db)],
    }


@router.get("/compute")
async def compute(platform: Platform = Depends(get_platform)):
    """Who holds, borrows and lends what of the cluster now, and the newest scheduling events."""
    return await run_in_threadpool(compute_object, platform)
