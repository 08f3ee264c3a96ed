"""THE scheduling decision: one pure function of (capacity, queue, running jobs, quotas).

The gateway's job runner and bench/scheduler_sim.py call the same `decide`; it reads nothing
and writes nothing, so what it does on a 2-core box is what it does over 1,000 nodes.

Rules (docs/decisions/0007-scheduling-policy.md):
- A project's quota gives it `guaranteed` (nominal) capacity per resource class and a
  `borrow_limit` above that. Work that fits in the guaranteed part is a *claim*: if no capacity
  is free, the scheduler preempts borrowed work (any project's) to make room. Guaranteed work is
  never preempted by another project.
- Work above the guarantee borrows idle capacity, up to guaranteed + borrow_limit. Borrowed
  work never preempts anything of another project, and it is the first to go.
- Within a project, higher priority first, then first come first served; a job may preempt
  its own project's lower-priority jobs.
- Victims are the cheapest first: lowest priority, borrowed before guaranteed, least work since
  the last checkpoint (that work is what a preemption loses). Only work that can checkpoint and
  resume (`Running.preemptible`) is ever a victim.
- Borrowers are served by weighted fair share: the project furthest below its entitlement
  (dominant share of usage over its guaranteed share) picks next.
- A smaller job may start while an earlier, larger one of its project waits (backfill); the
  larger one is still considered first at every decision.

Amounts are floats per resource class name ("cpu", "job_slot", an accelerator class, ...).
A class absent from `borrow_limit` may be borrowed without limit; an explicit 0 forbids it.
"""

from __future__ import annotations

import bisect
import heapq
from collections import defaultdict, deque
from dataclasses import dataclass, field
from datetime import datetime
from typing import Mapping

EPS = 1e-9
Resources = Mapping[str, float]


@dataclass(frozen=True)
class Quota:
    """What a project is entitled to; the default is no guarantee and unlimited borrowing."""

    guaranteed: Resources = field(default_factory=dict)
    borrow_limit: Resources = field(default_factory=dict)
    running_jobs: int | None = None

    def limit(self, cls: str) -> float:
        """Most of `cls` the project may hold: guaranteed plus what it may borrow."""
        if cls not in self.borrow_limit:
            return float("inf")
        return self.guaranteed.get(cls, 0.0) + self.borrow_limit[cls]


@dataclass(frozen=True)
class Pending:
    id: str
    project: str
    demand: Resources
    priority: int = 0
    created_at: float | datetime = 0.0


@dataclass(frozen=True)
class Running:
    id: str
    project: str
    demand: Resources
    priority: int = 0
    borrowed: bool = False
    work_since_checkpoint: float = 0.0  # steps done since its last checkpoint: what preempting it loses
    preemptible: bool = True  # False for kinds that cannot checkpoint and resume (never a victim)


@dataclass(frozen=True)
class Start:
    id: str
    borrowed: bool


@dataclass
class Decision:
    start: list[Start] = field(default_factory=list)
    preempt: list[str] = field(default_factory=list)
    preempted_for: dict[str, str] = field(default_factory=dict)  # victim id → the job it makes room for
    waiting: dict[str, str] = field(default_factory=dict)  # job id → why it waits


def victim_cost(job: Running) -> tuple:
    """Cheapest victim first: lowest priority, borrowed before guaranteed, least work lost."""
    return (job.priority, not job.borrowed, job.work_since_checkpoint, job.id)


