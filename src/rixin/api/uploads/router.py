"""/v1/uploads: create, add parts (streamed to disk), complete (assembled into a File), cancel."""

from __future__ import annotations

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from rixin.api.deps import get_caller, get_platform
from rixin.api.files.upload import receive_upload
from rixin.api.uploads.protocol import CompleteUpload, CreateUpload, part_object, upload_object
from rixin.platform import Platform
from rixin.store.tenancy import Caller
from rixin.store.uploads import MAX_PART_BYTES

router = APIRouter(prefix="/v1")


@router.post("/uploads")
async def create_upload(body: CreateUpload, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.uploads.create, caller, filename=body.filename,
                                  purpose=body.purpose, size=body.bytes, mime_type=body.mime_type)
    return upload_object(row)


@router.post("/uploads/{upload_id}/parts")
async def add_part(upload_id: str, request: Request, platform: Platform = Depends(get_platform),
                   caller: Caller = Depends(get_caller)):
    uploads = platform.uploads
    await run_in_threadpool(uploads.open, caller, upload_id)  # 404/400 before reading the body
    try:
        received = await receive_upload(request, platform.artifacts, MAX_PART_BYTES, field="data")
    except ClientDisconnect:  # nothing was kept, nobody to answer
        return Response(status_code=499)
    part = await run_in_threadpool(uploads.add_part, caller, upload_id, received.writer)
    return part_object(part)


@router.post("/uploads/{upload_id}/complete")
async def complete_upload(upload_id: str, body: CompleteUpload, platform: Platform = Depends(get_platform),
                          caller: Caller = Depends(get_caller)):
    row = await run_in_threadpool(platform.uploads.complete, caller, upload_id, body.part_ids, body.md5)
    return upload_object(row, await run_in_threadpool(platform.uploads.file_of, caller, row))


@router.post("/uploads/{upload_id}/cancel")
async def cancel_upload(upload_id: str, platform: Platform = Depends(get_platform),
                        caller: Caller = Depends(get_caller)):
    return upload_object(await run_in_threadpool(platform.uploads.cancel, caller, upload_id))
