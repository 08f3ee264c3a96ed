"""The audit log: every admin action (a write by an admin key) and every deployment switch,
written by the gateway before the action's answer is sent (api/gate.py), read back in the shape
of OpenAI's GET /v1/organization/audit_logs."""

from __future__ import annotations

import secrets
from datetime import datetime, timezone

from sqlalchemy import select

from rixin.errors import InvalidRequest
from rixin.store.db import Database
from rixin.store.schema import AuditLog
from rixin.store.tenancy import Caller

ACTIONS = {"POST": "created", "PUT": "updated", "PATCH": "updated", "DELETE": "deleted"}


def audited(caller: Caller | None, method: str, path: str) -> bool:
    """Whether a write is audited: any by an admin key, and every change of a deployment."""
    if method not in ACTIONS or caller is None:
        return False
    return caller.is_admin or path.startswith("/v1/deployments")


def event_type(method: str, route: str) -> str:
    """`project.created`, `api_key.deleted`, `deployment.rollback`, … from the route template:
    the last named resource (singular) and what was done to it. A literal after an id that is
    not a collection (no trailing s) is the action itself (…/{name}/rollback)."""
    parts = [p for p in route.split("/")[2:] if p and p != "organization"]
    literals = [p for p in parts if not p.startswith("{")]
    if not literals:
        return f"request.{ACTIONS.get(method, 'called')}"
    last = literals[-1]
    if parts[-1] == last and not last.endswith("s") and len(literals) > 1:
        return f"{literals[-2].rstrip('s')}.{last}"
    if method == "POST" and parts[-1].startswith("{"):
        return f"{last.rstrip('s')}.updated"  # POST on an item changes it (OpenAI's style)
    return f"{last.rstrip('s')}.{ACTIONS.get(method, 'called')}"


class AuditLogs:
    def __init__(self, db: Database):
        self.db = db

    def record(self, caller: Caller, method: str, route: str, path: str, status: int,
               project_id: str | None = None) -> None:
        """One entry; `project_id` is the project acted on (default: the caller's)."""
        with self.db.session() as s:
            s.add(AuditLog(id="audit_log-" + secrets.token_hex(10), type=event_type(method, route),
                           project_id=project_id or caller.project_id, api_key_id=caller.key_id,
                           details={"method": method, "path": path, "status": status},
                           created_at=datetime.now(timezone.utc)))

    def page(self, limit: int = 20, after: str | None = None, types: list[str] | None = None) -> dict:
        """Newest first, as OpenAI lists them; `after` is the last id of the previous page."""
        if not 1 <= limit <= 100:
            raise InvalidRequest("limit must be between 1 and 100.", param="limit")
        query = select(AuditLog).order_by(AuditLog.created_at.desc(), AuditLog.id.desc())
        if types:
            query = query.where(AuditLog.type.in_(types))
        with self.db.session() as s:
            if after is not None:
                anchor = s.get(AuditLog, after)
                if anchor is None:
                    raise InvalidRequest(f"No audit log {after!r}: pass the last_id of a page.", param="after")
                query = query.where((AuditLog.created_at < anchor.created_at)
                                    | ((AuditLog.created_at == anchor.created_at) & (AuditLog.id < anchor.id)))
            rows = list(s.scalars(query.limit(limit + 1)))
        data = [audit_object(r) for r in rows[:limit]]
        return {"object": "list", "data": data, "first_id": data[0]["id"] if data else None,
                "last_id": data[-1]["id"] if data else None, "has_more": len(rows) > limit}


def audit_object(row: AuditLog) -> dict:
    return {"object": "organization.audit_log", "id": row.id, "type": row.type,
            "effective_at": int(row.created_at.replace(tzinfo=row.created_at.tzinfo or timezone.utc).timestamp()),
            "project": {"id": row.project_id} if row.project_id else None,
            "actor": {"type": "api_key", "api_key": {"id": row.api_key_id, "type": "user"}},
            "details": row.details}
