"""Events and checkpoints of fine-tuning jobs (the OpenAI /events and /checkpoints lists)."""

from __future__ import annotations

from sqlalchemy import func, select

from rixin.store.db import Database
from rixin.store.schema import JobCheckpoint, JobEvent
from rixin.store.tenancy import new_id


class JobEvents:
    def __init__(self, db: Database):
        self.db = db

    def add(self, job_id: str, message: str, *, type: str = "message", level: str = "info",
            data: dict | None = None) -> None:
        with self.db.session() as s:
            seq = (s.scalar(select(func.max(JobEvent.seq)).where(JobEvent.job_id == job_id)) or 0) + 1
            s.add(JobEvent(id=new_id("ftevent"), job_id=job_id, seq=seq, level=level, type=type,
                           message=message[:1024], data=data))

    def page(self, job_id: str, *, after: str | None = None, limit: int = 20) -> tuple[list[JobEvent], bool]:
        """Newest first; `after` is the id of the last event of the previous page."""
        with self.db.session() as s:
            q = select(JobEvent).where(JobEvent.job_id == job_id)
            if after:
                anchor = s.get(JobEvent, after)
                if anchor is not None and anchor.job_id == job_id:
                    q = q.where(JobEvent.seq < anchor.seq)
            rows = list(s.scalars(q.order_by(JobEvent.seq.desc()).limit(limit + 1)))
        return rows[:limit], len(rows) > limit

    def add_checkpoint(self, job_id: str, step: int, path: str, metrics: dict) -> JobCheckpoint:
        row = JobCheckpoint(id=new_id("ftckpt"), job_id=job_id, step=step, path=path, metrics=metrics)
        with self.db.session() as s:
            s.add(row)
        return row

    def checkpoints(self, job_id: str, *, after: str | None = None, limit: int = 10
                    ) -> tuple[list[JobCheckpoint], bool]:
        with self.db.session() as s:
            q = select(JobCheckpoint).where(JobCheckpoint.job_id == job_id)
            if after:
                anchor = s.get(JobCheckpoint, after)
                if anchor is not None and anchor.job_id == job_id:
                    q = q.where(JobCheckpoint.step < anchor.step)
            rows = list(s.scalars(q.order_by(JobCheckpoint.step.desc()).limit(limit + 1)))
        return rows[:limit], len(rows) > limit
