"""The review queue: items a labeling job was not confident about, waiting for a person.

    pending ──accept──▶ accepted   (the proposed label stands)
            ──correct─▶ corrected  (a label the person gives, checked against the job's task)
            ──reject──▶ rejected   (left out of the training data)

An item is reviewed once; a second verdict is a 409. `commit(dataset_id)` makes a new dataset
version (operation "review"): the records of the dataset's newest label version plus every
accepted and corrected item of the job that made it, with meta.reviewed = true. A commit is a
full snapshot, so committing again after more reviews never counts an item twice.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Any

from sqlalchemy import and_, or_, select, update

from rixin.data.datasets import Datasets
from rixin.data.records import iter_jsonl, write_jsonl
from rixin.errors import Conflict, InvalidRequest, NotFound
from rixin.jobs.store import JobStore
from rixin.label.spec import LabelTask, parse_task
from rixin.store.artifacts import ArtifactStore
from rixin.store.db import Database
from rixin.store.schema import DatasetVersion, Job, ReviewItem, utcnow
from rixin.store.tenancy import Caller

STATUSES = ("pending", "accepted", "corrected", "rejected")
KEPT = ("accepted", "corrected")


def review_item_id(job_id: str, index: int) -> str:
    """Deterministic per (job, item position): a resumed job inserts nothing twice."""
    return "rev-" + hashlib.sha256(f"{job_id}:{index}".encode()).hexdigest()[:16]


def labeled_record(record: dict, output_field: str, label: Any, confidence: float, **meta) -> dict:
    """`record` with its label in `output_field` and the confidence (and `meta`) in meta."""
    return {**record, output_field: label,
            "meta": {**(record.get("meta") or {}), "label_confidence": confidence, **meta}}


class ReviewQueue:
    def __init__(self, db: Database, datasets: Datasets, jobs: JobStore, artifacts: ArtifactStore):
        self.db, self.datasets, self.jobs, self.artifacts = db, datasets, jobs, artifacts

    # ------------------------------------------------------------------ filled by the job

    def add(self, job: Job, source: DatasetVersion, items: list[dict]) -> int:
        """Insert items {index, record, label, confidence, reason} as pending (those already
        there from an interrupted run are skipped); returns how many were new."""
        with self.db.session() as s:
            existing = set(s.scalars(select(ReviewItem.id).where(ReviewItem.job_id == job.id)))
            new = 0
            for item in items:
                rid = review_item_id(job.id, item["index"])
                if rid in existing:
                    continue
                s.add(ReviewItem(id=rid, project_id=job.project_id, job_id=job.id,
                                 dataset_id=source.dataset_id, source_version_id=source.id,
                                 record=item["record"], proposed_label=item["label"],
                                 confidence=item["confidence"], reason=item["reason"], status="pending"))
                new += 1
        return new

    # ------------------------------------------------------------------ reading

    def get(self, caller: Caller, item_id: str) -> ReviewItem:
        with self.db.session() as s:
            item = s.get(ReviewItem, item_id)
        if item is None or item.project_id != caller.project_id:
            raise NotFound(f"No such review item: {item_id}", param="review_item_id")
        return item

    def list(self, caller: Caller, *, dataset_id: str | None = None, job_id: str | None = None,
             status: str | None = None, limit: int = 20, after: str | None = None
             ) -> tuple[list[ReviewItem], bool]:
        """A page of the caller's items, oldest first; (items, has_more)."""
        if status is not None and status not in STATUSES:
            raise InvalidRequest(f"Invalid status {status!r}: use one of {', '.join(STATUSES)}.", param="status")
        q = select(ReviewItem).where(ReviewItem.project_id == caller.project_id)
        if dataset_id is not None:
            self.datasets.get(caller, dataset_id)
            q = q.where(ReviewItem.dataset_id == dataset_id)
        if job_id is not None:
            self.jobs.get(caller, job_id)
            q = q.where(ReviewItem.job_id == job_id)
        if status is not None:
            q = q.where(ReviewItem.status == status)
        if after is not None:
            try:
                cursor = self.get(caller, after)
            except NotFound as e:
                raise NotFound(f"No such review item to page after: {after}", param="after") from e
            q = q.where(or_(ReviewItem.created_at > cursor.created_at,
                            and_(ReviewItem.created_at == cursor.created_at, ReviewItem.id > cursor.id)))
        with self.db.session() as s:
            rows = list(s.scalars(q.order_by(ReviewItem.created_at, ReviewItem.id).limit(limit + 1)))
        return rows[:limit], len(rows) > limit

    def task_of(self, item: ReviewItem) -> LabelTask:
        return parse_task(self.jobs.get(None, item.job_id).params["task"])

    # ------------------------------------------------------------------ verdicts

    def accept(self, caller: Caller, item_id: str) -> ReviewItem:
        item = self.get(caller, item_id)
        if item.proposed_label is None and item.status == "pending":
            raise InvalidRequest(f"Review item {item_id} has no proposed label (the labeler said "
                                 f"'{item.reason}'); correct it with a label instead.", param="review_item_id")
        return self._decide(item, "accepted", item.proposed_label)

    def correct(self, caller: Caller, item_id: str, label: Any) -> ReviewItem:
        item = self.get(caller, item_id)
        label = self.task_of(item).check_label(label, param="label")
        return self._decide(item, "corrected", label)

    def reject(self, caller: Caller, item_id: str) -> ReviewItem:
        return self._decide(self.get(caller, item_id), "rejected", None)

    def _decide(self, item: ReviewItem, status: str, final: Any) -> ReviewItem:
        """Set the verdict if the item is still pending (one conditional UPDATE: two reviewers
        racing cannot both win)."""
        with self.db.session() as s:
            changed = s.execute(update(ReviewItem)
                                .where(ReviewItem.id == item.id, ReviewItem.status == "pending")
                                .values(status=status, final_label=final, reviewed_at=utcnow())).rowcount
            current = s.get(ReviewItem, item.id)
        if not changed:
            raise Conflict(f"Review item {item.id} was already reviewed ({current.status}); an item is "
                           "reviewed once.", param="review_item_id")
        return current

    # ------------------------------------------------------------------ commit

    def commit(self, caller: Caller, dataset_id: str) -> DatasetVersion:
        """A new version: the newest label version's records + accepted and corrected items."""
        labeled = [v for v in self.datasets.versions(caller, dataset_id) if v.operation == "label"]
        if not labeled:
            raise InvalidRequest(f"Dataset {dataset_id} has no label version yet; run a labeling job "
                                 "first.", param="dataset_id")
        base = labeled[-1]
        job_id = base.params["job_id"]
        task = parse_task(self.jobs.get(None, job_id).params["task"])
        with self.db.session() as s:
            items = list(s.scalars(select(ReviewItem).where(ReviewItem.job_id == job_id)
                                   .order_by(ReviewItem.created_at, ReviewItem.id)))
        statuses = Counter(i.status for i in items)
        kept = [i for i in items if i.status in KEPT]
        if not kept:
            raise InvalidRequest(f"Nothing to commit: no accepted or corrected items for the label "
                                 f"version {base.version} ({dict(statuses)}).", param="dataset_id",
                                 code="nothing_to_commit")

        def records():
            yield from iter_jsonl(self.artifacts.path(base.sha256))
            for i in kept:
                yield labeled_record(i.record, task.output_field, i.final_label, i.confidence,
                                     reviewed=True, review_status=i.status)

        with self.artifacts.writer() as sink:
            count = write_jsonl(records(), sink)
            sha256, _ = sink.commit()
        report = {"records_from_label_version": base.records, "accepted": statuses["accepted"],
                  "corrected": statuses["corrected"], "rejected": statuses["rejected"],
                  "pending": statuses["pending"]}
        return self.datasets.add_version(dataset_id, base, "review",
                                         {"job_id": job_id, "label_version": base.version}, sha256,
                                         count, base.format, report)
