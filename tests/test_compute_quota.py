"""Quotas and admission against a real gateway: the admin quota route, and 16 concurrent
fine-tuning job creations (the official client) against a quota of 2 running jobs → exactly 2
run while the others wait in `queued` with the reason in their events."""

from __future__ import annotations

import io
import secrets
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from conftest import CHAT, start_server, stop_server
from test_fine_tuning import fact_file

pytestmark = pytest.mark.timeout(600)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory):
    """16 job slots and 16 running jobs per project by default: only the quota holds jobs back."""
    srv = start_server(tmp_path_factory.mktemp("rixin-quota"),
                       {"RIXIN_JOB_SLOTS": "16", "RIXIN_MAX_RUNNING_JOBS_PER_PROJECT": "16"},
                       admin_key="rx-admin-" + secrets.token_hex(8))
    yield srv
    stop_server(srv)


def test_admin_sets_and_reads_a_projects_quota(gateway):
    gateway.new_key("quota-team")
    with gateway.http() as http:
        url = "/v1/organization/projects/quota-team/quota"
        empty = http.get(url).json()
        assert empty["object"] == "organization.project.quota" and empty["guaranteed"] == {}
        body = {"guaranteed": {"GPU": 2}, "borrow_limit": {"GPU": 6}, "running_jobs": 3,
                "storage_bytes": 2**30, "budget": 50}
        put = http.put(url, json=body)
        assert put.status_code == 200, put.text
        got = http.get(f"/v1/organization/projects/{empty['project_id']}/quota").json()
        assert got["guaranteed"] == {"GPU": 2.0} and got["borrow_limit"] == {"GPU": 6.0}
        assert (got["running_jobs"], got["storage_bytes"], got["budget"]) == (3, 2**30, 50.0)
        bad = http.put(url, json={"guaranteed": {"GPU": -1}})
        assert bad.status_code == 400 and bad.json()["error"]["type"] == "invalid_request_error", bad.text
        assert "guaranteed" in (bad.json()["error"]["param"] or "")
        assert http.get("/v1/organization/projects/nobody/quota").status_code == 404
    with gateway.http(gateway.new_key("quota-team")) as http:
        r = http.put(url, json={"running_jobs": 100})
        assert r.status_code == 403 and r.json()["error"]["code"] == "insufficient_permissions"


def test_sixteen_concurrent_jobs_against_a_quota_of_two_run_two(gateway):
    key = gateway.new_key("racers")
    with gateway.http() as http:
        assert http.put("/v1/organization/projects/racers/quota", json={"running_jobs": 2}).status_code == 200
    client = gateway.client(key)
    training = client.files.create(file=("fact.jsonl", io.BytesIO(fact_file(400))), purpose="fine-tune")

    def create(i: int) -> str:
        return client.fine_tuning.jobs.create(model=CHAT, training_file=training.id, seed=i, method={
            "type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 10, "batch_size": 1, "replay": 0,
                                                                     "validation_split": 0}}}).id

    with ThreadPoolExecutor(16) as pool:
        ids = list(pool.map(create, range(16)))
    try:
        most, deadline = 0, time.monotonic() + 90
        seen_two_at = None
        while time.monotonic() < deadline:
            statuses = [client.fine_tuning.jobs.retrieve(i).status for i in ids]
            running = statuses.count("running")
            most = max(most, running)
            if running == 2 and seen_two_at is None:
                seen_two_at = time.monotonic()
            if seen_two_at is not None and time.monotonic() - seen_two_at > 5:
                break
            time.sleep(0.5)
        assert most == 2, statuses
        waiting = [i for i, st in zip(ids, statuses) if st == "queued"]
        assert len(waiting) >= 12, statuses
        messages = [e.message for e in client.fine_tuning.jobs.list_events(waiting[0], limit=50).data]
        assert any("running_jobs" in m for m in messages), messages
    finally:
        for i in ids:
            client.fine_tuning.jobs.cancel(i) if client.fine_tuning.jobs.retrieve(i).status not in (
                "succeeded", "failed", "cancelled") else None


def test_resources_are_typed_and_the_cluster_lists_accelerators(gateway):
    client = gateway.client(gateway.new_key("res-team"))
    training = client.files.create(file=("fact.jsonl", io.BytesIO(fact_file(16))), purpose="fine-tune")
    with gateway.http(client.api_key) as http:
        r = http.post("/v1/fine_tuning/jobs", json={"model": CHAT, "training_file": training.id,
                                                   "resources": {"accelerator": "GPU", "workers": 0}})
        assert r.status_code == 400 and "workers" in (r.json()["error"]["param"] or ""), r.text
        job = http.post("/v1/fine_tuning/jobs", json={"model": CHAT, "training_file": training.id,
                                                     "resources": {"accelerator": "NPU", "workers": 2}}).json()
        assert job["resources"]["accelerator"] == "NPU" and job["resources"]["workers"] == 2
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # no node has an NPU: it waits, saying so
            events = http.get(f"/v1/fine_tuning/jobs/{job['id']}/events").json()["data"]
            if any("NPU" in e["message"] for e in events):
                break
            time.sleep(0.5)
        assert any("needs 2 NPU; the cluster has 0 in all" in e["message"] for e in events), events
        assert http.get(f"/v1/fine_tuning/jobs/{job['id']}").json()["status"] == "queued"
        http.post(f"/v1/fine_tuning/jobs/{job['id']}/cancel")
    with gateway.http() as http:
        accelerators = http.get("/v1/cluster").json()["accelerators"]
    assert isinstance(accelerators, list)
    assert all(set(a) == {"name", "total", "free"} and 0 <= a["free"] <= a["total"] for a in accelerators)
