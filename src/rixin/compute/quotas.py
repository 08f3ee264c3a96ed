"""Quotas per project, set by an admin: guaranteed capacity and a borrowing limit per resource
class, running jobs, storage bytes and a monthly budget (DESIGN.md "Contracts of compute and
tenancy"). The scheduler reads them as `policy.Quota`s."""

from __future__ import annotations

import re
import threading
from collections import defaultdict
from typing import Annotated, Iterable, Mapping

from pydantic import BaseModel, ConfigDict, Field, StrictInt, field_validator
from sqlalchemy import or_, select

from rixin.compute.policy import Quota, Running
from rixin.errors import InvalidRequest
from rixin.store import files
from rixin.store.db import Database
from rixin.store.schema import Job, JobEvent, Project, ProjectQuota, utcnow
from rixin.store.tenancy import Tenancy

# A resource class is a Ray resource name: "cpu", "job_slot", "GPU", "NPU", "HPU", "TPU" or a
# custom resource a node advertises (`ray start --resources '{"accel_x": 4}'`).
CLASS_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$")
Amount = Annotated[float, Field(ge=0, allow_inf_nan=False)]
# Guarantees are checked against the cluster and written in one step, so two admins raising two
# projects' guarantees at once cannot together promise more than there is (one gateway writes).
_GRANTING = threading.Lock()


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


def check_guarantees(new: Mapping[str, float], old: Mapping[str, float], others: list[Mapping[str, float]],
                     capacity: Mapping[str, float]) -> None:
    """400 if a guarantee that grows takes the sum over projects past the cluster's capacity."""
    for cls, amount in sorted(new.items()):
        total = capacity.get(cls, 0.0)
        if total <= 0 or amount <= old.get(cls, 0.0):
            continue
        promised = sum(g.get(cls, 0.0) for g in others) + amount
        if promised > total + 1e-9:
            raise InvalidRequest(
                f"guaranteed.{cls} = {amount:g} would promise {promised:g} {cls} over all projects, "
                f"{promised - total:g} more than the cluster's {total:g}. Lower it to at most "
                f"{max(0.0, amount - (promised - total)):g}, lower another project's guarantee, or add "
                "capacity; borrow_limit lets a project use idle capacity without a guarantee.",
                param="guaranteed", code="guarantee_exceeds_capacity")


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

    def get(self, ref: str) -> dict:
        """A project's quota; `ref` is its id (the Admin API) or its name (the CLI)."""
        project = Tenancy(self.db).find_project(ref)
        with self.db.session() as s:
            return quota_object(project, s.get(ProjectQuota, project.id))

    def put(self, ref: str, body: QuotaBody, capacity: Mapping[str, float] | None = None) -> dict:
        """Replace a project's quota. With the cluster's `capacity` (class → total), a guarantee
        that would make the projects' guarantees of a class add up to more than the cluster has
        is refused (400, saying by how much) unless it does not grow; a class the cluster does
        not have at all is accepted (a node with it may join: `ray start --resources`)."""
        project = Tenancy(self.db).find_project(ref)
        with _GRANTING, self.db.session() as s:
            row = s.get(ProjectQuota, project.id) or ProjectQuota(project_id=project.id, guaranteed={})
            if capacity is not None:
                others = [r.guaranteed for r in s.scalars(select(ProjectQuota)
                                                          .where(ProjectQuota.project_id != project.id))]
                check_guarantees(body.guaranteed, dict(row.guaranteed or {}), others, capacity)
            row.guaranteed, row.borrow_limit = dict(body.guaranteed), dict(body.borrow_limit)
            row.running_jobs, row.storage_bytes, row.budget = body.running_jobs, body.storage_bytes, body.budget
            row.updated_at = utcnow()
            s.add(row)
            s.flush()
            return quota_object(project, row)

    def every(self) -> list[dict]:
        """Every project's quota object, in the order projects were made."""
        with self.db.session() as s:
            rows = {r.project_id: r for r in s.scalars(select(ProjectQuota))}
            projects = list(s.scalars(select(Project).order_by(Project.created_at, Project.id)))
            return [quota_object(p, rows.get(p.id)) for p in projects]

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


def lending(capacity: Mapping[str, float], quotas: Mapping[str, Quota], running: Iterable[Running]
            ) -> tuple[dict[str, dict[str, dict[str, float]]], list[dict]]:
    """Who holds what of each resource class now, and who lends to whom (the console's Compute
    page). Per project and class: `guaranteed`, `in_use`, `borrowed` (running work above the
    guarantee, preemptible) and `lent` (its idle guarantee that borrowers hold). A borrower is
    said to hold capacity nobody is guaranteed first, then other projects' idle guarantees,
    largest first: an attribution, since capacity itself is not labelled."""
    use: dict = defaultdict(lambda: defaultdict(lambda: dict.fromkeys(("guaranteed", "in_use", "borrowed", "lent"), 0.0)))
    for job in running:
        for cls, n in job.demand.items():
            use[job.project][cls]["in_use"] += n
            use[job.project][cls]["borrowed"] += n if job.borrowed else 0.0
    for project, quota in quotas.items():
        for cls, amount in quota.guaranteed.items():
            use[project][cls]["guaranteed"] = amount
    loans = []
    for cls in sorted({c for per in use.values() for c in per}):
        rows = {p: per[cls] for p, per in use.items() if cls in per}
        idle = {p: max(0.0, u["guaranteed"] - (u["in_use"] - u["borrowed"])) for p, u in rows.items()}
        sources = [[None, max(0.0, capacity.get(cls, 0.0) - sum(u["guaranteed"] for u in rows.values()))]]
        sources += sorted(([p, n] for p, n in idle.items() if n > 0), key=lambda s: (-s[1], s[0]))
        for borrower, u in sorted(rows.items()):
            need = u["borrowed"]
            for source in sources:
                if need <= 0:
                    break
                taken = min(need, source[1])
                if taken <= 0 or source[0] == borrower:
                    continue
                source[1] -= taken
                need -= taken
                if source[0] is not None:
                    rows[source[0]]["lent"] += taken
                loans.append({"resource": cls, "lender": source[0], "borrower": borrower, "amount": taken})
    return {p: dict(per) for p, per in use.items()}, loans


SCHEDULING_EVENTS = ("Waiting in queue:%", "Preempted:%")  # the job runner's words (jobs/runner.py)


def scheduling_events(db: Database, limit: int = 20) -> list[dict]:
    """The newest waiting and preemption events of every project's jobs."""
    with db.session() as s:
        rows = s.execute(select(JobEvent, Job.project_id, Job.kind).join(Job, Job.id == JobEvent.job_id)
                         .where(or_(*(JobEvent.message.like(m) for m in SCHEDULING_EVENTS)))
                         .order_by(JobEvent.created_at.desc(), JobEvent.seq.desc()).limit(limit)).all()
    return [{"job_id": e.job_id, "project_id": project_id, "job_kind": kind,
             "kind": "preempted" if e.message.startswith("Preempted") else "waiting",
             "message": e.message, "created_at": int(e.created_at.timestamp())} for e, project_id, kind in rows]
