"""The metadata store: migrations give the expected schema on SQLite and PostgreSQL, and
the tenancy service keeps keys hashed and revocable."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from conftest import POSTGRES_URL, fresh_postgres_database
from rixin.errors import NotFound, Unauthenticated
from rixin.store.db import Database
from rixin.store.tenancy import Tenancy, hash_key

EXPECTED = {
    "projects": {"id", "name", "created_at"},
    "api_keys": {"id", "project_id", "key_hash", "prefix", "name", "is_admin", "read_only", "created_at", "revoked_at"},
    "models": {"id", "project_id", "kind", "engine", "format", "path", "size_bytes", "source", "owned_by",
               "parent_id", "context_length", "meta", "created_at"},
    "files": {"id", "project_id", "filename", "purpose", "bytes", "sha256", "status", "status_details",
              "created_at"},
    "review_items": {"id", "project_id", "job_id", "dataset_id", "source_version_id", "record",
                     "proposed_label", "confidence", "reason", "status", "final_label", "created_at",
                     "reviewed_at"},
    "datasets": {"id", "project_id", "name", "created_at"},
    "dataset_versions": {"id", "dataset_id", "version", "parent_id", "operation", "params", "sha256", "records",
                         "format", "report", "created_at"},
    "jobs": {"id", "project_id", "kind", "status", "params", "progress", "result", "error", "owner", "attempts",
             "created_at", "started_at", "finished_at"},
    "job_events": {"id", "job_id", "seq", "level", "type", "message", "data", "created_at"},
    "job_checkpoints": {"id", "job_id", "step", "path", "metrics", "created_at"},
    "project_quotas": {"project_id", "guaranteed", "borrow_limit", "running_jobs", "storage_bytes", "budget",
                       "updated_at"},
}


def head_revision() -> str:
    from alembic.config import Config
    from alembic.script import ScriptDirectory

    from rixin.store.db import MIGRATIONS

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(cfg).get_current_head()


def test_migrations_are_a_single_ordered_chain():
    names = sorted(p.name for p in (Path(__file__).parents[1] / "src/rixin/store/migrations/versions").glob("0*.py"))
    assert names and head_revision() == names[-1].split("_")[0]


@pytest.fixture(params=["sqlite"] + (["postgres"] if POSTGRES_URL else []))
def db(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'rixin.db'}" if request.param == "sqlite" else fresh_postgres_database()
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def test_migrations_create_the_expected_schema(db):
    inspector = inspect(db.engine)
    tables = set(inspector.get_table_names())
    assert set(EXPECTED) | {"alembic_version"} <= tables
    for table, columns in EXPECTED.items():
        assert {c["name"] for c in inspector.get_columns(table)} == columns, table
    assert {tuple(u["column_names"]) for u in inspector.get_unique_constraints("api_keys")} | {
        tuple(i["column_names"]) for i in inspector.get_indexes("api_keys") if i.get("unique")} >= {("key_hash",)}
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == head_revision()


def test_migrations_match_the_orm_tables(db):
    """Every ORM table exists with exactly the ORM's columns: schema.py and the migrations agree."""
    from rixin.store.schema import Base

    inspector = inspect(db.engine)
    for table in Base.metadata.sorted_tables:
        assert {c["name"] for c in inspector.get_columns(table.name)} == {c.name for c in table.columns}, table.name


def test_migrate_is_idempotent(db):
    db.migrate()
    db.migrate()
    with db.engine.connect() as conn:
        assert conn.execute(text("SELECT count(*) FROM alembic_version")).scalar() == 1


def test_sqlite_uses_wal(tmp_path):
    database = Database(f"sqlite:///{tmp_path / 'w.db'}")
    database.migrate()
    with database.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
    database.dispose()


def test_keys_hashed_authenticated_and_revoked(db):
    tenancy = Tenancy(db)
    new = tenancy.create_key("acme", name="ci")
    caller = tenancy.authenticate(new.key)
    assert caller.project_name == "acme" and not caller.is_admin
    with db.engine.connect() as conn:
        stored = conn.execute(text("SELECT key_hash, prefix FROM api_keys")).all()
    assert stored == [(hash_key(new.key), new.key[:7])]
    tenancy.revoke_key("acme", new.id)
    with pytest.raises(Unauthenticated, match="revoked"):
        tenancy.authenticate(new.key)
    with pytest.raises(Unauthenticated):
        tenancy.authenticate("rx-not-a-key")
    with pytest.raises(Unauthenticated):
        tenancy.authenticate(None)


def test_revoke_needs_the_right_project(db):
    tenancy = Tenancy(db)
    key = tenancy.create_key("one")
    tenancy.ensure_project("two")
    with pytest.raises(NotFound):
        tenancy.revoke_key("two", key.id)


def test_admin_key_bootstrap_is_idempotent(db):
    tenancy = Tenancy(db)
    assert not tenancy.has_admin_key()
    assert tenancy.ensure_admin_key("rx-boot") is True
    assert tenancy.ensure_admin_key("rx-boot") is False
    assert tenancy.authenticate("rx-boot").is_admin and tenancy.has_admin_key()


