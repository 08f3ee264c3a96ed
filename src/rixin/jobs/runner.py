"""The gateway's job runner: a background loop that claims queued jobs and runs each in a
worker thread (the job itself drives Ray). Started with the gateway; at start it requeues
jobs whose owner died, so interrupted work resumes.

Preemption (ADR 0007): when the policy names victims, the runner asks each, through its kind's
preempt hook, to checkpoint and stop; the job's handler then raises Preempted and the job goes
back to `queued`, to be claimed again (and resume from that checkpoint) when capacity returns.
Every step of the hand-over is a state the next gateway start already handles: a victim asked
but not stopped, or stopped but not requeued, is still `running` with a dead owner and is
requeued; a stale stop flag is cleared when the job is next claimed."""

from __future__ import annotations

import asyncio
import logging
import traceback
from typing import Callable, Collection, Protocol

from rixin.compute import admission
from rixin.compute.policy import Decision, decide
from rixin.compute.quotas import Quotas
from rixin.compute.resources import accelerators
from rixin.errors import Cancelled, Paused, Preempted, RixinError
from rixin.jobs.loop import every
from rixin.jobs.store import JobStore
from rixin.store.schema import Job

log = logging.getLogger("rixin.jobs")

# kind → function(job, report_progress) -> result dict, already holding the services it uses
Handler = Callable[[Job, Callable[..., None]], dict]
# kind → function(job) asking a running job to checkpoint and stop (idempotent); kinds without
# one cannot checkpoint and resume, so the policy never picks them as victims
Preempter = Callable[[Job], None]


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
    except Preempted:
        jobs.set_status(job.id, "queued")  # (a job cancelled meanwhile stays cancelled)
        return jobs.get(None, job.id)
    except RixinError as e:
        return jobs.finish(job.id, "failed", error={"message": e.message, "code": e.code, "param": e.param})
    except Exception as e:  # noqa: BLE001 - a job's crash is recorded on the job, not lost
        log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        return jobs.finish(job.id, "failed", error={"message": f"{type(e).__name__}: {e}",
                                                    "code": "job_crashed", "param": None})


def plan(jobs: JobStore, quotas: Quotas, kinds, slots: int, per_project: int, mine: set[str],
         preemptible=(), stopping: Collection[str] = ()) -> Decision:
    """The compute policy's decision over the database's queued and running jobs: the gateway's
    job slots and the Ray cluster's accelerators are the capacity, each project's quota (or
    `per_project` running jobs by default) its share. Jobs of a `preemptible` kind that this
    runner runs may be preempted; those already `stopping` count as gone (their capacity is
    being given back), so no second victim is taken for the same claim."""
    limits = quotas.for_scheduler(per_project)
    queued = [j for j in jobs.queued() if j.kind in kinds]
    running = [j for j in jobs.running() if j.id not in stopping]
    cap = admission.capacity(slots, accelerators())
    return decide(cap, admission.pending(queued), admission.running(running, limits, mine, preemptible), limits,
                  preemption=bool(preemptible))


class JobRunner:
    def __init__(self, jobs: JobStore, events: Events, handlers: dict[str, Handler], *, concurrency: int = 1,
                 per_project: int = 1, poll_s: float = 1.0, preempters: dict[str, Preempter] | None = None):
        self.jobs, self.events, self.handlers = jobs, events, handlers  # events: where waiting reasons go
        self.preempters = preempters or {}
        self.concurrency, self.per_project, self.poll_s = concurrency, per_project, poll_s
        self.running: set[str] = set()
        self.stopping: dict[str, Job] = {}  # victims asked to checkpoint and stop, until they do
        self.quotas = Quotas(jobs.db)
        self.reasons: dict[str, str] = {}  # job id → the waiting reason last written

    async def loop(self) -> None:
        requeued = await asyncio.to_thread(self.jobs.requeue_orphans)
        if requeued:
            log.warning("resuming jobs interrupted by a restart: %s", ", ".join(requeued))
        await every(self.poll_s, self._tick, name="job runner")

    async def _tick(self) -> None:
        decision = await asyncio.to_thread(plan, self.jobs, self.quotas, self.handlers, self.concurrency,
                                           self.per_project, set(self.running), self.preempters,
                                           set(self.stopping))
        await asyncio.to_thread(self._preempt, decision)
        # (a victim that ended on its own while it was being chosen is not waited for)
        self.stopping = {k: v for k, v in self.stopping.items() if k in self.running}
        waiting = dict(decision.waiting)
        for start in decision.start:
            if self.stopping:  # what victims hold is not free until they stop: nothing starts before
                waiting[start.id] = f"preempted job(s) {', '.join(sorted(self.stopping))} checkpointing to make room"
                continue
            if len(self.running) >= self.concurrency:
                break
            claimed = await asyncio.to_thread(self._claim, start.id)
            if claimed is not None:
                self.running.add(claimed.id)
                asyncio.create_task(self._run(claimed))
        await asyncio.to_thread(self._explain, waiting)

    def _claim(self, job_id: str) -> Job | None:
        job = self.jobs.get(None, job_id)
        return self.jobs.claim(job_id, running_limit=self.quotas.running_jobs_limit(job.project_id,
                                                                                    self.per_project))

    def _preempt(self, decision: Decision) -> None:
        """Ask the decision's victims to checkpoint and stop, each with a `preempted` event naming
        the job that claims its capacity; the asking is repeated every tick until the victim
        stops (a flag written just before the job cleared it at its start is not lost)."""
        for victim_id in decision.preempt:
            victim, claimant = self.jobs.get(None, victim_id), self.jobs.get(None, decision.preempted_for[victim_id])
            self.events.add(victim_id, f"Preempted: job {claimant.id} of project {claimant.project_id} claims "
                            "its capacity; stopping at a checkpoint, then queued to resume from it",
                            data={"reason": "preempted", "preempted_by": claimant.id, "project": claimant.project_id,
                                  "step": (victim.progress or {}).get("step")})
            log.info("preempting %s for %s", victim_id, claimant.id)
            self.stopping[victim_id] = victim
        for victim in list(self.stopping.values()):
            if victim.id in self.running:
                self.preempters[victim.kind](self.jobs.get(None, victim.id))

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
            self.stopping.pop(job.id, None)
