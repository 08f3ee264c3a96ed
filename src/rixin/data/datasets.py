"""Datasets: named chains of immutable versions, each a JSONL artifact of records."""

from __future__ import annotations

import itertools
import re
from collections import Counter

from sqlalchemy import func, select

from rixin.data.formats import detect_format
from rixin.data.records import iter_jsonl, read_file, write_jsonl
from rixin.errors import InvalidRequest, NotFound
from rixin.store.artifacts import ArtifactStore
from rixin.store.db import Database
from rixin.store.files import Files
from rixin.store.schema import Dataset, DatasetVersion
from rixin.store.tenancy import Caller, new_id

DATASET_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
TEXT_SPLITS = ("paragraph", "line", "file")


class Datasets:
    def __init__(self, db: Database, artifacts: ArtifactStore, files: Files):
        self.db, self.artifacts, self.files = db, artifacts, files

    def create(self, caller: Caller, name: str, file_ids: list[str], *, text_split: str = "paragraph"
               ) -> tuple[Dataset, DatasetVersion]:
        """A dataset whose version 1 holds the records of `file_ids`, in order."""
        if not DATASET_NAME.match(name or ""):
            raise InvalidRequest(f"Invalid dataset name {name!r}: 1-128 letters, digits, '.', '_', '-'.",
                                 param="name")
        if not file_ids:
            raise InvalidRequest("A dataset needs at least one file id in 'files'.", param="files")
        if text_split not in TEXT_SPLITS:
            raise InvalidRequest(f"Invalid 'text_split' {text_split!r}: use one of {', '.join(TEXT_SPLITS)}.",
                                 param="text_split")
        rows = [self.files.get(caller, fid) for fid in file_ids]
        formats: Counter = Counter()

        def records():
            for row in rows:
                for record in read_file(self.files.path(row), row.filename, row.id, text_split=text_split):
                    formats[detect_format(record)] += 1
                    yield record

        with self.artifacts.writer() as sink:
            count = write_jsonl(records(), sink)
            sha256, _ = sink.commit()
        if count == 0:
            raise InvalidRequest("The files hold no records.", param="files")
        dataset = Dataset(id=new_id("ds"), project_id=caller.project_id, name=name)
        version = self.add_version(dataset.id, None, "create",
                                   {"files": file_ids, "text_split": text_split}, sha256, count,
                                   _format_of(formats), {"records_per_format": dict(formats)},
                                   new_dataset=dataset)
        return dataset, version

    def add_version(self, dataset_id: str, parent: DatasetVersion | None, operation: str, params: dict,
                    sha256: str, records: int, fmt: str, report: dict, *,
                    new_dataset: Dataset | None = None) -> DatasetVersion:
        """Add the next version; with `new_dataset`, the dataset row too, in the same
        transaction (a failed write never leaves a dataset without its version 1)."""
        with self.db.session() as s:
            if new_dataset is not None:
                s.add(new_dataset)
                s.flush()
            number = (s.scalar(select(func.max(DatasetVersion.version))
                               .where(DatasetVersion.dataset_id == dataset_id)) or 0) + 1
            version = DatasetVersion(id=new_id("dsv"), dataset_id=dataset_id, version=number,
                                     parent_id=parent.id if parent else None, operation=operation,
                                     params=params, sha256=sha256, records=records, format=fmt,
                                     report=report)
            s.add(version)
        return version

    def get(self, caller: Caller, dataset_id: str) -> Dataset:
        with self.db.session() as s:
            row = s.get(Dataset, dataset_id)
        if row is None or row.project_id != caller.project_id:
            raise NotFound(f"No such dataset: {dataset_id}", param="dataset_id")
        return row

    def list(self, caller: Caller) -> list[Dataset]:
        with self.db.session() as s:
            q = select(Dataset).where(Dataset.project_id == caller.project_id).order_by(Dataset.created_at)
            return list(s.scalars(q))

    def versions(self, caller: Caller, dataset_id: str) -> list[DatasetVersion]:
        self.get(caller, dataset_id)
        with self.db.session() as s:
            q = (select(DatasetVersion).where(DatasetVersion.dataset_id == dataset_id)
                 .order_by(DatasetVersion.version))
            return list(s.scalars(q))

    def version(self, caller: Caller, dataset_id: str, number: int | None = None) -> DatasetVersion:
        """Version `number`, or the newest one."""
        versions = self.versions(caller, dataset_id)
        if number is None:
            return versions[-1]
        for v in versions:
            if v.version == number:
                return v
        raise NotFound(f"Dataset {dataset_id} has no version {number} (it has 1-{len(versions)}).",
                       param="version")

    def records(self, version: DatasetVersion, offset: int = 0, limit: int = 20) -> list[dict]:
        path = self.artifacts.path(version.sha256)
        return list(itertools.islice(iter_jsonl(path), offset, offset + limit))


def _format_of(formats: Counter) -> str:
    return next(iter(formats)) if len(formats) == 1 else "mixed"
