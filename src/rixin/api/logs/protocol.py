"""Stored chat completions (OpenAI shape) and rixin's request log objects."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, StrictStr

from rixin.jobs.store import ts
from rixin.store.schema import RequestLog


class UpdateStored(BaseModel):
    model_config = ConfigDict(extra="forbid")

    metadata: dict[str, StrictStr] | None = None


def stored_completion(row: RequestLog) -> dict:
    """The chat.completion object as answered, with its metadata; under metadata-only
    (no text kept) the choices are empty."""
    base = row.response or {"id": row.id, "object": "chat.completion", "created": ts(row.created_at),
                            "model": row.model_id, "choices": [], "usage": {
                                "prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens,
                                "total_tokens": row.prompt_tokens + row.completion_tokens}}
    return {**base, "metadata": row.meta or {}, "request_id": row.id}


def stored_messages(row: RequestLog) -> list[dict]:
    messages = (row.request or {}).get("messages") or []
    out = []
    for i, m in enumerate(messages):
        content = m.get("content")
        if isinstance(content, list):
            content = "".join(p.get("text") or "" for p in content)
        out.append({"id": f"{row.id}-{i}", "role": m.get("role"), "content": content, "name": m.get("name"),
                    "content_parts": None})
    return out


def log_object(row: RequestLog) -> dict:
    return {"id": row.id, "object": "request_log", "created_at": ts(row.created_at),
            "deployment_id": row.deployment_id, "model": row.model_id, "endpoint": row.endpoint,
            "policy": row.policy, "status": row.status, "latency_ms": round(row.latency_ms, 3),
            "usage": {"prompt_tokens": row.prompt_tokens, "completion_tokens": row.completion_tokens},
            "metadata": row.meta or {}, "user": row.user, "request": row.request, "response": row.response}
