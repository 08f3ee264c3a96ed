"""POST/GET /v1/feedback (rixin extension)."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictStr

from rixin.api.params import Integer
from rixin.jobs.store import ts
from rixin.store.schema import Feedback


class CreateFeedback(BaseModel):
    model_config = ConfigDict(extra="forbid")

    completion_id: StrictStr
    thumb: Literal["up", "down"] | None = None
    score: Annotated[Integer, Field(ge=1, le=5)] | None = None
    comment: StrictStr | None = None
    correction: StrictStr | None = None
    preferred: StrictStr | None = None


def feedback_object(row: Feedback) -> dict:
    return {"id": row.id, "object": "feedback", "completion_id": row.log_id, "thumb": row.thumb,
            "score": row.score, "comment": row.comment, "correction": row.correction,
            "preferred": row.preferred, "created_by": row.created_by, "created_at": ts(row.created_at)}
