"""The Upload and upload part objects of the OpenAI API, and the create/complete requests."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, StrictInt, StrictStr

from rixin.api.files.protocol import file_object
from rixin.api.sampling import Lenient
from rixin.jobs.store import ts
from rixin.store.schema import File, Upload, UploadPart


class ExpiresAfter(BaseModel):
    anchor: Literal["created_at"]
    seconds: StrictInt


class CreateUpload(Lenient):
    bytes: StrictInt
    filename: StrictStr
    mime_type: StrictStr
    purpose: StrictStr
    expires_after: ExpiresAfter | None = None
    """Accepted for the client's sake: the expiry of the File, which rixin keeps until deleted."""


class CompleteUpload(Lenient):
    part_ids: list[StrictStr]
    md5: StrictStr | None = None


def upload_object(row: Upload, file: File | None = None) -> dict:
    return {
        "id": row.id,
        "object": "upload",
        "bytes": row.bytes,
        "created_at": ts(row.created_at),
        "expires_at": ts(row.expires_at),
        "filename": row.filename,
        "purpose": row.purpose,
        # "completing" is ours (the parts being copied); the client sees it still pending
        "status": "pending" if row.status == "completing" else row.status,
        "file": file_object(file) if file is not None else None,
    }


def part_object(row: UploadPart) -> dict:
    return {"id": row.id, "object": "upload.part", "created_at": ts(row.created_at), "upload_id": row.upload_id}