# --- storage faults and partial files (issue 18, findings 8 and 9) ---------------------------

def test_storage_faults_are_classified():
    import errno
    import sqlite3

    from sqlalchemy.exc import OperationalError

    from rixin.errors import InsufficientStorage, StoreUnavailable
    from rixin.store.faults import storage_fault

    def sqlite_error(message, name):
        e = sqlite3.OperationalError(message)
        e.sqlite_errorname = name
        return OperationalError("INSERT …", {}, e)

    assert isinstance(storage_fault(OSError(errno.ENOSPC, "No space left on device")), InsufficientStorage)
    assert isinstance(storage_fault(OSError(errno.EROFS, "Read-only file system")), StoreUnavailable)
    assert storage_fault(OSError(errno.ENOENT, "No such file")) is None
    assert isinstance(storage_fault(sqlite_error("database or disk is full", "SQLITE_FULL")), InsufficientStorage)
    ro = storage_fault(sqlite_error("attempt to write a readonly database", "SQLITE_READONLY"))
    assert isinstance(ro, StoreUnavailable) and ro.status == 503 and ro.should_retry
    assert isinstance(storage_fault(sqlite_error("disk I/O error", "SQLITE_IOERR_WRITE")), StoreUnavailable)
    assert storage_fault(sqlite_error("no such table: x", "SQLITE_ERROR")) is None
    assert storage_fault(ValueError("x")) is None


def test_sweep_removes_only_files_no_live_writer_owns(tmp_path):
    from rixin.store.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "artifacts")
    live = store.writer()
    live.write(b"in progress")
    (store.tmp_dir / "left-by-a-dead-writer").write_bytes(b"partial")
    (store.tmp_dir / "seconds-old-and-dead").write_bytes(b"partial")
    assert store.sweep_tmp() == 2  # however fresh: ownership decides, not the age
    assert [p.name for p in store.tmp_dir.iterdir()] == [live.tmp.name]
    sha256, size = live.commit()
    assert store.path(sha256).read_bytes() == b"in progress" and size == 11
    assert list(store.tmp_dir.iterdir()) == []


def test_sweep_removes_the_tmp_file_of_a_writer_killed_with_sigkill(tmp_path):
    import signal
    import subprocess
    import sys

    from rixin.store.artifacts import ArtifactStore

    store = ArtifactStore(tmp_path / "artifacts")
    code = ("import sys, time; from pathlib import Path; from rixin.store.artifacts import ArtifactStore\n"
            "w = ArtifactStore(Path(sys.argv[1])).writer(); w.write(b'x' * 4096); w.file.flush()\n"
            "print(w.tmp.name, flush=True); time.sleep(60)")
    child = subprocess.Popen([sys.executable, "-c", code, str(store.root)], stdout=subprocess.PIPE, text=True)
    try:
        name = child.stdout.readline().strip()
        assert store.sweep_tmp() == 0 and (store.tmp_dir / name).exists()  # another process owns it
        child.send_signal(signal.SIGKILL)
        child.wait(10)
        assert store.sweep_tmp() == 1 and not (store.tmp_dir / name).exists()
    finally:
        child.kill()
        child.wait(10)


def test_atomic_write_leaves_no_tmp_and_its_tmp_is_swept_when_orphaned(tmp_path):
    from rixin.store.artifacts import atomic_write, sweep_unowned

    target = tmp_path / "shard-0.done"
    atomic_write(target, b"12")
    assert target.read_bytes() == b"12" and sorted(p.name for p in tmp_path.iterdir()) == ["shard-0.done"]
    (tmp_path / "shard-1.done.tmp").write_bytes(b"half")  # a killed job worker's
    assert sweep_unowned(tmp_path.glob("*.tmp")) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["shard-0.done"]


def test_platform_sweep_removes_orphaned_uploads_and_job_tmp_files_only(tmp_path):
    from rixin.config import Settings
    from rixin.platform import Platform
    from rixin.store.artifacts import atomic_write

    platform = Platform.open(Settings(data_dir=tmp_path / "data"))
    try:
        live = platform.artifacts.writer()
        live.write(b"a live upload")
        (platform.artifacts.tmp_dir / "orphan").write_bytes(b"x" * 1000)
        shard_dir = platform.work_dir / "job-1"
        shard_dir.mkdir(parents=True)
        (shard_dir / "shard-3.out.jsonl.tmp").write_bytes(b"half a shard")
        atomic_write(shard_dir / "shard-2.out.jsonl", b"done\n")
        assert platform.sweep_partial() == 2
        assert [p.name for p in platform.artifacts.tmp_dir.iterdir()] == [live.tmp.name]
        assert sorted(p.name for p in shard_dir.iterdir()) == ["shard-2.out.jsonl"]
        live.abort()
    finally:
        platform.db.dispose()
