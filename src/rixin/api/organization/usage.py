"""The Admin API's usage, costs and audit logs (OpenAI's shapes). Audit logs: admin keys only;
usage and costs: admin keys see every project, a project key its own project only (its console
page and `rixin usage`), as if it had passed `project_ids=<its project>`.

Lists in the query string are read as OpenAI's clients send them: `group_by=model` repeated,
or `group_by[]=model`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from rixin.api.deps import get_admin, get_caller, get_platform
from rixin.compute.usage import MAX_TS, UsageQuery, costs_page, usage_page
from rixin.errors import PermissionDenied
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1/organization")


def _listed(request: Request, name: str) -> list[str]:
    return request.query_params.getlist(name) + request.query_params.getlist(name + "[]")


def usage_query(request: Request,
                start_time: int = Query(ge=0, le=MAX_TS, description="Unix seconds, inclusive."),
                end_time: int | None = Query(None, ge=0, le=MAX_TS, description="Unix seconds, exclusive."),
                bucket_width: str = Query("1d", description="1m, 1h or 1d."),
                limit: int | None = Query(None, ge=1, description="Buckets per page."),
                page: str | None = Query(None, description="next_page of the previous page."),
                caller: Caller = Depends(get_caller)) -> UsageQuery:
    projects = _listed(request, "project_ids")
    if not caller.is_admin:
        if any(p != caller.project_id for p in projects):
            raise PermissionDenied("A project key reads its own project's usage only: leave out "
                                   "project_ids, or use an admin key.")
        projects = [caller.project_id]
    return UsageQuery(start_time, end_time, bucket_width, _listed(request, "group_by"), projects,
                      _listed(request, "api_key_ids"), _listed(request, "models"), limit, page)


@router.get("/usage/completions")
async def usage_completions(q: UsageQuery = Depends(usage_query), platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(usage_page, platform.db, q, "completions")


@router.get("/usage/embeddings")
async def usage_embeddings(q: UsageQuery = Depends(usage_query), platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(usage_page, platform.db, q, "embeddings")


@router.get("/costs")
async def costs(q: UsageQuery = Depends(usage_query), platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(costs_page, platform.db, platform.controls.budgets, q)


@router.get("/audit_logs", dependencies=[Depends(get_admin)])
async def audit_logs(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None,
                     platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(platform.controls.audit.page, limit, after,
                                   _listed(request, "event_types"))
