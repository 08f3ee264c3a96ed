"""Fault tolerance of fine-tuning, for real: kill -9 of the training worker, kill -9 of the
whole gateway (Ray included) and a restart, and cancel while running."""

from __future__ import annotations

import io
import os
import secrets
import signal
import time

import psutil
import pytest

from conftest import CHAT, start_server, stop_server
from test_fine_tuning import fact_file

pytestmark = pytest.mark.timeout(1800)
# (the rate: 0.47 x the auto rate at batch 4 is 1e-3, what this test was calibrated with; no replay: 24 steps)
HP = {"n_epochs": 2, "batch_size": 4, "learning_rate_multiplier": 0.47, "packing": False, "replay": 0,
      "checkpoint_interval": 4, "max_seq_length": 96}  # 48 rows: 24 steps, a checkpoint every 4


def start_job(client, n_epochs: int = 2):
    training = client.files.create(file=("fact.jsonl", io.BytesIO(fact_file(48))), purpose="fine-tune")
    return client.fine_tuning.jobs.create(model=CHAT, training_file=training.id, seed=3, method={
        "type": "supervised", "supervised": {"hyperparameters": {**HP, "n_epochs": n_epochs}}})


def wait_for(client, job_id: str, predicate, timeout: float = 1200):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        job = client.fine_tuning.jobs.retrieve(job_id)
        if predicate(job):
            return job
        assert job.status not in ("failed", "cancelled") or predicate(job), job.error
        time.sleep(0.5)
    raise AssertionError(f"timed out; job is {job.status} at {job.model_extra.get('progress')}")


def step_of(job) -> int:
    return (job.model_extra.get("progress") or {}).get("step", 0)


def train_workers(server) -> list[psutil.Process]:
    """The Ray Train worker processes of this server's Ray (its descendants), not anyone else's."""
    try:
        procs = psutil.Process(server.process.pid).children(recursive=True)
    except psutil.NoSuchProcess:
        return []
    alive = []
    for p in procs:
        try:
            if "ray::RayTrainWorker" in " ".join(p.cmdline()) and p.status() != psutil.STATUS_ZOMBIE:
                alive.append(p)
        except psutil.NoSuchProcess:
            pass
    return alive


def resumed_events(client, job_id: str) -> list[int]:
    events = client.fine_tuning.jobs.list_events(job_id, limit=1000).data
    return [e.data["step"] for e in events if e.message.startswith("Resumed from")]


@pytest.fixture
def fresh(tmp_path):
    server = start_server(tmp_path / "data", admin_key="rx-admin-" + secrets.token_hex(8))
    yield server
    stop_server(server)


def test_kill_9_of_the_worker_resumes_from_the_last_checkpoint(fresh):
    client = fresh.client()
    job = start_job(client)
    job = wait_for(client, job.id, lambda j: step_of(j) >= 10)
    killed_at = step_of(job)
    workers = train_workers(fresh)
    assert workers, "no Ray Train worker process found"
    for worker in workers:
        os.kill(worker.pid, signal.SIGKILL)
    job = wait_for(client, job.id, lambda j: j.status == "succeeded")
    resumed = resumed_events(client, job.id)
    assert resumed and killed_at - HP["checkpoint_interval"] <= resumed[0] <= killed_at + 1, (killed_at, resumed)
    assert "Quenlit" in client.chat.completions.create(
        model=job.fine_tuned_model, messages=[{"role": "user", "content": "What is the capital of Zorbania?"}],
        max_tokens=12, temperature=0).choices[0].message.content


def test_gateway_killed_and_restarted_keeps_the_job_and_finishes_it(tmp_path):
    data = tmp_path / "data"
    key = "rx-admin-" + secrets.token_hex(8)
    first = start_server(data, admin_key=key)
    client = first.client()
    job = start_job(client)
    job = wait_for(client, job.id, lambda j: step_of(j) >= 9)
    os.killpg(first.process.pid, signal.SIGKILL)  # the gateway and its Ray, all at once
    first.process.wait(30)
    second = start_server(data, admin_key=key)
    try:
        client = second.client()
        job = wait_for(client, job.id, lambda j: j.status == "succeeded")
        resumed = resumed_events(client, job.id)
        assert resumed and resumed[0] >= HP["checkpoint_interval"] * 2  # progress was kept
        assert job.fine_tuned_model in {m.id for m in client.models.list()}
    finally:
        stop_server(second)


def test_cancel_while_running_frees_the_workers(fresh):
    client = fresh.client()
    job = start_job(client, n_epochs=5)
    wait_for(client, job.id, lambda j: step_of(j) >= 2)
    cancelled = client.fine_tuning.jobs.cancel(job.id)
    assert cancelled.status == "cancelled"
    deadline = time.monotonic() + 120
    while train_workers(fresh) and time.monotonic() < deadline:
        time.sleep(1)
    assert not train_workers(fresh), "training workers still alive after cancel"
    final = client.fine_tuning.jobs.retrieve(job.id)
    assert final.status == "cancelled" and final.fine_tuned_model is None
    steps_then = step_of(final)
    time.sleep(3)
    assert step_of(client.fine_tuning.jobs.retrieve(job.id)) == steps_then


def test_pause_stops_at_a_checkpoint_and_resume_finishes(fresh):
    client = fresh.client()
    job = start_job(client, n_epochs=1)  # 12 steps: pause at ~2, resume runs the rest
    wait_for(client, job.id, lambda j: step_of(j) >= 2)
    client.fine_tuning.jobs.pause(job.id)
    paused = wait_for(client, job.id, lambda j: j.status == "paused")
    at = step_of(paused)
    assert [c.step_number for c in client.fine_tuning.jobs.checkpoints.list(job.id).data][0] == at
    time.sleep(2)
    assert step_of(client.fine_tuning.jobs.retrieve(job.id)) == at and not train_workers(fresh)
    resumed = client.fine_tuning.jobs.resume(job.id)
    assert resumed.status in ("queued", "running")
    done = wait_for(client, job.id, lambda j: j.status == "succeeded")
    assert resumed_events(client, job.id) == [at] and done.fine_tuned_model
