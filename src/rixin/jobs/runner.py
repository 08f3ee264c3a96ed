"""The gateway's job runner: a background loop that claims queued jobs and runs each in a
worker thread (the job itself drives Ray). Started with the gateway; at start it requeues
jobs whose owner died, so interrupted work resumes."""

from __future__ import annotations

import asyncio
import logging
import traceback
from collections import Counter
from typing import Callable

from rixin.errors import Cancelled, Paused, RixinError
from rixin.jobs.loop import every
from rixin.jobs.store import JobStore
from rixin.store.schema import Job

log = logging.getLogger("rixin.jobs")

# kind → function(platform, job, report_progress) -> result dict
Handler = Callable[[object, Job, Callable[..., None]], dict]


def run_job(platform, jobs: JobStore, job: Job, handlers: dict[str, Handler]) -> Job:
    """Run one claimed job to a final state; used by the gateway runner and by the CLI."""

    def report(**values) -> None:
        jobs.progress(job.id, **values)
        if jobs.status(job.id) == "cancelled":
            raise Cancelled(job.id)

    try:
        result = handlers[job.kind](platform, job, report)
        return jobs.finish(job.id, "succeeded", result=result)
    except (Cancelled, Paused):
        return jobs.get(None, job.id)
    except RixinError as e:
        return jobs.finish(job.id, "failed", error={"message": e.message, "code": e.code, "param": e.param})
    except Exception as e:  # noqa: BLE001 - a job's crash is recorded on the job, not lost
        log.error("job %s failed:\n%s", job.id, traceback.format_exc())
        return jobs.finish(job.id, "failed", error={"message": f"{type(e).__name__}: {e}",
                                                    "code": "job_crashed", "param": None})


def pick(queued: list[Job], running_per_project: Counter, slots: int, per_project: int) -> list[Job]:
    """Which queued jobs start now: highest priority first, then first come first served,
    while slots are free and the job's project is under its quota of running jobs."""
    chosen, running = [], Counter(running_per_project)
    for job in sorted(queued, key=lambda j: (-int((j.params or {}).get("priority", 0)), j.created_at, j.id)):
        if len(chosen) >= slots:
            break
        if running[job.project_id] < per_project:
            chosen.append(job)
            running[job.project_id] += 1
    return chosen


class JobRunner:
    def __init__(self, platform, jobs: JobStore, handlers: dict[str, Handler], *, concurrency: int = 1,
                 per_project: int = 1, poll_s: float = 1.0):
        self.platform, self.jobs, self.handlers = platform, jobs, handlers
        self.concurrency, self.per_project, self.poll_s = concurrency, per_project, poll_s
        self.running: set[str] = set()

    async def loop(self) -> None:
        requeued = await asyncio.to_thread(self.jobs.requeue_orphans)
        if requeued:
            log.warning("resuming jobs interrupted by a restart: %s", ", ".join(requeued))
        await every(self.poll_s, self._tick, name="job runner")

    async def _tick(self) -> None:
        free = self.concurrency - len(self.running)
        if free <= 0:
            return
        queued = [j for j in await asyncio.to_thread(self.jobs.queued) if j.kind in self.handlers]
        running = await asyncio.to_thread(self.jobs.running_per_project)
        for job in pick(queued, running, free, self.per_project):
            claimed = await asyncio.to_thread(self.jobs.claim, job.id)
            if claimed is not None:
                self.running.add(claimed.id)
                asyncio.create_task(self._run(claimed))

    async def _run(self, job: Job) -> None:
        try:
            await asyncio.to_thread(run_job, self.platform, self.jobs, job, self.handlers)
        finally:
            self.running.discard(job.id)
