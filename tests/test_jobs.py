"""The job queue: priorities, FIFO within a priority, per-project quotas, orphan requeue."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from rixin.jobs.runner import pick
from rixin.jobs.store import JobStore, this_owner
from rixin.store.db import Database
from rixin.store.schema import Job
from rixin.store.tenancy import Tenancy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def job(jid: str, project: str, minute: int, priority: int = 0) -> Job:
    return Job(id=jid, project_id=project, kind="fine_tune", status="queued", params={"priority": priority},
               created_at=T0 + timedelta(minutes=minute))


def test_priority_then_fifo():
    queued = [job("a", "p", 0), job("b", "p", 1, priority=5), job("c", "q", 2), job("d", "q", 3, priority=5)]
    assert [j.id for j in pick(queued, Counter(), slots=4, per_project=4)] == ["b", "d", "a", "c"]


def test_project_quota_leaves_jobs_queued_and_lets_others_through():
    queued = [job("a1", "a", 0), job("a2", "a", 1), job("b1", "b", 2)]
    assert [j.id for j in pick(queued, Counter(), slots=3, per_project=1)] == ["a1", "b1"]
    assert [j.id for j in pick(queued, Counter({"a": 1}), slots=3, per_project=1)] == ["b1"]
    assert [j.id for j in pick(queued, Counter(), slots=1, per_project=5)] == ["a1"]


@pytest.fixture
def store(tmp_path):
    db = Database(f"sqlite:///{tmp_path / 'j.db'}")
    db.migrate()
    yield JobStore(db), Tenancy(db)
    db.dispose()


def test_claim_is_exclusive_and_orphans_are_requeued(store):
    jobs, tenancy = store
    caller = tenancy.authenticate(tenancy.create_key("p").key)
    created = jobs.create(caller, "clean", {})
    assert jobs.claim(created.id).status == "running"
    assert jobs.claim(created.id) is None  # a second runner does not get it
    assert jobs.running_per_project() == Counter({caller.project_id: 1})
    assert jobs.requeue_orphans() == []  # its owner (this process) is alive
    with jobs.db.session() as s:
        s.get(Job, created.id).owner = this_owner().rsplit(":", 1)[0] + ":999999999"  # a dead pid
    assert jobs.requeue_orphans() == [created.id]
    assert jobs.get(None, created.id).status == "queued" and os.getpid()
