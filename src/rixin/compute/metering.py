"""Metering: the tokens (input, cached input, output) of every answered chat, completion and
embedding request, by project, key and model, recorded exactly once.

Exactly once: the gateway (api/gate.py) holds each answer until its usage row is committed and
sends it only then; the row's id is the request's, so it is written once. A store that refuses
the write keeps the row in an on-disk spool (atomic, fsynced; written to the database when it
takes writes again), so inference keeps working; only if even the spool cannot be written is
the answer turned into a 503 (nothing acknowledged, nothing lost). A gateway restart loses
nothing either: an answer that was sent is in the database or in the spool. Rows are
written by one thread in batches (group commit, store/writer.py), so concurrent requests share
a transaction.
A stream is answered as it goes: its row is committed before its closing `data: [DONE]`."""

from __future__ import annotations

import logging
import secrets
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

from rixin.errors import StoreUnavailable
from rixin.store.db import Database
from rixin.store.faults import storage_fault
from rixin.store.schema import UsageRecord
from rixin.store.writer import SpooledWriter

log = logging.getLogger("rixin.compute")


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


class Meter(SpooledWriter):
    """The writer thread (store/writer.py). `record` returns a future resolved once the row is
    committed; `on_commit` callbacks (token rate limits, budgets) see each committed row, in
    the thread and under `commit_lock`, so a reader that sums the table under the lock counts
    each row either in its sum or through the callback, never both."""

    def __init__(self, db: Database, spool_dir: Path | None = None):
        # A row the database refuses is kept on disk (atomic, fsynced) and the answer goes out:
        # inference keeps working while the store is down, and the row is written when it is
        # back. Only when even the spool fails is the answer refused.
        super().__init__(db, UsageRecord, spool_dir, "rixin-meter")
        self.on_commit: list[Callable[[UsageRecord], None]] = []

    def record(self, ticket: Ticket) -> Future:
        future: Future = Future()
        self.put(ticket.row(), future)
        return future

    def committed(self, rows: list[UsageRecord]) -> None:
        for row in rows:
            for callback in self.on_commit:
                callback(row)

    def refused(self, row: UsageRecord, future: Future | None, error: Exception) -> None:
        """Keep the row on disk; its cost and tokens count now, as a committed row's do."""
        try:
            with self.commit_lock:
                self.keep(row)
                self.committed([row])
        except Exception as e:  # noqa: BLE001 - then the answer is refused
            log.warning("usage %s not recorded (not even spooled: %s): %s", row.id, e, error)
            future.set_exception(storage_fault(error) or StoreUnavailable(
                "The request's usage could not be recorded, so the answer was not sent; retry."))
            return
        future.set_result(None)
