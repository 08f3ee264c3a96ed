"""Files: rows in the metadata store, bytes in the artifact store, both per project."""

from __future__ import annotations

import threading
from pathlib import Path

from sqlalchemy import func, select, tuple_

from rixin.errors import InvalidRequest, NotFound, PayloadTooLarge
from rixin.store.artifacts import ArtifactStore, ArtifactWriter
from rixin.store.db import Database
from rixin.store.schema import DatasetVersion, EvalRun, File, Project, ProjectQuota
from rixin.store.tenancy import Caller, new_id

UPLOAD_PURPOSES = ("fine-tune", "batch", "evals", "user_data", "raw")
SYSTEM_PURPOSES = ("fine-tune-results",)
STORAGE_QUOTA_EXCEEDED = "storage_quota_exceeded"


def storage_use(s, project_id: str) -> tuple[int, int | None]:
    """(bytes the project's files hold, its quota's `storage_bytes` or None for no limit). Each
    file counts its own bytes, also when another file has the same content (stored once)."""
    limit = s.scalar(select(ProjectQuota.storage_bytes).where(ProjectQuota.project_id == project_id))
    used = s.scalar(select(func.coalesce(func.sum(File.bytes), 0)).where(File.project_id == project_id))
    return int(used), limit


def check_storage(s, project_id: str, extra_bytes: int) -> int | None:
    """Raise 413 `storage_quota_exceeded` if `extra_bytes` more would not fit the project's
    storage quota; else the bytes still free after them (None: no quota)."""
    used, limit = storage_use(s, project_id)
    if limit is None:
        return None
    if used + extra_bytes > limit:
        raise storage_exceeded(used, limit, extra_bytes)
    return limit - used - extra_bytes


def storage_exceeded(used: int, limit: int, extra_bytes: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"Storage quota exceeded: the project stores {used} of its {limit} bytes, and {extra_bytes} "
        f"more would be {used + extra_bytes - limit} bytes over. Delete files (DELETE /v1/files/ID) "
        "or ask an admin to raise the quota's storage_bytes.", param="file", code=STORAGE_QUOTA_EXCEEDED)


def check_purpose(purpose: str | None) -> str:
    if purpose not in UPLOAD_PURPOSES:
        raise InvalidRequest(f"Invalid 'purpose': {purpose!r}. Supported values are: "
                             f"{', '.join(repr(p) for p in UPLOAD_PURPOSES)}.", param="purpose",
                             code="invalid_value")
    return purpose


def check_filename(filename: str | None) -> str:
    name = Path(filename or "").name
    if not name or len(name) > 512:
        raise InvalidRequest("The uploaded file needs a file name (at most 512 characters).",
                             param="file", code="invalid_value")
    return name


class Files:
    def __init__(self, db: Database, artifacts: ArtifactStore):
        self.db, self.artifacts = db, artifacts
        # Publishing bytes + writing their row, and deleting a row + its unshared bytes, are
        # serialized so that a cleanup never removes bytes another upload is registering.
        self._publish = threading.Lock()

    def add(self, caller: Caller, writer: ArtifactWriter, *, filename: str, purpose: str) -> File:
        """Commit an uploaded artifact and register it as a file, all or nothing: if the row
        cannot be written (disk full, database refusing writes, over the storage quota), bytes
        that no other file shares are removed again, so neither a row without bytes nor stray
        bytes remain."""
        writer.seal()  # the slow part (fsync), outside the lock
        with self._publish:
            existed = self.artifacts.path(writer.hash.hexdigest()).exists()
            sha256, size = writer.commit()
            try:
                return self.record(caller, filename=filename, purpose=purpose, sha256=sha256, size=size,
                                   check_quota=True)
            except BaseException:
                if not existed:  # bytes of an older file stay: its row points at them
                    self.artifacts.delete(sha256)
                raise

    def record(self, caller: Caller, *, filename: str, purpose: str, sha256: str, size: int,
               status_details: str | None = None, check_quota: bool = False) -> File:
        """Register stored bytes (already an artifact) as a file of the caller's project. With
        `check_quota` (what a client stores: uploads) the row is refused with 413
        `storage_quota_exceeded` when it would take the project over its storage quota; the
        results a job writes are counted but never refused (hours of work are not thrown away)."""
        row = File(id=new_id("file"), project_id=caller.project_id, filename=filename,
                   purpose=purpose, bytes=size, sha256=sha256, status="processed",
                   status_details=status_details)
        with self.db.session() as s:
            if check_quota:
                # PostgreSQL: the project's writers take turns on its row; SQLite: the INSERT
                # below takes the database's one write lock before the sum is read. Either way
                # the sum includes every committed file and this one: no over-admission.
                s.execute(select(Project.id).where(Project.id == caller.project_id).with_for_update())
            s.add(row)
            if check_quota:
                s.flush()
                used, limit = storage_use(s, caller.project_id)
                if limit is not None and used > limit:
                    raise storage_exceeded(used - size, limit, size)
        return row

    def get(self, caller: Caller, file_id: str) -> File:
        with self.db.session() as s:
            row = s.get(File, file_id)
        if row is None or row.project_id != caller.project_id:
            raise NotFound(f"No such File object: {file_id}", param="file_id")
        return row

    def path(self, row: File) -> Path:
        return self.artifacts.path(row.sha256)

    def list(self, caller: Caller, *, purpose: str | None = None, limit: int = 10000,
             after: str | None = None, order: str = "desc") -> tuple[list[File], bool]:
        """Files of the caller's project, newest first by default; (page, has_more)."""
        with self.db.session() as s:
            q = select(File).where(File.project_id == caller.project_id)
            if purpose:
                q = q.where(File.purpose == purpose)
            newest_first = order == "desc"
            if after:
                anchor = s.get(File, after)
                if anchor is None or anchor.project_id != caller.project_id:
                    raise NotFound(f"No such File object: {after}", param="after")
                key, mark = tuple_(File.created_at, File.id), tuple_(anchor.created_at, anchor.id)
                q = q.where(key < mark if newest_first else key > mark)
            keys = (File.created_at.desc(), File.id.desc()) if newest_first else (File.created_at, File.id)
            rows = list(s.scalars(q.order_by(*keys).limit(limit + 1)))
        return rows[:limit], len(rows) > limit

    def delete(self, caller: Caller, file_id: str) -> File:
        row = self.get(caller, file_id)
        with self._publish:
            with self.db.session() as s:
                s.delete(s.get(File, row.id))
                s.flush()
                still_used = _references(s, row.sha256)
            if not still_used:  # content-addressed: other files, versions, results may share these bytes
                self.artifacts.delete(row.sha256)
        return row


def _references(s, sha256: str) -> int:
    """Rows that point at the artifact `sha256` (files, dataset versions, eval results)."""
    return sum(s.scalar(select(func.count()).select_from(table).where(column == sha256))
               for table, column in ((File, File.sha256), (DatasetVersion, DatasetVersion.sha256),
                                     (EvalRun, EvalRun.results_sha256)))
