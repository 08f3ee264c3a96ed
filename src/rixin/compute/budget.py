"""Prices and monthly budgets: what a project's tokens cost (admin-set USD per 1M tokens per
model) and the 429 `insufficient_quota` once a project spent its budget for the calendar month
(UTC). A request is refused when the month's spend is at or over the budget before it starts;
the request that crosses the line is answered (its cost is known only at its end).

The budget is the `budget` of the project's quota (compute/quotas.py, `project_quotas`): the quota
route and `set_budget` write the same column, and either one makes the next request read it again.
Each project's month-to-date spend is summed from the usage table once, then kept current by
the meter's commit callback (`add`), under the meter's commit lock (see compute/metering.py)."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timezone

from sqlalchemy import func, select

from rixin.errors import InsufficientQuota
from rixin.store.db import Database
from rixin.store.schema import Price, ProjectQuota, UsageRecord

PER = 1_000_000


@dataclass(frozen=True)
class Rates:
    input_per_1m: float = 0.0
    cached_input_per_1m: float = 0.0
    output_per_1m: float = 0.0

    def cost(self, input_tokens: int, cached_tokens: int, output_tokens: int) -> float:
        """Cached input tokens are billed at the cached rate, the rest of the input at the
        input rate (OpenAI's input_tokens include the cached ones)."""
        return ((input_tokens - cached_tokens) * self.input_per_1m + cached_tokens * self.cached_input_per_1m
                + output_tokens * self.output_per_1m) / PER


def month_start(now: datetime | None = None) -> datetime:
    now = now or datetime.now(timezone.utc)
    return now.replace(day=1, hour=0, minute=0, second=0, microsecond=0)


class Budgets:
    def __init__(self, db: Database, commit_lock: threading.Lock):
        self.db, self.commit_lock = db, commit_lock
        self.prices: dict[str, Rates] | None = None
        self.budgets: dict[str, float] | None = None
        self.spent: dict[str, tuple[datetime, float]] = {}  # project -> (month, USD so far)

    def load(self, project_id: str | None = None) -> None:
        """Read prices and budgets, and `project_id`'s spend this month when it has a budget
        (in a worker thread: the first request of a project in a month pays for the sum)."""
        budgets = self.budgets
        if budgets is None or self.prices is None:
            with self.db.session() as s:
                self.prices = {p.model: _rates(p) for p in s.scalars(select(Price))}
                self.budgets = budgets = {q.project_id: q.budget for q in s.scalars(select(ProjectQuota))
                                          if q.budget is not None}
        if project_id is not None and project_id in budgets and not self._current(project_id):
            with self.commit_lock:
                self.spent[project_id] = (month_start(), self._sum(project_id, month_start()))

    def needs_load(self, project_id: str) -> bool:
        budgets = self.budgets
        return budgets is None or self.prices is None or (project_id in budgets and not self._current(project_id))

    def _current(self, project_id: str) -> bool:
        spent = self.spent.get(project_id)
        return spent is not None and spent[0] == month_start()

    def _sum(self, project_id: str, since: datetime) -> float:
        with self.db.session() as s:
            rows = s.execute(select(UsageRecord.model, func.sum(UsageRecord.input_tokens),
                                    func.sum(UsageRecord.input_cached_tokens),
                                    func.sum(UsageRecord.output_tokens))
                             .where(UsageRecord.project_id == project_id, UsageRecord.created_at >= since)
                             .group_by(UsageRecord.model)).all()
        return sum(self.rates(m).cost(int(i or 0), int(c or 0), int(o or 0)) for m, i, c, o in rows)

    def rates(self, model: str) -> Rates:
        return (self.prices or {}).get(model) or Rates()

    def check(self, project_id: str) -> None:
        """Raise InsufficientQuota when the project spent its monthly budget (call `load`
        first when `needs_load`)."""
        budgets = self.budgets or {}  # (None for a moment after `forget`: the next request reads them)
        budget, spent = budgets.get(project_id), self.spent.get(project_id, (None, 0.0))[1]
        if budget is None:  # (a budget set a moment ago is summed at the project's next request)
            return
        if spent >= budget:
            raise InsufficientQuota(
                f"Project {project_id} spent its monthly budget (${spent:.4f} of ${budget:.4f}). "
                "Ask an admin to raise the budget; it renews on the 1st of the month (UTC).")

    def add(self, row: UsageRecord) -> None:
        """The meter's commit callback: count a committed row's cost."""
        spent = self.spent.get(row.project_id)
        if spent is not None and spent[0] == month_start(row.created_at):
            cost = self.rates(row.model).cost(row.input_tokens, row.input_cached_tokens, row.output_tokens)
            self.spent[row.project_id] = (spent[0], spent[1] + cost)

    def set_price(self, model: str, rates: Rates) -> Rates:
        with self.db.session() as s:
            row = s.get(Price, model) or Price(model=model)
            row.input_per_1m, row.cached_input_per_1m = rates.input_per_1m, rates.cached_input_per_1m
            row.output_per_1m = rates.output_per_1m
            s.merge(row)
        self.load()
        self.prices[model] = rates
        self.spent.clear()  # summed again at the old and new prices alike
        return rates

    def list_prices(self) -> dict[str, Rates]:
        self.load()
        return dict(self.prices)

    def set_budget(self, project_id: str, monthly_usd: float | None) -> None:
        """Set (or, with None, remove) a project's monthly budget: the budget of its quota."""
        with self.db.session() as s:
            row = s.get(ProjectQuota, project_id) or ProjectQuota(project_id=project_id)
            row.budget = monthly_usd
            s.add(row)
        self.forget()

    def forget(self) -> None:
        """Budgets changed in the store (the quota route): read them again at the next request."""
        self.budgets = None

    def budget(self, project_id: str) -> float | None:
        self.load()
        return (self.budgets or {}).get(project_id)


def _rates(p: Price) -> Rates:
    return Rates(p.input_per_1m, p.cached_input_per_1m, p.output_per_1m)
