"""The artifact store: content-addressed files under <data_dir>/artifacts.

Every write goes to a temporary file in the same filesystem, is hashed while written,
fsynced, then renamed into place, so a reader never sees a partial file and a killed
writer leaves only a temporary file that the next start sweeps away.
"""

from __future__ import annotations

import hashlib
import os
import time
import uuid
from pathlib import Path
from typing import BinaryIO

from rixin.errors import PayloadTooLarge


class ArtifactWriter:
    """Write bytes incrementally; `commit()` makes them an artifact, `abort()` drops them."""

    def __init__(self, store: "ArtifactStore", limit: int | None = None):
        self.store, self.limit = store, limit
        self.tmp = store.root / "tmp" / uuid.uuid4().hex
        self.tmp.parent.mkdir(parents=True, exist_ok=True)
        self.file: BinaryIO = self.tmp.open("wb")
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.abort()
            raise PayloadTooLarge(f"File too large: the limit is {self.limit} bytes "
                                  f"({self.limit / 2**20:.0f} MiB). Split the file or raise "
                                  "the server's file size limit.")
        self.hash.update(data)
        self.file.write(data)

    def commit(self) -> tuple[str, int]:
        """(sha256, size) of the stored artifact."""
        self.file.flush()
        os.fsync(self.file.fileno())
        self.file.close()
        digest = self.hash.hexdigest()
        final = self.store.path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.replace(self.tmp, final)  # same content, same name: replacing is harmless
        fsync_path(final.parent)
        return digest, self.size

    def abort(self) -> None:
        if not self.file.closed:
            self.file.close()
        self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> "ArtifactWriter":
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.abort()


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        (self.root / "tmp").mkdir(parents=True, exist_ok=True)

    def path(self, sha256: str) -> Path:
        return self.root / "sha256" / sha256[:2] / sha256

    def writer(self, limit: int | None = None) -> ArtifactWriter:
        return ArtifactWriter(self, limit)

    def put_bytes(self, data: bytes) -> tuple[str, int]:
        with self.writer() as w:
            w.write(data)
            return w.commit()

    def delete(self, sha256: str) -> None:
        self.path(sha256).unlink(missing_ok=True)

    def sweep_tmp(self, older_than_s: float = 3600) -> int:
        """Remove temporary files left by writers that died (called at start-up); recent ones
        may belong to a live writer in another process (the CLI), so they stay."""
        removed, now = 0, time.time()
        for leftover in (self.root / "tmp").iterdir():
            if now - leftover.stat().st_mtime > older_than_s:
                leftover.unlink(missing_ok=True)
                removed += 1
        return removed


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: so that a rename in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old bytes or the new, never a part."""
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
