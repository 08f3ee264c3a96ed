"""The one list envelope of the API: {"object": "list", "data": [...], "has_more": ...}.

OpenAI's cursor-paged lists (files, fine-tuning jobs and events, stored completions) also
carry first_id/last_id, the ids a client passes as `after` to read on; `cursor=True` fills
them from the page. Lists that are never paged (models, jobs, projects) pass has_more=None,
which leaves the field out, as they always did."""

from __future__ import annotations

from typing import Any


def page(data: list[dict], has_more: bool | None = False, *, cursor: bool = False, **extra: Any) -> dict:
    out: dict[str, Any] = {"object": "list", "data": data}
    if has_more is not None:
        out["has_more"] = has_more
    if cursor:
        out["first_id"] = data[0]["id"] if data else None
        out["last_id"] = data[-1]["id"] if data else None
    return out | extra
