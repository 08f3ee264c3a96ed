"""Whether the store takes writes now, for /health: a cheap write probe of the database and the
free space of the data directory, at most once per `interval` seconds (cached in between), so
/health turns 503 when the database refuses writes or the disk is full, and 200 again by
itself once they work."""

from __future__ import annotations

import os
import secrets
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from rixin.errors import InsufficientStorage, StoreUnavailable
from rixin.store.db import Database
from rixin.store.faults import FULL_MESSAGE, is_transient, storage_fault

MIN_FREE_BYTES = 1 << 20  # below this the data directory counts as full


@dataclass(frozen=True)
class Verdict:
    code: str | None = None  # None: healthy; else store_unavailable | insufficient_storage
    detail: str | None = None


def free_bytes(path: Path) -> int:
    st = os.statvfs(path)
    # root writes into the blocks reserved for it; the gateway usually runs as root
    blocks = st.f_bfree if os.geteuid() == 0 else st.f_bavail
    return blocks * st.f_frsize


class StoreHealth:
    def __init__(self, db: Database, data_dir: Path, interval: float = 2.0):
        self.db, self.data_dir, self.interval = db, Path(data_dir), interval
        self._verdict, self._checked = Verdict(), float("-inf")
        self._lock = threading.Lock()

    def check(self) -> Verdict:
        """The current verdict; probes again when the cached one is older than `interval`.
        Concurrent callers never stack probes: they get the last verdict meanwhile."""
        if time.monotonic() - self._checked < self.interval or not self._lock.acquire(blocking=False):
            return self._verdict
        try:
            self._verdict, self._checked = self._probe(), time.monotonic()
        finally:
            self._lock.release()
        return self._verdict

    def _probe(self) -> Verdict:
        try:
            if free_bytes(self.data_dir) < MIN_FREE_BYTES:
                return Verdict(InsufficientStorage.code, FULL_MESSAGE)
        except OSError as e:
            return Verdict(StoreUnavailable.code, f"The data directory cannot be examined: {e.strerror}.")
        try:
            self._write_probe()
        except Exception as e:  # noqa: BLE001 - whatever stops the write is the verdict
            if is_transient(e):  # busy with another writer is not down: keep the last verdict
                return self._verdict
            fault = storage_fault(e) or StoreUnavailable(f"The database write probe failed: {e}")
            if self._verdict.code is None:
                # Pooled connections opened before the change may still write (SQLite through
                # an open file, PostgreSQL in a session begun read-write): reopen them, so that
                # requests meet the same refusal as the probe and answer 503 / 507 too.
                self.db.engine.dispose()
            return Verdict(fault.code, fault.message)
        return Verdict()

    def _write_probe(self) -> None:
        """Insert and delete a row in one committed transaction on a fresh connection: no
        reader ever sees it, yet the database must really write (a no-op UPDATE writes
        nothing in SQLite). alembic_version exists in every migrated database: no migration."""
        marker = "probe-" + secrets.token_hex(8)
        with self.db.probe_engine().begin() as conn:
            if conn.dialect.name != "sqlite":
                conn.execute(text("SET LOCAL lock_timeout = '2s'"))
            conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": marker})
            conn.execute(text("DELETE FROM alembic_version WHERE version_num = :v"), {"v": marker})
