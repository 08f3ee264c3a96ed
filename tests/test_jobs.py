"""The job queue: priorities, FIFO within a priority, per-project quotas, orphan requeue."""

from __future__ import annotations

import os
from collections import Counter
from datetime import datetime, timedelta, timezone

import pytest

from rixin.compute import admission
from rixin.compute.policy import Quota, decide
from rixin.jobs.store import JobStore, this_owner
from rixin.store.db import Database
from rixin.store.schema import Job
from rixin.store.tenancy import Tenancy

T0 = datetime(2026, 1, 1, tzinfo=timezone.utc)


def job(jid: str, project: str, minute: int, priority: int = 0) -> Job:
    return Job(id=jid, project_id=project, kind="fine_tune", status="queued", params={"priority": priority},
               created_at=T0 + timedelta(minutes=minute))


def pick(queued: list[Job], running: list[Job], slots: int, per_project: int) -> list[str]:
    """The runner's choice (compute/policy.py over the rows, as jobs/runner.plan makes it)."""
    quotas = {p: Quota(running_jobs=per_project) for p in {j.project_id for j in queued + running}}
    decision = decide(admission.capacity(slots, []), admission.pending(queued),
                      admission.running(running, quotas, {j.id for j in running}), quotas, preemption=False)
    return [s.id for s in decision.start]


def test_priority_then_fifo():
    queued = [job("a", "p", 0), job("b", "p", 1, priority=5), job("c", "q", 2), job("d", "q", 3, priority=5)]
    assert pick(queued, [], slots=2, per_project=4) == ["b", "d"]
    assert pick(queued, [], slots=4, per_project=4) == ["b", "d", "a", "c"]
    # one slot: across projects with equal shares, the higher priority (then the older) goes first
    assert pick([job("a", "p", 0), job("d", "q", 3, priority=5)], [], slots=1, per_project=4) == ["d"]
    assert pick([job("x", "z", 0), job("a", "p", 1)], [], slots=1, per_project=4) == ["x"]


def test_project_quota_leaves_jobs_queued_and_lets_others_through():
    queued = [job("a1", "a", 0), job("a2", "a", 1), job("b1", "b", 2)]
    assert pick(queued, [], slots=3, per_project=1) == ["a1", "b1"]
    assert pick(queued[1:], [job("a1", "a", 0)], slots=3, per_project=1) == ["b1"]
    assert pick(queued, [], slots=1, per_project=5) == ["a1"]


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


def test_shard_skeleton_resumes_a_crashed_job_without_redoing_finished_shards(tmp_path):
    """jobs/shards.py, which clean, label and eval run on: split once, a marker per shard,
    only the shards left run again, the result is made once."""
    from rixin.jobs.shards import finish_once, remove_shards, resume, run_shards, shard_name, shard_path, split_records

    work = tmp_path / "job"
    assert split_records(({"id": i} for i in range(7)), work, 3) == 3
    assert split_records(iter(()), work, 3) == 3  # split.done: the input is not read again
    names = [shard_name(i) for i in range(3)]
    ran, reported = [], []

    def do_shard(name: str) -> int:
        if name == "00001" and not ran:
            raise KeyboardInterrupt("the job's process dies inside shard 1")
        ran.append(name)
        return len(shard_path(work, name).with_suffix(".in.jsonl").read_text().splitlines())

    ran.append("first run")
    run_shards(work, resume(work, names), do_shard, reported.append)  # shard 0, 1, 2 in order
    assert ran == ["first run", "00000", "00001", "00002"] and reported == [1, 2, 3]

    (shard_path(work, "00001").with_suffix(".done")).unlink()  # as if killed before its marker
    shard_path(work, "00002").with_suffix(".done").write_text("")  # an older cleaning job's marker
    ran.clear()
    with pytest.raises(KeyboardInterrupt):
        run_shards(work, resume(work, names), do_shard)
    state = resume(work, names)
    assert state.done == {"00000": 3, "00002": 0} and state.todo == ["00001"]
    ran.append("resumed")
    run_shards(work, state, do_shard, reported.append)
    assert ran == ["resumed", "00001"] and reported[-1] == 3
    log = (work / "processed.log").read_text().split()
    assert log[::2] == ["00000", "00001", "00002", "00001"] and log[1] == str(os.getpid())

    made = []
    assert finish_once(work, lambda: made.append(1) or {"version": 2}) == {"version": 2}
    assert finish_once(work, lambda: made.append(1) or {"version": 3}) == {"version": 2} and made == [1]
    remove_shards(work)
    assert not (work / "shards").exists() and (work / "version.json").exists()
