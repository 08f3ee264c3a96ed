"""Uploads (OpenAI's Uploads API): one file sent as parts, one request each, then assembled.

Each part is streamed to its own file under artifacts/uploads/<upload>/ (through an artifact
writer: owned while written, so a killed request leaves nothing a sweep would not remove).
`complete` copies the parts, in the order the client names, into one artifact writer (sha256
and md5 computed while copying, a chunk at a time), checks the size and md5, and registers the
result as an ordinary File. Cancelled and expired uploads lose their parts."""

from __future__ import annotations

import hashlib
import shutil
from collections import Counter
from datetime import datetime, timedelta, timezone

from sqlalchemy import delete, select, update

from rixin.errors import InvalidRequest, NotFound
from rixin.store.artifacts import ArtifactStore, ArtifactWriter
from rixin.store.db import Database
from rixin.store.files import Files, check_filename, check_purpose, check_storage
from rixin.store.schema import File, Upload, UploadPart, utcnow
from rixin.store.tenancy import Caller, new_id

TTL = timedelta(hours=1)  # OpenAI: an upload expires an hour after it was created
MAX_UPLOAD_BYTES = 8 * 2**30  # OpenAI's limit for one upload
MAX_PART_BYTES = 64 * 2**20  # ... and for one part
COPY_CHUNK = 2**20


def aware(value: datetime) -> datetime:
    """SQLite hands back naive datetimes; every time here is UTC."""
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


def check_request(*, filename: str, purpose: str, size: int, mime_type: str) -> tuple[str, str]:
    if not 1 <= size <= MAX_UPLOAD_BYTES:
        raise InvalidRequest(f"Invalid 'bytes': {size}. An upload holds 1 to {MAX_UPLOAD_BYTES} bytes "
                             "(8 GiB); send larger data as several files.", param="bytes", code="invalid_value")
    if not mime_type or len(mime_type) > 255 or "/" not in mime_type:
        raise InvalidRequest(f"Invalid 'mime_type': {mime_type!r}. Give a MIME type such as "
                             "'application/jsonl' or 'text/plain'.", param="mime_type", code="invalid_value")
    name = check_filename(filename)
    if name != filename:
        raise InvalidRequest(f"Invalid 'filename': {filename!r}. Give a file name without directories.",
                             param="filename", code="invalid_value")
    return name, check_purpose(purpose)


