"""Feedback on logged completions: thumbs, 1-5 scores, comments, corrections, preferred answers."""

from __future__ import annotations

from sqlalchemy import select

from rixin.errors import InvalidRequest
from rixin.store.db import Database
from rixin.store.schema import Feedback, RequestLog
from rixin.store.tenancy import Caller, new_id

FIELDS = ("thumb", "score", "comment", "correction", "preferred")


class FeedbackStore:
    def __init__(self, db: Database, logs):
        self.db, self.logs = db, logs

    def add(self, caller: Caller, completion_id: str, *, thumb: str | None = None, score: int | None = None,
            comment: str | None = None, correction: str | None = None, preferred: str | None = None) -> Feedback:
        values = {"thumb": thumb, "score": score, "comment": comment, "correction": correction,
                  "preferred": preferred}
        values = {k: (v.strip() if isinstance(v, str) else v) for k, v in values.items()}
        if all(v in (None, "") for v in values.values()):
            raise InvalidRequest("Empty feedback: give at least one of thumb, score, comment, correction, "
                                 "preferred.", param="thumb", code="empty_feedback")
        if thumb is not None and thumb not in ("up", "down"):
            raise InvalidRequest(f"Invalid 'thumb': {thumb!r}; use 'up' or 'down'.", param="thumb",
                                 code="invalid_value")
        if score is not None and not 1 <= score <= 5:
            raise InvalidRequest(f"Invalid 'score': {score}; use an integer from 1 to 5.", param="score",
                                 code="invalid_value")
        log = self.logs.get(caller, completion_id)  # 404 for unknown ids and other projects' alike
        row = Feedback(id=new_id("fb"), project_id=caller.project_id, log_id=log.id,
                       created_by=caller.key_id, **{k: v or None for k, v in values.items() if k != "score"},
                       score=score)
        with self.db.session() as s:
            s.add(row)
        return row

    def list(self, caller: Caller, *, completion_id: str | None = None, deployment_id: str | None = None,
             since=None, limit: int = 100) -> list[Feedback]:
        with self.db.session() as s:
            q = select(Feedback).where(Feedback.project_id == caller.project_id)
            if completion_id:
                q = q.where(Feedback.log_id == completion_id)
            if deployment_id:
                q = q.join(RequestLog, RequestLog.id == Feedback.log_id).where(
                    RequestLog.deployment_id == deployment_id)
            if since is not None:
                q = q.where(Feedback.created_at > since)
            return list(s.scalars(q.order_by(Feedback.created_at, Feedback.id).limit(limit)))
