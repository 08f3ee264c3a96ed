"""The Admin API's usage, costs and audit logs (OpenAI's shapes). Admin keys only.

Lists in the query string are read as OpenAI's clients send them: `group_by=model` repeated,
or `group_by[]=model`."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from rixin.api.deps import get_admin, get_platform
from rixin.compute.usage import MAX_TS, UsageQuery, costs_page, usage_page
from rixin.platform import Platform

router = APIRouter(prefix="/v1/organization", dependencies=[Depends(get_admin)])


def _listed(request: Request, name: str) -> list[str]:
    return request.query_params.getlist(name) + request.query_params.getlist(name + "[]")


def usage_query(request: Request,
                start_time: int = Query(ge=0, le=MAX_TS, description="Unix seconds, inclusive."),
                end_time: int | None = Query(None, ge=0, le=MAX_TS, description="Unix seconds, exclusive."),
                bucket_width: str = Query("1d", description="1m, 1h or 1d."),
                limit: int | None = Query(None, ge=1, description="Buckets per page."),
                page: str | None = Query(None, description="next_page of the previous page.")) -> UsageQuery:
    return UsageQuery(start_time, end_time, bucket_width, _listed(request, "group_by"),
                      _listed(request, "project_ids"), _listed(request, "api_key_ids"),
                      _listed(request, "models"), limit, page)


@router.get("/usage/completions")
async def usage_completions(q: UsageQuery = Depends(usage_query), platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(usage_page, platform.db, q, "completions")


@router.get("/usage/embeddings")
async def usage_embeddings(q: UsageQuery = Depends(usage_query), platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(usage_page, platform.db, q, "embeddings")


@router.get("/costs")
async def costs(q: UsageQuery = Depends(usage_query), platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(costs_page, platform.db, platform.controls.budgets, q)


@router.get("/audit_logs")
async def audit_logs(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None,
                     platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(platform.controls.audit.page, limit, after,
                                   _listed(request, "event_types"))
