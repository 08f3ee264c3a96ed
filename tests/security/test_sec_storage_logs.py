"""The request-log writer against a database made read-only for real (chattr +i on the SQLite
file, its WAL and its directory): a `store: true` row fails loudly (its request gets 503), a
deployment-policy row is counted and spooled to disk, then replayed once writes work again.
In process (no gateway); the server-level half is in test_sec_storage_faults.py."""

from __future__ import annotations

import os
import subprocess
import time
import uuid

import pytest

from rixin.errors import StoreUnavailable
from rixin.flywheel.logs import LOG_FAILURES, LogWriter, Pending
from rixin.store.db import Database
from rixin.store.schema import RequestLog
from rixin.store.tenancy import Tenancy

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="sets chattr +i: needs root")


def row(project_id: str, policy: str = "full") -> RequestLog:
    pending = Pending(id=f"chatcmpl-{uuid.uuid4().hex}", project_id=project_id, deployment_id=None,
                      model_id="m", endpoint="chat.completions", policy=policy, redact_pii=False,
                      request={"messages": [{"role": "user", "content": "hi"}]}, meta={"k": "v"}, user=None)
    return pending.row("completed", {"id": pending.id}, "hi", "hello", 3, 1)


def counted(outcome: str) -> float:
    return LOG_FAILURES.labels(outcome)._value.get()


@pytest.fixture
def store(tmp_path):
    data = tmp_path / "data"
    db = Database(f"sqlite:///{data / 'rixin.db'}")
    db.migrate()
    project = Tenancy(db).ensure_project("logs")
    writer = LogWriter(db, spool_dir=tmp_path / "spool")
    frozen = [data / "rixin.db", data / "rixin.db-wal", data]
    yield db, writer, project.id, frozen, tmp_path / "spool"
    subprocess.run(["chattr", "-i", *[str(p) for p in frozen if p.exists()]], check=False)
    writer.close()
    db.dispose()


def test_durable_row_fails_loudly_and_policy_row_is_spooled_then_replayed(store, monkeypatch):

    db, writer, project_id, frozen, spool = store
    monkeypatch.setattr(writer, "retry_s", 0.2)
    writer.submit(row(project_id), durable=True).result(30)  # baseline: written
    spooled, replayed = counted("spooled"), counted("replayed")

    subprocess.run(["chattr", "+i", *map(str, frozen)], check=True)
    try:
        with pytest.raises(StoreUnavailable):
            writer.submit(row(project_id), durable=True).result(60)
        kept = row(project_id, policy="metadata-only")
        writer.submit(kept)
        writer.flush()
        assert counted("spooled") == spooled + 1
        assert [p.name.split("-", 1)[1] for p in spool.iterdir()] == [f"{kept.id}.json"]
    finally:
        subprocess.run(["chattr", "-i", *map(str, frozen)], check=True)

    deadline = time.monotonic() + 30  # the writer unlinks the file, then counts it: wait for both
    while (list(spool.iterdir()) or counted("replayed") < replayed + 1) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert list(spool.iterdir()) == [] and counted("replayed") == replayed + 1
    with db.session() as s:
        back = s.get(RequestLog, kept.id)
        assert back is not None and back.policy == "metadata-only" and back.meta == {"k": "v"}
        assert back.request is None and back.text is None  # SQL NULLs survive the spool
        assert s.query(RequestLog).count() == 2  # the baseline and the replayed one; the refused one not
