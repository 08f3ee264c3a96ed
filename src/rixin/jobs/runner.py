"""The gateway's job runner: a background loop that claims queued jobs and runs each in a
worker thread (the job itself drives Ray). Started with the gateway; at start it requeues
jobs whose owner died, so interrupted work resumes."""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Callable, Protocol

from rixin.compute import admission
from rixin.compute.policy import Decision, decide
from rixin.compute.quotas import Quotas
from rixin.compute.resources import accelerators
from rixin.errors import Cancelled, Paused, RixinError
from rixin.jobs.loop import every
from rixin.jobs.store import JobStore
from rixin.store.schema import Job

log = logging.getLogger("rixin.jobs")

# kind → function(job, report_progress) -> result dict, already holding the services it uses
Handler = Callable[[Job, Callable[..., None]], dict]


class Events(Protocol):
    """Where a waiting job's reasons go: train/events.JobEvents (a higher room, so not imported)."""

    def add(self, job_id: str, message: str, *, data: dict | None = None) -> object: ...


def run_job(jobs: JobStore, job: Job, handlers: dict[str, Handler]) -> Job:
    """Run one claimed job to a final state; used by the gateway runner and by evals' run_inline."""

    def report(**values) -> None:
        jobs.progress(job.id, **values)
        if jobs.status(job.id) == "cancelled":
            raise Cancelled(job.id)

    try:
        result = handlers[job.kind](job, report)
        return jobs.finish(job.id, "succeeded", result=result)
    except (Cancelled, Paused):
        return jobs.get(None, job.id)
    except RixinError as e:
        return jobs.finish(job.id, "failed", error={"message": e.message, "code": e.code, "param": e.param})
    except Exception as e:  # noqa: BLE001 - a job's crash is recorded on the job, not lost
        log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        return jobs.finish(job.id, "failed", error={"message": f"{type(e).__name__}: {e}",
                                                    "code": "job_crashed", "param": None})


def plan(jobs: JobStore, quotas: Quotas, kinds, slots: int, per_project: int, mine: set[str]) -> Decision:
    """The compute policy's decision over the database's queued and running jobs: the gateway's
    job slots and the Ray cluster's accelerators are the capacity, each project's quota (or
    `per_project` running jobs by default) its share. Nothing is preempted yet: a running job
    is only stopped through its checkpoint (issue 12 item 3, not wired)."""
    limits = quotas.for_scheduler(per_project)
    queued = [j for j in jobs.queued() if j.kind in kinds]
    cap = admission.capacity(slots, accelerators())
    return decide(cap, admission.pending(queued), admission.running(jobs.running(), limits, mine), limits,
                  preemption=False)


class JobRunner:
    def __init__(self, jobs: JobStore, events: Events, handlers: dict[str, Handler], *, concurrency: int = 1,
                 per_project: int = 1, poll_s: float = 1.0):
        self.jobs, self.events, self.handlers = jobs, events, handlers  # events: where waiting reasons go
        self.concurrency, self.per_project, self.poll_s = concurrency, per_project, poll_s
        self.running: set[str] = set()
        self.quotas = Quotas(jobs.db)
        self.reasons: dict[str, str] = {}  # job id → the waiting reason last written

    async def loop(self) -> None:
        requeued = await asyncio.to_thread(self.jobs.requeue_orphans)
        if requeued:
            log.warning("resuming jobs interrupted by a restart: %s", ", ".join(requeued))
        await every(self.poll_s, self._tick, name="job runner")

    async def _tick(self) -> None:
        decision = await asyncio.to_thread(plan, self.jobs, self.quotas, self.handlers, self.concurrency,
                                           self.per_project, set(self.running))
        for start in decision.start:
            if len(self.running) >= self.concurrency:
                break
            claimed = await asyncio.to_thread(self._claim, start.id)
            if claimed is not None:
                self.running.add(claimed.id)
                asyncio.create_task(self._run(claimed))
        await asyncio.to_thread(self._explain, decision.waiting)

    def _claim(self, job_id: str) -> Job | None:
        job = self.jobs.get(None, job_id)
        return self.jobs.claim(job_id, running_limit=self.quotas.running_jobs_limit(job.project_id,
                                                                                    self.per_project))

    def _explain(self, waiting: dict[str, str]) -> None:
        """A waiting job says why in its events, once per new reason."""
        self.reasons = {k: v for k, v in self.reasons.items() if k in waiting}
        for job_id, reason in waiting.items():
            if self.reasons.get(job_id) != reason:
                self.events.add(job_id, f"Waiting in queue: {reason}.", data={"reason": reason})
            self.reasons[job_id] = reason

    async def _run(self, job: Job) -> None:
        try:
            await asyncio.to_thread(run_job, self.jobs, job, self.handlers)
        finally:
            self.running.discard(job.id)
