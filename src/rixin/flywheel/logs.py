"""The request log: what a logged chat/completions request stores, the background writer that
stores it off the request path, and the queries (stored completions, search).

The writer is one daemon thread draining an unbounded queue in batches. A request with
`store: true` waits for its row to be committed before it is answered (or fails with 503/507):
an acknowledged stored completion is never lost. Rows logged by a deployment's policy cost
their request only a queue.put; a failed write is counted and spooled to disk, never dropped
silently. `close()` drains the queue at shutdown, and readers call `flush()` first so a client
sees its own completion right after the answer.
"""

from __future__ import annotations

import logging
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from prometheus_client import Counter
from sqlalchemy import and_, null, or_, select, tuple_

from rixin import metrics
from rixin.data.pii import redact
from rixin.errors import InvalidRequest, NotFound, RixinError, StoreUnavailable
from rixin.store.db import Database
from rixin.store.faults import storage_fault
from rixin.store.writer import SpooledWriter
from rixin.store.schema import Deployment, Feedback, RequestLog
from rixin.store.tenancy import Caller

log = logging.getLogger("rixin.flywheel")
LOG_FAILURES = Counter("rixin_request_log_failures_total",
                       "Request-log rows the database refused: spooled (kept on disk for a retry), "
                       "replayed (written later from the spool), lost (not even spooled).",
                       ["outcome"], registry=metrics.REGISTRY)


@dataclass
class Pending:
    """A request in flight whose log row is written when it ends (any way it ends)."""

    id: str
    project_id: str
    deployment_id: str | None
    model_id: str
    endpoint: str
    policy: str
    redact_pii: bool
    request: dict
    meta: dict
    user: str | None
    started: float = field(default_factory=time.perf_counter)
    created_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    def row(self, status: str, response: dict | None, prompt: str, answer: str,
            prompt_tokens: int, completion_tokens: int) -> RequestLog:
        full = self.policy == "full"
        request, text = (self.request if full else None), (f"{prompt}\n{answer}" if full else None)
        if full and self.redact_pii:
            request, response, text = _redacted(request), _redacted(response), redact(text)[0]
        if not full:
            request = response = None
        # SQL NULL, not the JSON value null: "no text kept" must read as NULL in the database
        return RequestLog(id=self.id, project_id=self.project_id, deployment_id=self.deployment_id,
                          model_id=self.model_id, endpoint=self.endpoint, policy=self.policy,
                          request=_sql(request), response=_sql(response), text=text,
                          meta=self.meta or {}, user=self.user, status=status,
                          latency_ms=(time.perf_counter() - self.started) * 1000,
                          prompt_tokens=prompt_tokens, completion_tokens=completion_tokens,
                          created_at=self.created_at)


def _sql(value):
    return null() if value is None else value


def _redacted(value):
    """`value` (JSON) with PII redacted in every string."""
    if isinstance(value, str):
        return redact(value)[0]
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    return value


def policy_for(deployment: Deployment | None, store: bool | None) -> str | None:
    """The logging policy of a request, or None when nothing is stored. A deployment's policy
    wins ('off' means off even with store=true); otherwise store=true stores it in full."""
    if deployment is not None:
        return None if deployment.logging == "off" else deployment.logging
    return "full" if store else None


class LogWriter(SpooledWriter):
    """One daemon thread writing submitted rows in batches (store/writer.py).

    Two kinds of rows. A `durable` one (the client sent `store: true`) comes with a future
    that resolves once its row is committed, or fails with StoreUnavailable (503) /
    InsufficientStorage (507): the request waits for it, so an acknowledged answer is stored.
    A best-effort one (logged by a deployment's policy) never holds up its request; if the
    database refuses it, it is counted (rixin_request_log_failures_total) and kept in an
    on-disk spool, replayed every `retry_s` seconds and at shutdown, and only counted as lost
    when even the spool cannot be written (the disk is full).
    """

    def __init__(self, db: Database, spool_dir: Path | None = None):
        super().__init__(db, RequestLog, spool_dir, "rixin-log-writer")

    def submit(self, row: RequestLog, *, durable: bool = False) -> Future | None:
        """Queue `row`; for a durable row, a future resolved when it is committed."""
        future = Future() if durable else None
        self.put(row, future)
        return future

    def refused(self, row: RequestLog, future: Future | None, error: Exception) -> None:
        """Durable rows: their requests fail. Best-effort rows: spooled and counted."""
        if isinstance(error, RixinError):
            fault = type(error)(error.message)  # one instance per waiting request
        else:
            fault = storage_fault(error) or StoreUnavailable(
                f"The request log could not be written: {type(error).__name__}.")
        if future is not None:
            if not future.done():
                future.set_exception(fault)
            return
        try:
            self.keep(row)
            LOG_FAILURES.labels("spooled").inc()
        except Exception as e:  # noqa: BLE001 - counted and logged: never lost silently
            LOG_FAILURES.labels("lost").inc()
            log.error("request log %s lost: %s; and it could not be spooled: %s", row.id, fault, e)

    def replayed(self, count: int) -> None:
        LOG_FAILURES.labels("replayed").inc(count)


