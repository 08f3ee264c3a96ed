"""One background writer for rows written off the request path: a daemon thread drains a
queue in batches (group commit: concurrent requests share one transaction), retries a write
the database refuses only for a moment (a lock), finds the bad row of a failed batch row by
row, and replays the on-disk spool (store/spool.py) every `retry_s` seconds and at shutdown.

What a refused row means differs, so subclasses decide it in `refused` (usage rows are
spooled and count at once; a stored completion's request fails; a policy-logged request row is
spooled and counted). The request log (flywheel/logs.py) and metering (compute/metering.py)
are the two users."""

from __future__ import annotations

import logging
import queue
import threading
import time
from concurrent.futures import Future
from pathlib import Path

from rixin.store.db import Database, take_batch
from rixin.store.faults import is_transient
from rixin.store.spool import RowSpool

log = logging.getLogger("rixin.store")
BATCH = 256


class SpooledWriter:
    retry_s = 5.0  # how often spooled rows are tried again

    def __init__(self, db: Database, model, spool_dir: Path | None, name: str):
        self.db, self.model, self.name = db, model, name
        self.spool = RowSpool(spool_dir, model) if spool_dir is not None else None
        self.queue: queue.Queue = queue.Queue()
        self.thread: threading.Thread | None = None
        self.start_lock = threading.Lock()
        # held around each commit and its `committed` hook, so a reader that sums the table
        # under it counts a row either in its sum or through the hook, never both
        self.commit_lock = threading.Lock()
        self._spooled = bool(self.spool and self.spool.paths())
        self._next_replay = 0.0

    # ------------------------------------------------------------------ the callers' side
    def start(self) -> None:
        """Start the thread now (the gateway does, so a previous run's spool is replayed)."""
        with self.start_lock:
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self.thread.start()

    def put(self, row, future: Future | None) -> None:
        self.start()
        self.queue.put((row, future))

    def flush(self) -> None:
        """Wait until every queued row is in the database (or spooled)."""
        if self.thread is not None:
            self.queue.join()

    def close(self) -> None:
        """Write what is queued and replay the spool once more, then stop (at shutdown)."""
        with self.start_lock:
            thread, self.thread = self.thread, None
        if thread is not None:
            self.queue.put(None)
            thread.join(timeout=60)

    # ------------------------------------------------------------------ for subclasses
    def committed(self, rows: list) -> None:
        """Called with each committed batch, under `commit_lock`."""

    def refused(self, row, future: Future | None, error: Exception) -> None:
        """The database refused `row` for good (after retries): decide what that means."""
        raise NotImplementedError

    def replayed(self, count: int) -> None:
        """`count` spooled rows were written to the database."""

    def keep(self, row) -> None:
        """Put `row` in the spool (raises when there is none, or the disk refuses too)."""
        if self.spool is None:
            raise OSError("no spool directory")
        self.spool.put(row)
        self._spooled = True

    # ------------------------------------------------------------------ the thread
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
            try:
                if items:
                    self._write(items)
            except Exception as e:  # noqa: BLE001 - the thread must outlive any one batch
                log.exception("%s failed on %d rows", self.name, len(items))
                for row, future in items:
                    self._refuse(row, future, e)
            finally:
                for _ in batch:
                    self.queue.task_done()
            if len(items) < len(batch):  # close(): a last replay, then stop
                if self._spooled:
                    self._replay()
                return
            if self._spooled and time.monotonic() >= self._next_replay:
                self._replay()

    def _write(self, items: list[tuple[object, Future | None]]) -> None:
        error = self._commit([row for row, _ in items])
        if error is None:
            for _, future in items:
                if future is not None and not future.done():
                    future.set_result(None)
        elif len(items) > 1:  # one bad row must not sink the others: find out row by row
            for item in items:
                self._write([item])
        else:
            log.warning("%s: row %s refused: %s", self.name, items[0][0].id, error)
            self._refuse(*items[0], error)

    def _refuse(self, row, future: Future | None, error: Exception) -> None:
        try:
            self.refused(row, future, error)
        except Exception as e:  # noqa: BLE001 - a waiting request must not hang on it
            if future is not None and not future.done():
                future.set_exception(e)

    def _commit(self, rows: list) -> Exception | None:
        """None once `rows` are committed; else the error (retried while only transient).
        Fresh copies each time: the queued rows stay clean for a retry or the spool."""
        for attempt in range(5):
            with self.commit_lock:
                try:
                    with self.db.session() as s:
                        s.add_all([self._copy(r) for r in rows])
                except Exception as e:  # noqa: BLE001 - classified here and by the caller
                    error = e
                else:
                    try:
                        self.committed(rows)
                    except Exception:  # noqa: BLE001 - the rows are stored: never write them twice
                        log.exception("%s: after-commit hook failed", self.name)
                    return None
            if attempt == 4 or not is_transient(error):
                return error
            time.sleep(0.2 * (attempt + 1))
        return None

    def _copy(self, row):
        """A fresh, unattached copy (a failed session leaves its objects in a dead state)."""
        return self.model(**{c.key: getattr(row, c.key) for c in self.model.__table__.columns})

    def _replay(self) -> None:
        """Write spooled rows back; if the database still refuses, again `retry_s` later."""
        self._next_replay = time.monotonic() + self.retry_s
        try:
            while self.spool is not None and (done := self.spool.replay(self.db)):
                self.replayed(done)
        except Exception as e:  # noqa: BLE001 - the database still refuses: keep them
            log.warning("%s: spooled rows not written yet: %s", self.name, e)
            return
        self._spooled = False
