"""/v1/files: upload (streamed to disk), list, retrieve, content, delete."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import FileResponse, Response
from starlette.requests import ClientDisconnect
from starlette.concurrency import run_in_threadpool

from rixin.api.pages import page
from rixin.api.gate import NUL_MESSAGE
from rixin.api.deps import get_caller, get_platform
from rixin.api.files.protocol import file_object
from rixin.api.files.upload import receive_upload
from rixin.compute.quotas import storage
from rixin.errors import InvalidRequest, RixinError
from rixin.platform import Platform
from rixin.store.files import check_filename, check_purpose
from rixin.store.tenancy import Caller

router = APIRouter(prefix="/v1")


@router.post("/files")
async def upload_file(request: Request, platform: Platform = Depends(get_platform),
                      caller: Caller = Depends(get_caller)):
    stored = await run_in_threadpool(storage, platform.db, caller.project_id)
    try:
        upload = await receive_upload(request, platform.artifacts, platform.settings.max_file_bytes, stored)
    except ClientDisconnect:  # the client went away mid-upload; nothing was kept, nobody to answer
        return Response(status_code=499)
    try:
        purpose = check_purpose(upload.fields.get("purpose"))
        filename = check_filename(upload.filename)
        if "\x00" in filename:  # a multipart header may carry one raw; no store keeps it
            raise InvalidRequest(NUL_MESSAGE, param="file", code="invalid_text")
    except RixinError:
        upload.abort()
        raise
    # all or nothing: a full disk (507) or a database refusing writes (503) leaves no bytes, no row
    row = await run_in_threadpool(platform.files.add, caller, upload.writer, filename=filename,
                                  purpose=purpose)
    return file_object(row)


@router.get("/files")
async def list_files(purpose: str | None = None, limit: int = Query(10000, ge=1, le=10000),
                     after: str | None = None, order: Literal["asc", "desc"] = "desc",
                     platform: Platform = Depends(get_platform), caller: Caller = Depends(get_caller)):
    rows, has_more = await run_in_threadpool(platform.files.list, caller, purpose=purpose, limit=limit,
                                             after=after, order=order)
    data = [file_object(r) for r in rows]
    return page(data, has_more, cursor=True)


@router.get("/files/{file_id}")
async def retrieve_file(file_id: str, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    return file_object(await run_in_threadpool(platform.files.get, caller, file_id))


@router.get("/files/{file_id}/content")
async def file_content(file_id: str, platform: Platform = Depends(get_platform),
                       caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.files.get, caller, file_id)
    return FileResponse(platform.files.path(row), media_type="application/octet-stream",
                        filename=row.filename)


@router.delete("/files/{file_id}")
async def delete_file(file_id: str, platform: Platform = Depends(get_platform),
                      caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.files.delete, caller, file_id)
    return {"id": row.id, "object": "file", "deleted": True}
