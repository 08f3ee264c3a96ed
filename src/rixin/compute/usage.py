"""The recorded usage read back in OpenAI's Admin API shapes: time buckets of token counts
(GET /v1/organization/usage/completions|embeddings) and of costs (GET /v1/organization/costs)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import select

from rixin.compute.budget import Budgets
from rixin.errors import InvalidRequest
from rixin.store.db import Database
from rixin.store.schema import UsageRecord

WIDTHS = {"1m": 60, "1h": 3600, "1d": 86400}
# OpenAI's default and largest number of buckets per page, per width
BUCKET_LIMITS = {"1m": (60, 1440), "1h": (24, 168), "1d": (7, 31)}
GROUPS = ("project_id", "api_key_id", "model")
MAX_TS = 253402300799 - 31 * 86400  # a month before 9999-12-31: every bucket end is a datetime


@dataclass
class UsageQuery:
    start_time: int
    end_time: int | None = None
    bucket_width: str = "1d"
    group_by: list[str] = field(default_factory=list)
    project_ids: list[str] = field(default_factory=list)
    api_key_ids: list[str] = field(default_factory=list)
    models: list[str] = field(default_factory=list)
    limit: int | None = None
    page: str | None = None

    def window(self) -> tuple[int, int, int, int]:
        """(first bucket start, end of this page, bucket width s, end of the query)."""
        if self.bucket_width not in WIDTHS:
            raise InvalidRequest(f"Invalid bucket_width {self.bucket_width!r}: use one of "
                                 f"{', '.join(WIDTHS)}.", param="bucket_width")
        for name in self.group_by:
            if name not in GROUPS:
                raise InvalidRequest(f"Invalid group_by {name!r}: use any of {', '.join(GROUPS)}.",
                                     param="group_by")
        default, largest = BUCKET_LIMITS[self.bucket_width]
        limit = self.limit or default
        if not 1 <= limit <= largest:
            raise InvalidRequest(f"limit must be between 1 and {largest} for bucket_width "
                                 f"{self.bucket_width}.", param="limit")
        width = WIDTHS[self.bucket_width]
        start = self.start_time
        if self.page is not None:
            if not self.page.isdigit() or not self.start_time <= int(self.page) <= (self.end_time or MAX_TS):
                raise InvalidRequest("Invalid page: pass the next_page of the previous answer.", param="page")
            start = int(self.page)
        end = min(self.end_time or int(datetime.now(timezone.utc).timestamp()) + 1, MAX_TS)
        if end <= self.start_time:
            raise InvalidRequest("end_time must be after start_time (both in Unix seconds).",
                                 param="end_time")
        return start, min(end, start + limit * width), width, end


def _rows(db: Database, q: UsageQuery, kind: str | None, start: int, stop: int) -> list[UsageRecord]:
    query = select(UsageRecord).where(UsageRecord.created_at >= _dt(start), UsageRecord.created_at < _dt(stop))
    if kind is not None:
        query = query.where(UsageRecord.kind == kind)
    for column, values in ((UsageRecord.project_id, q.project_ids), (UsageRecord.api_key_id, q.api_key_ids),
                           (UsageRecord.model, q.models)):
        if values:
            query = query.where(column.in_(values))
    with db.session() as s:
        return list(s.scalars(query))


def _dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def _page(buckets: list[dict], stop: int, end: int) -> dict:
    more = stop < end
    return {"object": "page", "data": buckets, "has_more": more, "next_page": str(stop) if more else None}


def _bucketed(rows, start: int, stop: int, width: int, key) -> dict[int, dict[tuple, list]]:
    out: dict[int, dict[tuple, list]] = {t: defaultdict(list) for t in range(start, stop, width)}
    for row in rows:
        at = int(row.created_at.replace(tzinfo=row.created_at.tzinfo or timezone.utc).timestamp())
        out[start + (at - start) // width * width][key(row)].append(row)
    return out


def usage_page(db: Database, q: UsageQuery, kind: str) -> dict:
    """One page of usage buckets; `kind` is completions or embeddings."""
    start, stop, width, end = q.window()
    rows = _rows(db, q, kind, start, stop)
    result_object = f"organization.usage.{kind}.result"

    def key(row):
        return tuple(getattr(row, g) if g in q.group_by else None for g in GROUPS)

    buckets = []
    for t, groups in _bucketed(rows, start, stop, width, key).items():
        results = []
        for group, members in groups.items():
            result = {"object": result_object, "input_tokens": sum(r.input_tokens for r in members),
                      "num_model_requests": len(members), **dict(zip(GROUPS, group)), "user_id": None}
            if kind == "completions":
                result.update(output_tokens=sum(r.output_tokens for r in members),
                              input_cached_tokens=sum(r.input_cached_tokens for r in members),
                              input_audio_tokens=0, output_audio_tokens=0, batch=None)
            results.append(result)
        buckets.append({"object": "bucket", "start_time": t, "end_time": t + width, "results": results})
    return _page(buckets, stop, end)


def costs_page(db: Database, budgets: Budgets, q: UsageQuery) -> dict:
    """One page of daily cost buckets (group_by project_id and/or line_item, the model)."""
    if q.bucket_width != "1d":
        raise InvalidRequest("The costs API has daily buckets only: use bucket_width=1d.",
                             param="bucket_width")
    by = set(q.group_by)
    if not by <= {"project_id", "line_item"}:
        raise InvalidRequest("group_by for costs takes project_id and line_item.", param="group_by")
    start, stop, width, end = UsageQuery(**{**q.__dict__, "group_by": []}).window()
    rows = _rows(db, q, None, start, stop)
    budgets.load()

    def key(row):
        return (row.project_id if "project_id" in by else None, row.model if "line_item" in by else None)

    buckets = []
    for t, groups in _bucketed(rows, start, stop, width, key).items():
        results = [{"object": "organization.costs.result",
                    "amount": {"value": sum(budgets.rates(r.model).cost(r.input_tokens, r.input_cached_tokens,
                                                                         r.output_tokens) for r in members),
                               "currency": "usd"},
                    "project_id": project, "line_item": line_item}
                   for (project, line_item), members in groups.items()]
        buckets.append({"object": "bucket", "start_time": t, "end_time": t + width, "results": results})
    return _page(buckets, stop, end)
