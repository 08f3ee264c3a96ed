"""The artifact store: content-addressed files under <data_dir>/artifacts.

Every write goes to a temporary file in the same filesystem, is hashed while written,
fsynced, then renamed into place, so a reader never sees a partial file.

A temporary file is owned by the process writing it through an exclusive flock(2) held for
as long as it is open. The kernel drops the lock when its owner dies (kill -9 included), so
a sweep can remove exactly the temporary files nobody owns — at start-up every leftover,
while running any leftover of a dead job worker or CLI — without guessing from ages, and
without touching a live upload of this or another process.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import uuid
from pathlib import Path
from typing import BinaryIO, Callable, Iterable

from rixin.errors import PayloadTooLarge, RixinError, StoreUnavailable
from rixin.store.faults import REFUSED_MESSAGE, storage_fault


def _as_fault(e: OSError) -> RixinError:
    """An OSError of a store write as the 507/503 the client gets."""
    return storage_fault(e) or StoreUnavailable(REFUSED_MESSAGE.format(why=e.strerror or str(e)))


def open_owned(make_path: Callable[[], Path]) -> tuple[Path, BinaryIO]:
    """Create a temporary file and take its ownership lock. A sweep that removed it between
    the create and the lock leaves it unlinked (st_nlink == 0): then try a new one."""
    while True:
        path = make_path()
        f = path.open("wb")
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        if os.fstat(f.fileno()).st_nlink:
            return path, f
        f.close()


def sweep_unowned(paths: Iterable[Path]) -> int:
    """Remove the regular files among `paths` that no live process holds the lock of."""
    removed = 0
    for path in paths:
        try:
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)  # a FIFO must not block
        except OSError:  # gone meanwhile, a link or a directory: not ours to judge
            continue
        try:
            if not os.path.isfile(path):
                continue
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            continue  # a live writer owns it
        else:
            # unlinked while we hold the lock, so a writer racing us sees st_nlink == 0
            path.unlink(missing_ok=True)
            removed += 1
        finally:
            os.close(fd)
    return removed


class ArtifactWriter:
    """Write bytes incrementally; `commit()` makes them an artifact, `abort()` drops them.
    A full disk raises InsufficientStorage (507), a refusing one StoreUnavailable (503),
    and in either case the temporary file is gone."""

    def __init__(self, store: "ArtifactStore", limit: int | None = None):
        self.store, self.limit = store, limit
        self.hash = hashlib.sha256()
        self.size, self.sealed = 0, False
        try:
            store.tmp_dir.mkdir(parents=True, exist_ok=True)
            self.tmp, self.file = open_owned(lambda: store.tmp_dir / uuid.uuid4().hex)
        except OSError as e:
            raise _as_fault(e) from e

    def write(self, data: bytes) -> None:
        self.size += len(data)
        if self.limit is not None and self.size > self.limit:
            self.abort()
            raise PayloadTooLarge(f"File too large: the limit is {self.limit} bytes "
                                  f"({self.limit / 2**20:.0f} MiB). Split the file or raise "
                                  "the server's file size limit.")
        self.hash.update(data)
        try:
            self.file.write(data)
        except OSError as e:
            self.abort()
            raise _as_fault(e) from e

    def seal(self) -> None:
        """Make the written bytes durable in the temporary file (commit does it if not done)."""
        if self.sealed:
            return
        try:
            self.file.flush()  # buffered bytes: a full disk may only show here
            os.fsync(self.file.fileno())
        except OSError as e:
            self.abort()
            raise _as_fault(e) from e
        self.sealed = True

    def commit(self) -> tuple[str, int]:
        """(sha256, size) of the stored artifact (same content, same name: replacing is harmless)."""
        self.seal()
        return self.place(self.store.path(self.hash.hexdigest()))

    def place(self, dest: Path) -> tuple[str, int]:
        """(sha256, size) of the bytes, moved to `dest` (same filesystem) instead of the
        content-addressed tree: for files that belong to one owner, like an upload's parts."""
        self.seal()
        try:
            dest.parent.mkdir(parents=True, exist_ok=True)
            os.replace(self.tmp, dest)
            fsync_path(dest.parent)
        except OSError as e:
            self.abort()
            raise _as_fault(e) from e
        self.file.close()
        return self.hash.hexdigest(), self.size

    def abort(self) -> None:
        self.tmp.unlink(missing_ok=True)  # still holding the lock: no sweep races us
        if not self.file.closed:
            try:
                self.file.close()
            except OSError:  # flushing the buffer into a full disk: the file is gone anyway
                pass

    def __enter__(self) -> "ArtifactWriter":
        return self

    def __exit__(self, exc_type, *_):
        if exc_type is not None:
            self.abort()


class ArtifactStore:
    def __init__(self, root: Path):
        self.root = Path(root)
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    @property
    def tmp_dir(self) -> Path:
        return self.root / "tmp"

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

    def sweep_tmp(self) -> int:
        """Remove every temporary file that no live writer owns (left by a killed one)."""
        if not self.tmp_dir.is_dir():
            return 0
        return sweep_unowned(self.tmp_dir.iterdir())


def fsync_path(path: Path) -> None:
    """fsync a file or a directory (a directory: so that a rename in it is durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def atomic_write(path: Path, data: bytes) -> None:
    """Replace `path` with `data` so that readers see the old bytes or the new, never a part.
    The `<name>.tmp` file is owned (locked) while written, so `sweep_unowned` removes it only
    once its writer is dead."""
    tmp, f = open_owned(lambda: path.with_name(path.name + ".tmp"))
    try:
        with f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.replace(tmp, path)
        fsync_path(path.parent)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        raise _as_fault(e) from e
