"""The Admin API's usage, costs and audit logs (OpenAI's shapes; admin keys only), and the same
usage and costs of the caller's own project for any key under /v1/me/ (rixin's own routes: a
project's console page and `rixin usage` with a project key), as if `project_ids=<its project>`.

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

router = APIRouter(prefix="/v1/organization", dependencies=[Depends(get_admin)])
own_router = APIRouter(prefix="/v1/me")


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


def own_query(q: UsageQuery = Depends(usage_query), caller: Caller = Depends(get_caller)) -> UsageQuery:
    """The caller's own project only."""
    if any(p != caller.project_id for p in q.project_ids):
        raise PermissionDenied("/v1/me/ reads the key's own project only: leave out project_ids, or "
                               "use /v1/organization/ with an admin key.")
    q.project_ids = [caller.project_id]
    return q


def _usage(kind: str, query):
    async def usage(q: UsageQuery = Depends(query), platform: Platform = Depends(get_platform)):
        return await run_in_threadpool(usage_page, platform.db, q, kind)
    return usage


def _costs(query):
    async def costs(q: UsageQuery = Depends(query), platform: Platform = Depends(get_platform)):
        return await run_in_threadpool(costs_page, platform.db, platform.controls.budgets, q)
    return costs


# The same three routes twice: every project (admin) and the caller's own project.
for _router, _query in ((router, usage_query), (own_router, own_query)):
    for _kind in ("completions", "embeddings"):
        _router.add_api_route(f"/usage/{_kind}", _usage(_kind, _query), methods=["GET"],
                              summary=f"Usage {_kind}")
    _router.add_api_route("/costs", _costs(_query), methods=["GET"], summary="Costs")


@router.get("/audit_logs")
async def audit_logs(request: Request, limit: int = Query(20, ge=1, le=100), after: str | None = None,
                     platform: Platform = Depends(get_platform)):
    return await run_in_threadpool(platform.controls.audit.page, limit, after,
                                   _listed(request, "event_types"))
