"""Storage faults: which OS and database errors mean "the disk is full" (507) and which mean
"the store refuses writes or cannot be reached" (503), so that every layer — the artifact
writer, database sessions, the request-log writer, the API's last-resort handler — reports
them the same way instead of as a generic 500."""

from __future__ import annotations

import errno

from sqlalchemy.exc import DBAPIError

from rixin.errors import InsufficientStorage, RixinError, StoreUnavailable

FULL_ERRNOS = {errno.ENOSPC, errno.EDQUOT, errno.EFBIG}  # EFBIG: RLIMIT_FSIZE / fs file size cap
REFUSED_ERRNOS = {errno.EROFS, errno.EIO}
# SQLite result codes (sqlite3.Error.sqlite_errorname, primary code before the first "_" suffix)
SQLITE_FULL = {"SQLITE_FULL"}
SQLITE_REFUSED = {"SQLITE_READONLY", "SQLITE_IOERR", "SQLITE_CANTOPEN", "SQLITE_BUSY",
                  "SQLITE_LOCKED", "SQLITE_PERM", "SQLITE_AUTH"}
SQLITE_TRANSIENT = {"SQLITE_BUSY", "SQLITE_LOCKED"}
# PostgreSQL SQLSTATEs: 53100 disk_full; 25006 read_only_sql_transaction; 42501
# insufficient_privilege; class 08 connection exceptions; 53/57P: out of resources, shutdown
PG_FULL = {"53100"}
PG_REFUSED_CLASSES = ("08", "53", "57P")
PG_REFUSED = {"25006", "42501"}
PG_TRANSIENT = {"40001", "40P01", "55P03"}

FULL_MESSAGE = ("The server's storage is full: nothing was kept. An operator must free space "
                "in the data directory (or the database's disk) before this can succeed.")
REFUSED_MESSAGE = ("The server's storage refuses writes right now ({why}): nothing was changed. "
                   "Retry later; GET /health says when it has recovered.")


def _sqlite_code(exc: BaseException) -> str | None:
    name = getattr(exc, "sqlite_errorname", None)
    if not name:
        return None
    return "_".join(name.split("_")[:2])  # SQLITE_IOERR_WRITE -> SQLITE_IOERR


def _pg_state(exc: BaseException) -> str | None:
    return getattr(exc, "sqlstate", None) or getattr(exc, "pgcode", None)


def storage_fault(exc: BaseException) -> RixinError | None:
    """The 503/507 error that `exc` stands for, or None when it is not a storage fault."""
    if isinstance(exc, (StoreUnavailable, InsufficientStorage)):
        return exc
    if isinstance(exc, OSError):
        if exc.errno in FULL_ERRNOS:
            return InsufficientStorage(FULL_MESSAGE)
        if exc.errno in REFUSED_ERRNOS:
            return StoreUnavailable(REFUSED_MESSAGE.format(why=exc.strerror or "I/O error"))
        return None
    if not isinstance(exc, DBAPIError):
        return None
    orig = exc.orig
    why = str(orig).splitlines()[0][:200] if orig is not None else type(exc).__name__
    code, state = _sqlite_code(orig), _pg_state(orig)
    if code in SQLITE_FULL or state in PG_FULL:
        return InsufficientStorage(FULL_MESSAGE)
    if (code in SQLITE_REFUSED or state in PG_REFUSED
            or (state and state.startswith(PG_REFUSED_CLASSES)) or exc.connection_invalidated):
        return StoreUnavailable(REFUSED_MESSAGE.format(why=why))
    if code is None and state is None and type(orig).__name__ == "OperationalError":
        return StoreUnavailable(REFUSED_MESSAGE.format(why=why))  # e.g. connection refused
    return None


def is_transient(exc: BaseException) -> bool:
    """A lock or serialization conflict: the same write may succeed a moment later."""
    cause = exc if isinstance(exc, DBAPIError) else exc.__cause__
    if not isinstance(cause, DBAPIError):
        return False
    return _sqlite_code(cause.orig) in SQLITE_TRANSIENT or _pg_state(cause.orig) in PG_TRANSIENT