@dataclass
class LogQuery:
    """Filters of GET /v1/logs and GET /v1/chat/completions."""

    endpoint: str | None = None
    model: str | None = None
    deployment: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    contains: str | None = None
    since: int | None = None
    until: int | None = None
    after: str | None = None
    limit: int = 20
    order: str = "desc"


class RequestLogs:
    def __init__(self, db: Database, writer: LogWriter):
        self.db, self.writer = db, writer

    def get(self, caller: Caller, log_id: str, *, endpoint: str | None = None) -> RequestLog:
        self.writer.flush()
        with self.db.session() as s:
            row = s.get(RequestLog, log_id)
        if row is None or row.project_id != caller.project_id or (endpoint and row.endpoint != endpoint):
            raise NotFound(f"No such completion: {log_id}", param="completion_id")
        return row

    def search(self, caller: Caller, q: LogQuery) -> tuple[list[RequestLog], bool]:
        if q.limit < 1 or q.limit > 1000:
            raise InvalidRequest("'limit' must be between 1 and 1000.", param="limit", code="invalid_value")
        if q.order not in ("asc", "desc"):
            raise InvalidRequest("'order' must be 'asc' or 'desc'.", param="order", code="invalid_value")
        self.writer.flush()
        with self.db.session() as s:
            sql = select(RequestLog).where(RequestLog.project_id == caller.project_id)
            sql = self._filters(s, caller, sql, q)
            newest_first = q.order == "desc"
            if q.after:
                anchor = s.get(RequestLog, q.after)
                if anchor is None or anchor.project_id != caller.project_id:
                    raise NotFound(f"No such completion: {q.after}", param="after")
                key, mark = tuple_(RequestLog.created_at, RequestLog.id), tuple_(anchor.created_at, anchor.id)
                sql = sql.where(key < mark if newest_first else key > mark)
            keys = ((RequestLog.created_at.desc(), RequestLog.id.desc()) if newest_first
                    else (RequestLog.created_at, RequestLog.id))
            sql = sql.order_by(*keys)
            # metadata is JSON (no portable index): filter it here, limit in SQL otherwise
            rows = list(s.scalars(sql if q.metadata else sql.limit(q.limit + 1)))
        rows = [r for r in rows if all((r.meta or {}).get(k) == v for k, v in q.metadata.items())]
        return rows[:q.limit], len(rows) > q.limit

    @staticmethod
    def _filters(s, caller: Caller, sql, q: LogQuery):
        if q.endpoint:
            sql = sql.where(RequestLog.endpoint == q.endpoint)
        names = {}
        if q.model or q.deployment:
            deps = s.scalars(select(Deployment).where(Deployment.project_id == caller.project_id))
            names = {d.name: d.id for d in deps}
        if q.deployment:
            if q.deployment not in names:
                raise NotFound(f"No such deployment: {q.deployment!r}.", param="deployment")
            sql = sql.where(RequestLog.deployment_id == names[q.deployment])
        if q.model:
            by_name = RequestLog.deployment_id == names[q.model] if q.model in names else None
            sql = sql.where(or_(RequestLog.model_id == q.model, by_name) if by_name is not None
                            else RequestLog.model_id == q.model)
        if q.since is not None:
            sql = sql.where(RequestLog.created_at >= datetime.fromtimestamp(q.since, timezone.utc))
        if q.until is not None:
            sql = sql.where(RequestLog.created_at < datetime.fromtimestamp(q.until, timezone.utc))
        if q.contains:
            # autoescape: a '%' or '_' the user searches for is literal, not a LIKE wildcard
            found = RequestLog.text.contains(q.contains, autoescape=True)
            sql = sql.where(and_(RequestLog.text.is_not(None), found))
        return sql

    def update_metadata(self, caller: Caller, log_id: str, metadata: dict | None) -> RequestLog:
        self.get(caller, log_id, endpoint="chat.completions")
        with self.db.session() as s:
            row = s.get(RequestLog, log_id)
            row.meta = dict(metadata or {})
            if row.response is not None:
                row.response = {**row.response, "metadata": row.meta}
        return row

    def delete(self, caller: Caller, log_id: str) -> RequestLog:
        row = self.get(caller, log_id, endpoint="chat.completions")
        with self.db.session() as s:
            for fb in s.scalars(select(Feedback).where(Feedback.log_id == log_id)):
                s.delete(fb)
            s.flush()
            s.delete(s.get(RequestLog, log_id))
        return row
