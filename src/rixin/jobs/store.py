"""Job rows: created queued, claimed atomically by one runner (a gateway), progress
written as it goes, finished once. A job whose owner process died is queued again at the
next gateway start and resumes from its work directory (jobs are resumable by construction)."""

from __future__ import annotations

import os
import socket
from collections import Counter
from datetime import datetime

from sqlalchemy import func, select, update
from sqlalchemy.orm import aliased

from rixin.errors import Conflict, NotFound
from rixin.store.db import Database
from rixin.store.schema import Job, Project, utcnow
from rixin.store.tenancy import Caller, new_id

ACTIVE = ("queued", "running")
FINAL = ("succeeded", "failed", "cancelled")


def this_owner() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def owner_alive(owner: str | None) -> bool:
    """Whether the process that claimed a job still runs (only decidable on this host)."""
    if not owner:
        return False
    host, _, pid = owner.rpartition(":")
    if host != socket.gethostname():
        return True  # another machine's runner: not ours to judge
    try:
        os.kill(int(pid), 0)
    except (ProcessLookupError, ValueError):
        return False
    except PermissionError:
        return True
    return True


class JobStore:
    def __init__(self, db: Database):
        self.db = db

    def create(self, caller: Caller, kind: str, params: dict) -> Job:
        """A queued job; a runner claims it (`claim`)."""
        prefix = {"fine_tune": "ftjob"}.get(kind, f"{kind}job")
        job = Job(id=new_id(prefix), project_id=caller.project_id, kind=kind, status="queued",
                  params=params, progress={}, attempts=0)
        with self.db.session() as s:
            s.add(job)
        return job

    def claim(self, job_id: str, *, running_limit: int | None = None) -> Job | None:
        """Mark a queued job running for this process; None if someone else got it first or,
        with `running_limit`, if its project already runs that many jobs. The check and the
        claim are one statement under a lock on the project's row, so runners racing for the
        last place of a project (several gateways on one database) never admit one job too many."""
        with self.db.session() as s:
            cond = [Job.id == job_id, Job.status == "queued"]
            if running_limit is not None:
                project_id = s.scalar(select(Job.project_id).where(Job.id == job_id))
                # PostgreSQL: admissions of one project take turns (SQLite: the UPDATE below
                # already holds the database's single write lock while it counts).
                s.execute(select(Project.id).where(Project.id == project_id).with_for_update())
                other = aliased(Job)
                running = (select(func.count()).select_from(other)
                           .where(other.project_id == project_id, other.status == "running").scalar_subquery())
                cond.append(running < running_limit)
            claimed = s.execute(update(Job).where(*cond)
                                .values(status="running", owner=this_owner(), started_at=utcnow(),
                                        attempts=Job.attempts + 1)).rowcount
            return s.get(Job, job_id) if claimed else None

    def queued(self) -> list[Job]:
        with self.db.session() as s:
            return list(s.scalars(select(Job).where(Job.status == "queued").order_by(Job.created_at)))

    def running(self) -> list[Job]:
        with self.db.session() as s:
            return list(s.scalars(select(Job).where(Job.status == "running")))

    def running_per_project(self) -> Counter:
        with self.db.session() as s:
            rows = s.execute(select(Job.project_id, func.count()).where(Job.status == "running")
                             .group_by(Job.project_id)).all()
        return Counter(dict(rows))

    def requeue_orphans(self) -> list[str]:
        """Running jobs whose owner died go back to the queue (they resume where they were)."""
        with self.db.session() as s:
            orphans = [j for j in s.scalars(select(Job).where(Job.status == "running"))
                       if not owner_alive(j.owner)]
            for job in orphans:
                job.status, job.owner = "queued", None
            return [j.id for j in orphans]

    def set_status(self, job_id: str, status: str) -> None:
        """A non-final state change (validating_files → queued, running → paused → queued)."""
        assert status not in FINAL
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job.status not in FINAL:
                job.status = status
                if status == "queued":
                    job.owner = None

    def progress(self, job_id: str, **values) -> None:
        with self.db.session() as s:
            job = s.get(Job, job_id)
            job.progress = {**(job.progress or {}), **values}

    def finish(self, job_id: str, status: str, *, result: dict | None = None, error: dict | None = None) -> Job:
        assert status in FINAL
        with self.db.session() as s:
            job = s.get(Job, job_id)
            if job.status in FINAL:  # e.g. cancelled while running: the first final word stays
                return job
            job.status, job.result, job.error, job.finished_at = status, result, error, utcnow()
            return job

    def cancel(self, caller: Caller, job_id: str) -> Job:
        job = self.get(caller, job_id)
        if job.status in FINAL:
            raise Conflict(f"Job {job_id} already {job.status}; it cannot be cancelled.", param="job_id")
        return self.finish(job_id, "cancelled")

    def status(self, job_id: str) -> str:
        with self.db.session() as s:
            return s.get(Job, job_id).status

    def get(self, caller: Caller | None, job_id: str) -> Job:
        with self.db.session() as s:
            job = s.get(Job, job_id)
        if job is None or (caller is not None and job.project_id != caller.project_id):
            raise NotFound(f"No such job: {job_id}", param="job_id")
        return job

    def list(self, caller: Caller, kind: str | None = None) -> list[Job]:
        with self.db.session() as s:
            q = select(Job).where(Job.project_id == caller.project_id)
            if kind:
                q = q.where(Job.kind == kind)
            return list(s.scalars(q.order_by(Job.created_at.desc())))


def ts(value: datetime | None) -> int | None:
    return int(value.timestamp()) if value else None
