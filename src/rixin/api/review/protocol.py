"""The review queue (rixin extension): requests and the review_item object."""

from __future__ import annotations

from typing import Any

from pydantic import Field

from rixin.api.pages import page
from rixin.api.sampling import Lenient
from rixin.jobs.store import ts
from rixin.store.schema import ReviewItem


class CorrectItem(Lenient):
    label: Any = Field(description="The right label: one of the task's labels, or an object valid "
                       "against its json_schema (extraction), or a string (free_form).")


def review_item_object(item: ReviewItem) -> dict:
    return {"id": item.id, "object": "review_item", "dataset_id": item.dataset_id, "job_id": item.job_id,
            "source_version_id": item.source_version_id, "record": item.record,
            "proposed_label": item.proposed_label, "confidence": item.confidence, "reason": item.reason,
            "status": item.status, "final_label": item.final_label, "created_at": ts(item.created_at),
            "reviewed_at": ts(item.reviewed_at)}


def review_list_object(items: list[ReviewItem], has_more: bool) -> dict:
    return page([review_item_object(i) for i in items], has_more, cursor=True)
