"""The request log: what a logged chat/completions request stores, the background writer that
stores it off the request path, and the queries (stored completions, search).

The writer is one daemon thread draining an unbounded queue in batches: a request only pays
for a queue.put. Nothing acknowledged is dropped: `close()` drains the queue at shutdown, and
readers call `flush()` first so a client sees its own completion right after the answer.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone

from sqlalchemy import and_, null, or_, select, tuple_

from rixin.data.pii import redact
from rixin.errors import InvalidRequest, NotFound
from rixin.store.db import Database
from rixin.store.schema import Deployment, Feedback, RequestLog
from rixin.store.tenancy import Caller

log = logging.getLogger("rixin.flywheel")
BATCH = 256


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


class LogWriter:
    def __init__(self, db: Database):
        self.db = db
        self.queue: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.lock = threading.Lock()

    def submit(self, row: RequestLog) -> None:
        with self.lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="rixin-log-writer", daemon=True)
                self.thread.start()
        self.queue.put(row)

    def flush(self) -> None:
        """Wait until every submitted row is in the database."""
        if self.thread is not None:
            self.queue.join()

    def close(self) -> None:
        if self.thread is not None:
            self.queue.put(None)
            self.thread.join(timeout=60)
            self.thread = None

    def _run(self) -> None:
        while True:
            batch = [self.queue.get()]
            while len(batch) < BATCH:
                try:
                    batch.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            rows = [r for r in batch if r is not None]
            try:
                self._write(rows)
            finally:
                for _ in batch:
                    self.queue.task_done()
            if len(rows) < len(batch):
                return

    def _write(self, rows: list[RequestLog]) -> None:
        for attempt in range(5):
            try:
                with self.db.session() as s:
                    s.add_all(rows)
                return
            except Exception:  # noqa: BLE001 - a locked database: retry, the rows are acknowledged
                if attempt == 4:
                    log.exception("could not write %d request log rows", len(rows))
                    return
                time.sleep(0.2 * (attempt + 1))
                rows = [_copy(r) for r in rows]


def _copy(row: RequestLog) -> RequestLog:
    """A fresh, unattached copy (a failed session leaves its objects in a dead state)."""
    cols = [c.key for c in RequestLog.__table__.columns]
    return RequestLog(**{c: getattr(row, c) for c in cols})


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
