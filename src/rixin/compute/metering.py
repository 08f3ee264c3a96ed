"""Metering: the tokens (input, cached input, output) of every answered chat, completion and
embedding request, by project, key and model, recorded exactly once.

Exactly once: the gateway (api/gate.py) holds each answer until its usage row is committed and
sends it only then; the row's id is the request's, so it is written once. A store that refuses
the write keeps the row in an on-disk spool (atomic, fsynced; written to the database when it
takes writes again), so inference keeps working; only if even the spool cannot be written is
the answer turned into a 503 (nothing acknowledged, nothing lost). A gateway restart loses
nothing either: an answer that was sent is in the database or in the spool. Rows are
written by one thread in batches (group commit), so concurrent requests share a transaction.
A stream is answered as it goes: its row is committed before its closing `data: [DONE]`."""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from rixin.errors import StoreUnavailable
from rixin.store.db import Database, take_batch
from rixin.store.faults import is_transient, storage_fault
from rixin.store.schema import UsageRecord
from rixin.store.spool import RowSpool

log = logging.getLogger("rixin.compute")
BATCH = 256
RETRY_S = 5.0  # how often spooled usage rows are tried again


@dataclass
class Ticket:
    """One metered request in flight; the streaming loop adds its choices' counts (`add`)."""

    project_id: str
    api_key_id: str
    model: str
    kind: str  # completions | embeddings
    id: str = field(default_factory=lambda: "use-" + secrets.token_hex(12))
    input_tokens: int = 0
    input_cached_tokens: int = 0
    output_tokens: int = 0

    def add(self, prompt_tokens: int, completion_tokens: int, cached_tokens: int = 0) -> None:
        self.input_tokens += prompt_tokens
        self.output_tokens += completion_tokens
        self.input_cached_tokens += cached_tokens

    def take_usage(self, usage: dict) -> None:
        """Counts from an answer's OpenAI `usage` object (what the client is told)."""
        details = usage.get("prompt_tokens_details") or {}
        self.input_tokens = int(usage.get("prompt_tokens") or 0)
        self.output_tokens = int(usage.get("completion_tokens") or 0)
        self.input_cached_tokens = int(details.get("cached_tokens") or 0)

    def row(self) -> UsageRecord:
        return UsageRecord(id=self.id, project_id=self.project_id, api_key_id=self.api_key_id,
                           model=self.model, kind=self.kind, input_tokens=self.input_tokens,
                           input_cached_tokens=self.input_cached_tokens,
                           output_tokens=self.output_tokens, created_at=datetime.now(timezone.utc))


class Meter:
    """The writer thread. `record` returns a future resolved once the row is committed;
    `on_commit` callbacks (token rate limits, budgets) see each committed row, in the thread
    and under `commit_lock`, so a reader that sums the table under the lock counts each row
    either in its sum or through the callback, never both."""

    def __init__(self, db: Database, spool_dir: Path | None = None):
        self.db = db
        # A row the database refuses is kept on disk (atomic, fsynced) and the answer goes out:
        # inference keeps working while the store is down, and the row is written when it is
        # back (replayed every RETRY_S and at start). Only when even the spool fails is the
        # answer refused.
        self.spool = RowSpool(spool_dir, UsageRecord) if spool_dir is not None else None
        self._spooled = bool(self.spool and self.spool.paths())
        self._next_replay = 0.0
        self.queue: queue.Queue = queue.Queue()
        self.on_commit: list[Callable[[UsageRecord], None]] = []
        self.commit_lock = threading.Lock()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()

    def record(self, ticket: Ticket) -> Future:
        future: Future = Future()
        with self.start_lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="rixin-meter", daemon=True)
                self.thread.start()
        self.queue.put((ticket.row(), future))
        return future

    def close(self) -> None:
        """Write what is queued, then stop (at shutdown)."""
        with self.start_lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(None)
            thread.join(timeout=60)

    def _run(self) -> None:
        while True:
            wait = max(0.0, self._next_replay - time.monotonic()) if self._spooled else None
            try:
                first = self.queue.get(timeout=wait)
            except queue.Empty:
                self._replay()
                continue
            batch = take_batch(self.queue, first, BATCH)
            items = [item for item in batch if item is not None]
            if items:
                self._write(items)
            if len(items) < len(batch):
                if self._spooled:
                    self._replay()
                return

    def _replay(self) -> None:
        """Write spooled rows to the database; if it still refuses, again RETRY_S later."""
        self._next_replay = time.monotonic() + RETRY_S
        try:
            while self.spool is not None and self.spool.replay(self.db):
                pass
        except Exception as e:  # noqa: BLE001 - the database still refuses: keep them
            log.warning("spooled usage rows not written yet: %s", e)
            return
        self._spooled = False

    def _write(self, items: list[tuple[UsageRecord, Future]]) -> None:
        error = None
        for attempt in range(5):
            try:
                with self.commit_lock:
                    with self.db.session() as s:
                        s.add_all([_copy(row) for row, _ in items])
                    for row, _ in items:
                        for callback in self.on_commit:
                            callback(row)
                error = None
                break
            except Exception as e:  # noqa: BLE001 - classified below
                error = e
                if not is_transient(e):
                    break
                time.sleep(0.2 * (attempt + 1))
        if error is None:
            for _, future in items:
                future.set_result(None)
        elif len(items) > 1:  # one bad row must not sink the others
            for item in items:
                self._write([item])
        else:
            row, future = items[0]
            if self._spool(row):
                future.set_result(None)
                return
            log.warning("usage %s not recorded: %s", row.id, error)
            fault = storage_fault(error) or StoreUnavailable(
                "The request's usage could not be recorded, so the answer was not sent; retry.")
            future.set_exception(fault)

    def _spool(self, row: UsageRecord) -> bool:
        """Keep a refused row on disk; its cost and tokens count now, as a committed row's do."""
        if self.spool is None:
            return False
        try:
            with self.commit_lock:
                self.spool.put(row)
                for callback in self.on_commit:
                    callback(row)
        except Exception as e:  # noqa: BLE001 - then the answer is refused (caller)
            log.warning("usage %s could not be spooled either: %s", row.id, e)
            return False
        self._spooled = True
        return True


def _copy(row: UsageRecord) -> UsageRecord:
    """A fresh, unattached copy (a failed session leaves its objects in a dead state)."""
    return UsageRecord(**{c.key: getattr(row, c.key) for c in UsageRecord.__table__.columns})
