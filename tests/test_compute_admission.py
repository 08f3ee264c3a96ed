"""Admission through the compute policy, in process against a real database (both backends):
the atomic claim under a running_jobs quota, quotas stored and read back as the policy's, the
running jobs' borrowed/guaranteed split, and the `resources` field's demand."""

from __future__ import annotations

import threading

import pytest
from pydantic import ValidationError

from conftest import BACKENDS, fresh_postgres_database
from rixin.compute import admission
from rixin.compute.policy import Quota
from rixin.compute.quotas import QuotaBody, Quotas
from rixin.compute.resources import JOB_SLOT, Resources, demand
from rixin.errors import NotFound
from rixin.jobs.store import JobStore
from rixin.store.db import Database
from rixin.store.schema import Job
from rixin.store.tenancy import Tenancy


@pytest.fixture(params=BACKENDS)
def db(request, tmp_path):
    url = f"sqlite:///{tmp_path / 'c.db'}" if request.param == "sqlite" else fresh_postgres_database()
    database = Database(url)
    database.migrate()
    yield database
    database.dispose()


def test_sixteen_racing_claims_against_a_quota_of_two_admit_exactly_two(db):
    jobs, tenancy = JobStore(db), Tenancy(db)
    caller = tenancy.authenticate(tenancy.create_key("racers").key)
    ids = [jobs.create(caller, "clean", {}).id for _ in range(16)]
    barrier, got = threading.Barrier(16), []

    def claim(job_id: str) -> None:
        barrier.wait()
        if jobs.claim(job_id, running_limit=2) is not None:
            got.append(job_id)

    threads = [threading.Thread(target=claim, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(got) == 2
    assert sorted(j.id for j in jobs.running()) == sorted(got)
    assert sum(1 for i in ids if jobs.status(i) == "queued") == 14


def test_quotas_round_trip_and_become_the_policys(db):
    tenancy, quotas = Tenancy(db), Quotas(db)
    project = tenancy.ensure_project("teamq")
    other = tenancy.ensure_project("teamr")
    assert quotas.get("teamq")["guaranteed"] == {} and quotas.get(project.id)["running_jobs"] is None
    body = QuotaBody(guaranteed={"GPU": 4}, borrow_limit={"GPU": 2}, running_jobs=3,
                     storage_bytes=10**9, budget=25.0)
    out = quotas.put(project.id, body)
    assert out["project_id"] == project.id and out["guaranteed"] == {"GPU": 4.0} and out["budget"] == 25.0
    assert quotas.get("teamq") == out
    policy = quotas.for_scheduler(default_running_jobs=1)
    assert policy[project.id] == Quota(guaranteed={"GPU": 4.0}, borrow_limit={"GPU": 2.0}, running_jobs=3)
    assert policy[other.id] == Quota(running_jobs=1)
    assert quotas.running_jobs_limit(other.id, 7) == 7
    with pytest.raises(NotFound):
        quotas.get("no-such-project")


@pytest.mark.parametrize("bad", [{"guaranteed": {"GPU": -1}}, {"guaranteed": {"bad name!": 1}},
                                 {"running_jobs": 0}, {"budget": float("inf")}, {"gpus": 2}])
def test_bad_quotas_are_refused(bad):
    with pytest.raises(ValidationError):
        QuotaBody.model_validate(bad)


def test_resources_give_the_demand():
    assert demand(None) == {JOB_SLOT: 1.0}
    assert demand({"accelerator": "GPU", "accelerators_per_worker": 2, "workers": 4}) == {JOB_SLOT: 1.0, "GPU": 8.0}
    assert demand({"accelerator": "cpu", "workers": 4}, slot=False) == {}
    for bad in ({"accelerator": "CPU"}, {"workers": 0}, {"accelerator": "GPU", "extra": 1},
                {"accelerators_per_worker": "2"}):
        with pytest.raises(ValidationError):
            Resources.model_validate(bad)


def test_running_work_fills_the_guarantee_by_priority_then_age():
    def row(jid, prio, minute):
        from datetime import datetime, timedelta, timezone
        t = datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(minutes=minute)
        return Job(id=jid, project_id="p", kind="fine_tune", status="running", created_at=t, started_at=t,
                   params={"priority": prio, "resources": {"accelerator": "GPU", "accelerators_per_worker": 2}})

    rows = [row("old", 0, 0), row("new", 0, 5), row("urgent", 9, 9)]
    out = {r.id: r for r in admission.running(rows, {"p": Quota(guaranteed={"GPU": 4, JOB_SLOT: 9})}, set())}
    assert (out["urgent"].borrowed, out["old"].borrowed, out["new"].borrowed) == (False, False, True)
    assert out["old"].demand == {"GPU": 2.0}  # not run by this runner: holds no job slot


def test_the_running_jobs_record_gives_the_work_since_its_checkpoint_and_preemptibility():
    """The policy's "least work since checkpoint" comes from the job's progress (step less the
    last checkpoint's step); only a kind with a preempt hook that this runner runs is a victim."""
    def row(jid, kind, progress):
        return Job(id=jid, project_id="p", kind=kind, status="running", params={}, progress=progress)

    rows = [row("ft", "fine_tune", {"step": 11, "checkpoint_step": 8}), row("fresh", "fine_tune", {"step": 3}),
            row("clean", "clean", {"step": 5}), row("elsewhere", "fine_tune", {})]
    out = {r.id: r for r in admission.running(rows, {}, {"ft", "fresh", "clean"}, preemptible={"fine_tune"})}
    assert (out["ft"].work_since_checkpoint, out["fresh"].work_since_checkpoint) == (3.0, 3.0)
    assert (out["ft"].preemptible, out["fresh"].preemptible) == (True, True)
    assert not out["clean"].preemptible and not out["elsewhere"].preemptible  # no hook / another runner's
    assert out["elsewhere"].work_since_checkpoint == 0.0


def test_resources_become_ray_trains_scaling():
    """What a fine-tuning job's workers hold on Ray: the accelerator class its `resources`
    name (Ray places a worker only on a node that advertises it; "GPU" is Ray's use_gpu)."""
    from rixin.train.config import Hyperparameters
    from rixin.train.job import scaling

    hp = Hyperparameters(num_workers=2)
    assert scaling(hp, None) == {"num_workers": 2, "use_gpu": False}
    assert scaling(hp, {"accelerator": "GPU", "workers": 2, "accelerators_per_worker": 4}) == {
        "num_workers": 2, "use_gpu": True, "resources_per_worker": {"CPU": 1.0, "GPU": 4.0}}
    assert scaling(hp, {"accelerator": "accel_x", "cpus_per_worker": 2}) == {
        "num_workers": 1, "use_gpu": False, "resources_per_worker": {"CPU": 2.0, "accel_x": 1.0}}
    assert scaling(hp, {"accelerator": "cpu"})["resources_per_worker"] == {"CPU": 1.0}
