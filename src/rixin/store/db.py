"""Connecting to the metadata store and bringing its schema to the newest migration."""

from __future__ import annotations

import queue
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import NullPool

from rixin.store.faults import storage_fault

MIGRATIONS = Path(__file__).parent / "migrations"


class Database:
    def __init__(self, url: str):
        self.url = url
        if url.startswith("sqlite"):
            path = url.split("///", 1)[-1]
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            self.engine: Engine = create_engine(url, connect_args={"timeout": 30})
            event.listen(self.engine, "connect", _sqlite_pragmas)
        else:
            self.engine = create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._probe: Engine | None = None

    def migrate(self) -> None:
        """Upgrade the schema to the newest migration (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        with self.engine.begin() as conn:
            cfg.attributes["connection"] = conn
            command.upgrade(cfg, "head")

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A unit of work: committed when the block ends, rolled back on an exception.
        A full disk or a store that refuses writes raises InsufficientStorage (507) or
        StoreUnavailable (503), never a bare driver error (a generic 500)."""
        with self._sessions() as s:
            try:
                yield s
                s.commit()
            except BaseException as e:
                try:
                    s.rollback()
                except Exception:  # noqa: BLE001 - a dead connection: the fault below says why
                    pass
                fault = storage_fault(e) if isinstance(e, DBAPIError) else None
                if fault is not None:
                    raise fault from e
                raise

    def probe_engine(self) -> Engine:
        """An engine without a pool, for health probes: each connection opens the database anew
        and so sees what a new process would (a file made immutable, a server switched to
        read-only), which pooled connections opened earlier may not. Short timeouts: a probe
        must answer quickly."""
        if self._probe is None:
            if self.url.startswith("sqlite"):
                self._probe = create_engine(self.url, poolclass=NullPool, connect_args={"timeout": 2})
                event.listen(self._probe, "connect", _sqlite_pragmas)
            else:
                self._probe = create_engine(self.url, poolclass=NullPool, connect_args={"connect_timeout": 5})
        return self._probe

    def dispose(self) -> None:
        self.engine.dispose()
        if self._probe is not None:
            self._probe.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the CLI write (keys create) while the gateway reads; foreign keys are off by default.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


def take_batch(q: queue.Queue, first, limit: int) -> list:
    """`first` and whatever else waits on `q` now, up to `limit` items: what a group-commit
    writer thread (request logs, usage rows) writes in one transaction."""
    batch = [first]
    while len(batch) < limit:
        try:
            batch.append(q.get_nowait())
        except queue.Empty:
            break
    return batch
