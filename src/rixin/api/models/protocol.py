"""The model object of the OpenAI API, with rixin's fields after the standard ones."""

from __future__ import annotations

from rixin.store.schema import Model


def model_object(row: Model) -> dict:
    return {
        "id": row.id,
        "object": "model",
        "created": int(row.created_at.timestamp()) if row.created_at else 0,
        "owned_by": row.owned_by,
        # rixin extensions
        "kind": row.kind,
        "engine": row.engine,
        "format": row.format,
        "size_bytes": row.size_bytes,
        "source": row.source,
        "parent": row.parent_id,
    }
