"""The file object of the OpenAI API, with rixin's sha256 after the standard fields."""

from __future__ import annotations

from rixin.store.schema import File


def file_object(row: File) -> dict:
    return {
        "id": row.id,
        "object": "file",
        "bytes": row.bytes,
        "created_at": int(row.created_at.timestamp()) if row.created_at else 0,
        "expires_at": None,
        "filename": row.filename,
        "purpose": row.purpose,
        "status": row.status,
        "status_details": row.status_details,
        "sha256": row.sha256,
    }
