"""OpenAI's stored chat completions (list, retrieve, update, delete, messages) and rixin's
request log search GET /v1/logs."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.deps import get_caller, get_platform
from rixin.api.params import since_query
from rixin.api.logs.protocol import UpdateStored, log_object, stored_completion, stored_messages
from rixin.errors import InvalidRequest
from rixin.flywheel.logs import LogQuery
from rixin.platform import Platform
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


def metadata_filter(request: Request) -> dict[str, str]:
    """`metadata[key]=value` (the openai client's encoding) or `metadata=key:value`."""
    out = {}
    for key, value in request.query_params.multi_items():
        if key.startswith("metadata[") and key.endswith("]"):
            out[key[9:-1]] = value
        elif key == "metadata":
            name, sep, wanted = value.partition(":")
            if not sep:
                raise InvalidRequest("Filter metadata as metadata[key]=value or metadata=key:value.",
                                     param="metadata", code="invalid_value")
            out[name] = wanted
    return out


@router.get("/chat/completions")
async def list_stored(request: Request, model: str | None = None, after: str | None = None,
                      limit: int = Query(20, ge=1, le=100), order: Literal["asc", "desc"] = "asc",
                      platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    q = LogQuery(endpoint="chat.completions", model=model, metadata=metadata_filter(request), after=after,
                 limit=limit, order=order)
    rows, more = await run_in_threadpool(platform.request_logs.search, caller, q)
    return page([stored_completion(r) for r in rows], more, cursor=True)


@router.get("/chat/completions/{completion_id}")
async def retrieve_stored(completion_id: str, platform: Platform = Depends(get_platform),
                          caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.request_logs.get, caller, completion_id, endpoint="chat.completions")
    return stored_completion(row)


@router.post("/chat/completions/{completion_id}")
async def update_stored(completion_id: str, body: UpdateStored, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.request_logs.update_metadata, caller, completion_id, body.metadata)
    return stored_completion(row)


@router.delete("/chat/completions/{completion_id}")
async def delete_stored(completion_id: str, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    await run_in_threadpool(platform.request_logs.delete, caller, completion_id)
    return {"id": completion_id, "object": "chat.completion.deleted", "deleted": True}


@router.get("/chat/completions/{completion_id}/messages")
async def stored_completion_messages(completion_id: str, after: str | None = None,
                                     limit: int = Query(20, ge=1, le=100), order: Literal["asc", "desc"] = "asc",
                                     platform: Platform = Depends(get_platform),
                                     caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.request_logs.get, caller, completion_id, endpoint="chat.completions")
    messages = stored_messages(row)
    if order == "desc":
        messages.reverse()
    if after is not None:
        ids = [m["id"] for m in messages]
        messages = messages[ids.index(after) + 1:] if after in ids else []
    return page(messages[:limit], len(messages) > limit, cursor=True)


@router.get("/logs")
async def search_logs(request: Request, deployment: str | None = None, model: str | None = None,
                      endpoint: Literal["chat.completions", "completions"] | None = None,
                      since: int | None = since_query("Only logs created at or after this (Unix seconds)."),
                      until: int | None = since_query("Only logs created before this (Unix seconds)."),
                      q: str | None = None,
                      after: str | None = None, limit: int = Query(20, ge=1, le=1000),
                      order: Literal["asc", "desc"] = "desc", platform: Platform = Depends(get_platform),
                      caller: Caller = Depends(get_caller)):
    query = LogQuery(endpoint=endpoint, model=model, deployment=deployment, metadata=metadata_filter(request),
                     contains=q, since=since, until=until, after=after, limit=limit, order=order)
    rows, more = await run_in_threadpool(platform.request_logs.search, caller, query)
    return page([log_object(r) for r in rows], more, cursor=True)