class _State:
    """Free capacity and per-project usage while one decision is being made."""

    def __init__(self, capacity: Resources, running: list[Running], quotas: Mapping[str, Quota]):
        self.capacity, self.quotas = capacity, quotas
        self.free = defaultdict(float, capacity)
        self.usage: dict[str, defaultdict] = defaultdict(lambda: defaultdict(float))
        self.guaranteed_usage: dict[str, defaultdict] = defaultdict(lambda: defaultdict(float))
        self.borrowed_usage = defaultdict(float)  # all projects' borrowed work, per class
        self.count: dict[str, int] = defaultdict(int)
        self.live: dict[str, Running] = {}
        for r in running:
            self.restore(r)

    def quota(self, project: str) -> Quota:
        return self.quotas.get(project) or Quota()

    def _add(self, project: str, demand: Resources, borrowed: bool, sign: int) -> None:
        for cls, n in demand.items():
            self.free[cls] -= sign * n
            self.usage[project][cls] += sign * n
            if borrowed:
                self.borrowed_usage[cls] += sign * n
            else:
                self.guaranteed_usage[project][cls] += sign * n
        self.count[project] += sign

    def is_claim(self, job: Pending) -> bool:
        """Whether the job fits in its project's guarantee (then it may reclaim by preemption)."""
        g, used = self.quota(job.project).guaranteed, self.guaranteed_usage[job.project]
        return all(used[c] + n <= g.get(c, 0.0) + EPS for c, n in job.demand.items() if n > 0)

    def shortfall(self, job: Pending) -> str | None:
        """Why the job cannot start right now without preemption; None when it can."""
        q, used = self.quota(job.project), self.usage[job.project]
        if q.running_jobs is not None and self.count[job.project] >= q.running_jobs:
            return f"project has {self.count[job.project]} running job(s), its quota of running_jobs"
        for cls, n in job.demand.items():
            if used[cls] + n > q.limit(cls) + EPS:
                return (f"quota: {cls} would reach {used[cls] + n:g}, above guaranteed + borrow_limit "
                        f"({q.limit(cls):g})")
        for cls, n in job.demand.items():
            if n > self.free[cls] + EPS:
                return f"no free {cls}: needs {n:g}, {max(self.free[cls], 0.0):g} free"
        return None

    def start(self, job: Pending, borrowed: bool) -> None:
        """Count a job started by this decision (it is never a victim of the same decision)."""
        self._add(job.project, job.demand, borrowed, +1)

    def remove(self, victim: Running) -> None:
        del self.live[victim.id]
        self._add(victim.project, victim.demand, victim.borrowed, -1)

    def restore(self, victim: Running) -> None:
        self.live[victim.id] = victim
        self._add(victim.project, victim.demand, victim.borrowed, +1)

    def share(self, project: str) -> float:
        """Dominant share of usage over the project's guaranteed share (fair order of borrowers)."""
        used, g = self.usage[project], self.quota(project).guaranteed
        dominant = max((used[c] / cap for c, cap in self.capacity.items() if cap > 0), default=0.0)
        weight = max((g.get(c, 0.0) / cap for c, cap in self.capacity.items() if cap > 0), default=0.0)
        return dominant / max(weight, 1e-3)


def _never_fits(job: Pending, capacity: Resources) -> str | None:
    for cls, n in job.demand.items():
        if n > capacity.get(cls, 0.0) + EPS:
            return f"needs {n:g} {cls}; the cluster has {capacity.get(cls, 0.0):g} in all"
    return None


class _Victims:
    """Running work that may be preempted, cheapest first: borrowed work by resource class (what
    a claim may take from other projects) and every project's own work (what its higher
    priority may take). Built once per decision; victims already taken are skipped."""

    def __init__(self, running: list[Running]):
        self.borrowed: dict[str, list[Running]] = defaultdict(list)
        self.own: dict[str, list[Running]] = defaultdict(list)
        for v in sorted((r for r in running if r.preemptible), key=victim_cost):
            self.own[v.project].append(v)
            if v.borrowed:
                for cls, n in v.demand.items():
                    if n > 0:
                        self.borrowed[cls].append(v)
        # victim_cost orders by priority first: a project's work below priority p is a prefix
        self.priorities = {p: [v.priority for v in vs] for p, vs in self.own.items()}
        self._lower: dict[tuple[str, int], tuple[list[Running], dict]] = {}

    def lower(self, project: str, priority: int) -> tuple[list[Running], dict]:
        """The project's running work below `priority` (cheapest first) and what it holds."""
        key = (project, priority)
        if key not in self._lower:
            cut = bisect.bisect_left(self.priorities.get(project, []), priority)
            prefix, held = self.own[project][:cut], defaultdict(float)
            for v in prefix:
                for c, n in v.demand.items():
                    held[c] += n
            self._lower[key] = (prefix, held)
        return self._lower[key]

    def for_job(self, state: _State, job: Pending, claim: bool):
        streams = [self.lower(job.project, job.priority)[0]]
        if claim:
            streams += [(v for v in self.borrowed[c] if v.project != job.project) for c in job.demand]
        seen: set[str] = set()
        for v in heapq.merge(*streams, key=victim_cost):
            if v.id not in seen and v.id in state.live:
                seen.add(v.id)
                yield v

    def could_help(self, state: _State, job: Pending, claim: bool) -> bool:
        """A cheap upper bound: whether preempting everything allowed could free enough."""
        prefix, held = self.lower(job.project, job.priority)
        if not claim and not prefix:
            return False
        return all(n <= state.free[c] + held[c] + (state.borrowed_usage[c] if claim else 0.0) + EPS
                   for c, n in job.demand.items())


