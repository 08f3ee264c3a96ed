"""What the gateway asks before and after a model request: the budget and the rate limits
before it (admit), the usage row after it (Meter). Built once by the platform; the gateway
(api/gate.py) is its only caller on the request path."""

from __future__ import annotations

from pathlib import Path

from rixin.compute.audit import AuditLogs
from rixin.compute.budget import Budgets
from rixin.compute.metering import Meter, Ticket
from rixin.compute.ratelimit import Admitted, RateLimiter
from rixin.store.db import Database
from rixin.store.schema import UsageRecord
from rixin.store.tenancy import Caller

# The metered routes and the usage API each one's tokens are reported under
METERED = {"/v1/chat/completions": "completions", "/v1/completions": "completions",
           "/v1/embeddings": "embeddings"}


class Controls:
    def __init__(self, db: Database, spool_dir: Path | None = None):
        self.meter = Meter(db, spool_dir)
        self.limiter = RateLimiter(db)
        self.budgets = Budgets(db, self.meter.commit_lock)
        self.audit = AuditLogs(db)
        self.meter.on_commit += [self._count_tokens, self.budgets.add]

    def _count_tokens(self, row: UsageRecord) -> None:
        self.limiter.add_tokens(row.project_id, row.model, row.input_tokens + row.output_tokens)

    def needs_load(self, project_id: str) -> bool:
        """Whether `load` must run first (it reads the store: call it in a worker thread)."""
        return not self.limiter.loaded or self.budgets.needs_load(project_id)

    def load(self, project_id: str) -> None:
        if not self.limiter.loaded:
            self.limiter.load()
        self.budgets.load(project_id)

    def admit(self, caller: Caller, model: str, kind: str) -> tuple[Ticket, Admitted]:
        """A ticket for the request, or InsufficientQuota / RateLimitExceeded. Synchronous
        and without I/O once loaded, so that one event loop admits exactly the limit."""
        self.budgets.check(caller.project_id)
        admitted = self.limiter.admit(caller.project_id, model)
        return Ticket(caller.project_id, caller.key_id, model, kind), admitted

    def close(self) -> None:
        self.meter.close()
