"""Quotas per project, set by an admin: guaranteed capacity and a borrowing limit per resource
class, running jobs, storage bytes and a monthly budget (DESIGN.md "Contracts of compute and
tenancy"). The scheduler reads them as `policy.Quota`s."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from sqlalchemy import select

from rixin.compute.policy import Quota
from rixin.errors import NotFound
from rixin.store import files
from rixin.store.db import Database
from rixin.store.schema import Project, ProjectQuota, utcnow

# A resource class is a Ray resource name: "cpu", "job_slot", "GPU", "NPU", "HPU", "TPU" or a
# custom resource a node advertises (`ray start --resources '{"accel_x": 4}'`).
CLASS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]


class QuotaBody(BaseModel):
    """PUT /v1/organization/projects/{project_id}/quota: the whole quota (omitted = no limit)."""

    model_config = ConfigDict(extra="forbid")
    guaranteed: dict[str, Amount] = Field(
        default_factory=dict, description="Capacity per resource class the project always gets; "
        "other projects' borrowed work is preempted to give it back.")
    borrow_limit: dict[str, Amount] = Field(
        default_factory=dict, description="How much of each class the project may borrow above its "
        "guarantee while others leave it idle (a class not named: no limit; 0: no borrowing).")
    running_jobs: Annotated[StrictInt, Field(ge=1, le=10_000)] | None = Field(
        None, description="Jobs of the project running at once (null: the gateway's "
        "max_running_jobs_per_project).")
    storage_bytes: Annotated[StrictInt, Field(ge=0)] | None = Field(
        None, description="Bytes of files and datasets the project may store (null: no limit).")
    budget: Amount | None = Field(None, description="Monthly spend limit in the prices' currency "
                                  "(null: no limit); over it requests get 429 insufficient_quota.")

    @field_validator("guaranteed", "borrow_limit")
    @classmethod
    def _class_names(cls, value: dict[str, float]) -> dict[str, float]:
        for name in value:
            if not CLASS_NAME.match(name):
                raise ValueError(f"{name!r} is not a resource class name: use a Ray resource name such "
                                 "as 'cpu', 'job_slot', 'GPU' or one GET /v1/cluster lists under accelerators")
        return value


def quota_object(project: Project, row: ProjectQuota | None) -> dict:
    body = QuotaBody() if row is None else QuotaBody(
        guaranteed=row.guaranteed, borrow_limit=row.borrow_limit, running_jobs=row.running_jobs,
        storage_bytes=row.storage_bytes, budget=row.budget)
    updated = int(row.updated_at.timestamp()) if row is not None and row.updated_at else None
    return {"object": "organization.project.quota", "project_id": project.id, "project": project.name,
            **body.model_dump(), "updated_at": updated}


class Quotas:
    def __init__(self, db: Database):
        self.db = db

    def _project(self, s, ref: str) -> Project:
        """A project by id or by name (the Admin API names projects by id, the CLI by name)."""
        project = s.get(Project, ref) or s.scalar(select(Project).where(Project.name == ref))
        if project is None:
            raise NotFound(f"No such project: {ref}", param="project_id")
        return project

    def get(self, ref: str) -> dict:
        with self.db.session() as s:
            project = self._project(s, ref)
            return quota_object(project, s.get(ProjectQuota, project.id))

    def put(self, ref: str, body: QuotaBody) -> dict:
        with self.db.session() as s:
            project = self._project(s, ref)
            row = s.get(ProjectQuota, project.id) or ProjectQuota(project_id=project.id)
            row.guaranteed, row.borrow_limit = dict(body.guaranteed), dict(body.borrow_limit)
            row.running_jobs, row.storage_bytes, row.budget = body.running_jobs, body.storage_bytes, body.budget
            row.updated_at = utcnow()
            s.add(row)
            s.flush()
            return quota_object(project, row)

    def for_scheduler(self, default_running_jobs: int | None) -> dict[str, Quota]:
        """Every project's quota as the policy reads it (project id → Quota)."""
        with self.db.session() as s:
            rows = {r.project_id: r for r in s.scalars(select(ProjectQuota))}
            ids = list(s.scalars(select(Project.id)))
        out = {}
        for pid in ids:
            row = rows.get(pid)
            out[pid] = Quota(running_jobs=default_running_jobs) if row is None else Quota(
                guaranteed=row.guaranteed, borrow_limit=row.borrow_limit,
                running_jobs=row.running_jobs if row.running_jobs is not None else default_running_jobs)
        return out

    def running_jobs_limit(self, project_id: str, default: int | None) -> int | None:
        with self.db.session() as s:
            row = s.get(ProjectQuota, project_id)
        return row.running_jobs if row is not None and row.running_jobs is not None else default


def storage(db: Database, project_id: str) -> tuple[int, int | None]:
    """(bytes the project's files hold now, its storage quota or None for no limit)."""
    with db.session() as s:
        return files.storage_use(s, project_id)


def check_storage(db: Database, project_id: str, extra_bytes: int) -> int | None:
    """The early check for a write of `extra_bytes` that a client asked for (an upload whose size
    is known): 413 `storage_quota_exceeded` if it would not fit, else the bytes left after it
    (None: no quota). The binding check is the one `Files.record(check_quota=True)` makes in the
    transaction that registers the file, so racing writers never store more than the quota."""
    with db.session() as s:
        return files.check_storage(s, project_id, extra_bytes)