class Uploads:
    def __init__(self, db: Database, artifacts: ArtifactStore, files: Files, ttl: timedelta = TTL):
        self.db, self.artifacts, self.files, self.ttl = db, artifacts, files, ttl

    def _dir(self, upload_id: str):
        return self.artifacts.root / "uploads" / upload_id

    def create(self, caller: Caller, *, filename: str, purpose: str, size: int, mime_type: str) -> Upload:
        filename, purpose = check_request(filename=filename, purpose=purpose, size=size, mime_type=mime_type)
        self.expire_due()  # the uploads nobody finished go when new ones come
        now = utcnow()
        row = Upload(id=new_id("upload"), project_id=caller.project_id, filename=filename, purpose=purpose,
                     bytes=size, mime_type=mime_type, status="pending", created_at=now,
                     expires_at=now + self.ttl)
        with self.db.session() as s:
            check_storage(s, caller.project_id, size)  # told now, not after the last part (complete checks again)
            s.add(row)
        return row

    def get(self, caller: Caller, upload_id: str) -> Upload:
        with self.db.session() as s:
            row = s.get(Upload, upload_id)
        if row is None or row.project_id != caller.project_id:
            raise NotFound(f"No such Upload object: {upload_id}", param="upload_id")
        if row.status == "pending" and aware(row.expires_at) <= utcnow():
            self._end(row.id, "expired")
            row.status = "expired"
        return row

    def file_of(self, caller: Caller, upload: Upload) -> File | None:
        return self.files.get(caller, upload.file_id) if upload.file_id else None

    def open(self, caller: Caller, upload_id: str) -> Upload:
        """The caller's upload, still taking parts; else a 400 that says why not."""
        row = self.get(caller, upload_id)
        if row.status != "pending":
            raise InvalidRequest(f"Upload {upload_id} is {row.status}; it takes no more parts and cannot be "
                                 "completed or cancelled. Create a new upload.", param="upload_id",
                                 code="upload_not_pending")
        return row

    def part_writer(self) -> ArtifactWriter:
        return self.artifacts.writer(limit=MAX_PART_BYTES)

    def add_part(self, caller: Caller, upload_id: str, writer: ArtifactWriter) -> UploadPart:
        """Keep a received part: its bytes under the upload's directory, then its row, added
        only while the upload is still pending (the row lock orders it with complete/cancel)."""
        try:
            upload = self.open(caller, upload_id)
        except BaseException:
            writer.abort()
            raise
        part = UploadPart(id=new_id("part"), upload_id=upload.id, created_at=utcnow(), bytes=0, sha256="")
        dest = self._dir(upload.id) / part.id
        part.sha256, part.bytes = writer.place(dest)
        try:
            with self.db.session() as s:
                if not self._lock_pending(s, upload.id):
                    raise InvalidRequest(f"Upload {upload_id} was completed, cancelled or expired while this "
                                         "part was sent; create a new upload.", param="upload_id",
                                         code="upload_not_pending")
                held = sum(s.scalars(select(UploadPart.bytes).where(UploadPart.upload_id == upload.id)))
                # room for one part retried after a lost answer; more is not this upload's data
                if held + part.bytes > upload.bytes + MAX_PART_BYTES:
                    raise InvalidRequest(f"The parts of upload {upload_id} already hold {held} bytes; this part "
                                         f"would exceed the {upload.bytes} bytes announced.", param="data",
                                         code="upload_too_large")
                s.add(part)
        except BaseException:
            dest.unlink(missing_ok=True)
            raise
        return part

    @staticmethod
    def _lock_pending(s, upload_id: str, status: str = "pending") -> bool:
        """Lock the upload's row (PostgreSQL; SQLite's writes are serial) if it is pending,
        moving it to `status`."""
        return bool(s.execute(update(Upload).where(Upload.id == upload_id, Upload.status == "pending")
                              .values(status=status)).rowcount)

    def _parts(self, upload: Upload, part_ids: list[str]) -> list[UploadPart]:
        if not isinstance(part_ids, list) or not part_ids or not all(isinstance(p, str) for p in part_ids):
            raise InvalidRequest("'part_ids' must be a non-empty list of the part ids, in file order.",
                                 param="part_ids", code="invalid_value")
        twice = sorted(p for p, n in Counter(part_ids).items() if n > 1)
        if twice:
            raise InvalidRequest(f"Part ids listed more than once: {', '.join(twice)}. List each part once, "
                                 "in file order.", param="part_ids", code="duplicate_part")
        with self.db.session() as s:
            known = {p.id: p for p in s.scalars(select(UploadPart).where(UploadPart.upload_id == upload.id))}
        unknown = [p for p in part_ids if p not in known]
        if unknown:
            raise InvalidRequest(f"Not parts of upload {upload.id}: {', '.join(unknown)}. Add them with "
                                 "POST /v1/uploads/{upload_id}/parts first.", param="part_ids",
                                 code="unknown_part")
        parts = [known[p] for p in part_ids]
        total = sum(p.bytes for p in parts)
        if total != upload.bytes:
            raise InvalidRequest(f"The listed parts hold {total} bytes, but the upload was created for "
                                 f"{upload.bytes}. List every part, or create the upload with the right "
                                 "'bytes'.", param="part_ids", code="bytes_mismatch")
        return parts

    def complete(self, caller: Caller, upload_id: str, part_ids: list[str], md5: str | None = None) -> Upload:
        upload = self.open(caller, upload_id)
        parts = self._parts(upload, part_ids)
        with self.db.session() as s:  # one completion at a time; parts arriving now are refused
            if not self._lock_pending(s, upload.id, "completing"):
                raise InvalidRequest(f"Upload {upload_id} is being completed or was cancelled.",
                                     param="upload_id", code="upload_not_pending")
        try:
            writer, digest = self._assemble(upload, parts)
            if md5 and digest != md5.strip().lower():
                writer.abort()
                raise InvalidRequest(f"The md5 of the assembled parts is {digest}, not {md5}: a part is "
                                     "missing, corrupted or out of order.", param="md5", code="md5_mismatch")
            row = self.files.add(caller, writer, filename=upload.filename, purpose=upload.purpose)
        except BaseException:
            with self.db.session() as s:  # the client may fix the list and complete again
                s.execute(update(Upload).where(Upload.id == upload.id).values(status="pending"))
            raise
        self._end(upload.id, "completed", file_id=row.id)
        return self.get(caller, upload.id)

    def _assemble(self, upload: Upload, parts: list[UploadPart]) -> tuple[ArtifactWriter, str]:
        """Copy the parts into one artifact writer, a chunk at a time; (writer, md5)."""
        writer, md5 = self.artifacts.writer(), hashlib.md5()
        try:
            for part in parts:
                path = self._dir(upload.id) / part.id
                if not path.is_file() or path.stat().st_size != part.bytes:
                    raise InvalidRequest(f"Part {part.id} of upload {upload.id} was lost; add it again and "
                                         "complete with the new part id.", param="part_ids", code="part_lost")
                with path.open("rb") as f:
                    while chunk := f.read(COPY_CHUNK):
                        md5.update(chunk)
                        writer.write(chunk)
        except BaseException:
            writer.abort()
            raise
        return writer, md5.hexdigest()

    def cancel(self, caller: Caller, upload_id: str) -> Upload:
        upload = self.open(caller, upload_id)
        if not self._end(upload.id, "cancelled"):
            raise InvalidRequest(f"Upload {upload_id} is being completed; it cannot be cancelled.",
                                 param="upload_id", code="upload_not_pending")
        return self.get(caller, upload_id)

    def expire_due(self) -> int:
        """Pending uploads past their expiry become `expired` and lose their parts."""
        now = utcnow()
        with self.db.session() as s:
            due = [u.id for u in s.scalars(select(Upload).where(Upload.status == "pending"))
                   if aware(u.expires_at) <= now]
        return sum(self._end(upload_id, "expired") for upload_id in due)

    def _end(self, upload_id: str, status: str, file_id: str | None = None) -> bool:
        """Move a pending (or, for completed, completing) upload to its final status and
        remove its parts; False if it had already left that state."""
        source = "completing" if status == "completed" else "pending"
        with self.db.session() as s:
            moved = s.execute(update(Upload).where(Upload.id == upload_id, Upload.status == source)
                              .values(status=status, file_id=file_id)).rowcount
            if moved:
                s.execute(delete(UploadPart).where(UploadPart.upload_id == upload_id))
        if moved:
            shutil.rmtree(self._dir(upload_id), ignore_errors=True)
        return bool(moved)