def _preempt_for(state: _State, job: Pending, claim: bool, victims: _Victims | None) -> list[Running] | None:
    """The cheapest set of victims whose removal lets `job` start, or None. A claim may take
    any project's borrowed work; any job may take its own project's lower-priority work."""
    if victims is None or not victims.could_help(state, job, claim):
        return None
    chosen: list[Running] = []
    for v in victims.for_job(state, job, claim):
        if state.shortfall(job) is None:
            break
        state.remove(v)
        chosen.append(v)
    if state.shortfall(job) is not None:
        for v in chosen:  # undo: nothing is preempted for a job that still cannot start
            state.restore(v)
        return None
    for v in reversed(chosen):  # keep only the victims the job really needs (most costly first out)
        state.restore(v)
        if state.shortfall(job) is None:
            chosen.remove(v)
        else:
            state.remove(v)
    return chosen


def decide(capacity: Resources, pending: list[Pending], running: list[Running],
           quotas: Mapping[str, Quota], *, preemption: bool = True) -> Decision:
    """Which pending jobs start (and whether on borrowed capacity), which running jobs are
    preempted, and why every other pending job waits. Pure: the inputs are not changed.
    Without `preemption` (a caller that cannot checkpoint and requeue), nothing is preempted."""
    state, out = _State(capacity, running, quotas), Decision()
    victims = _Victims(running) if preemption else None
    borrowers: dict[str, deque[Pending]] = defaultdict(deque)
    order = sorted(pending, key=lambda j: (-j.priority, j.created_at, j.id))
    for job in order:  # claims (work within a guarantee), highest priority first, then FIFO
        never = _never_fits(job, capacity)
        if never:
            out.waiting[job.id] = never
        elif state.is_claim(job):
            _place(state, job, True, victims, out)
        else:
            borrowers[job.project].append(job)

    def turn(project: str) -> tuple:  # equal shares: the higher-priority, older head goes first
        head = borrowers[project][0]
        return (state.share(project), -head.priority, head.created_at, head.id, project)

    heap = [turn(p) for p in borrowers]
    heapq.heapify(heap)
    while heap:  # borrowers: the project furthest below its entitlement goes next
        project = heapq.heappop(heap)[-1]
        jobs = borrowers[project]
        while jobs:
            job = jobs.popleft()
            if _place(state, job, state.is_claim(job), victims, out):
                if jobs:
                    heapq.heappush(heap, turn(project))
                break
    return out


def _place(state: _State, job: Pending, claim: bool, victims: _Victims | None, out: Decision) -> bool:
    why = state.shortfall(job)
    if why is not None:
        chosen = _preempt_for(state, job, claim, victims)
        if chosen is None:
            out.waiting[job.id] = why
            return False
        out.preempt.extend(v.id for v in chosen)
        out.preempted_for.update((v.id, job.id) for v in chosen)
    out.start.append(Start(job.id, borrowed=not claim))
    state.start(job, borrowed=not claim)
    return True
