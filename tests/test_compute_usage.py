"""Metering (issue 12 item 5): the usage recorded for a project equals, to the token, the sum of
the `usage` fields its clients were answered with, by key and model, also after the gateway
restarts; read back through OpenAI's Admin API usage and costs shapes."""

from __future__ import annotations

import secrets
import signal
import time
from collections import Counter

import pytest

from conftest import CHAT, EMBED, start_server, stop_server

MESSAGES = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def restartable(tmp_path_factory):
    """A server of its own: the test stops and starts it on the same data."""
    data = tmp_path_factory.mktemp("rixin-usage")
    admin = "rx-admin-" + secrets.token_hex(8)
    srv = start_server(data, admin_key=admin)
    yield srv
    stop_server(srv)


def make_requests(client) -> Counter:
    """Chat (plain, n=2, streamed), completions and embeddings; what the client was told."""
    told: Counter = Counter()

    def add(kind, model, prompt, completion=0):
        told[(kind, model, "input")] += prompt
        told[(kind, model, "output")] += completion
        told[(kind, model, "requests")] += 1

    r = client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=4)
    add("completions", CHAT, r.usage.prompt_tokens, r.usage.completion_tokens)
    r = client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=3, n=2)
    add("completions", CHAT, r.usage.prompt_tokens, r.usage.completion_tokens)
    chunks = list(client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=5, stream=True,
                                                 stream_options={"include_usage": True}))
    add("completions", CHAT, chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens)
    r = client.completions.create(model=CHAT, prompt="Once upon a time", max_tokens=4)
    add("completions", CHAT, r.usage.prompt_tokens, r.usage.completion_tokens)
    r = client.embeddings.create(model=EMBED, input=["one", "two words"])
    add("embeddings", EMBED, r.usage.prompt_tokens)
    return told


def recorded(server, start: int, pid: str, key_id: str | None = None) -> Counter:
    """The same counts from GET /v1/organization/usage/*, grouped by model and key."""
    got: Counter = Counter()
    with server.http() as http:
        for kind in ("completions", "embeddings"):
            r = http.get(f"/v1/organization/usage/{kind}",
                         params={"start_time": start, "bucket_width": "1m", "limit": 1440,
                                 "group_by": ["model", "api_key_id", "project_id"], "project_ids": [pid]})
            assert r.status_code == 200, r.text
            page = r.json()
            assert page["object"] == "page" and page["has_more"] is False
            for bucket in page["data"]:
                assert bucket["object"] == "bucket" and bucket["end_time"] - bucket["start_time"] == 60
                for result in bucket["results"]:
                    assert result["object"] == f"organization.usage.{kind}.result"
                    assert result["project_id"] == pid
                    if key_id is not None and result["api_key_id"] != key_id:
                        continue
                    got[(kind, result["model"], "input")] += result["input_tokens"]
                    got[(kind, result["model"], "output")] += result.get("output_tokens", 0)
                    got[(kind, result["model"], "requests")] += result["num_model_requests"]
    return got


def test_metering_equals_what_clients_were_told_across_a_restart(restartable):
    start = int(time.time()) - 60
    with restartable.http() as http:
        pid = http.post("/v1/organization/projects", json={"name": "metered"}).json()["id"]
        keys = [http.post(f"/v1/organization/projects/{pid}/api_keys", json={}).json() for _ in range(2)]
    told_a = make_requests(restartable.client(keys[0]["value"]))
    told_b = make_requests(restartable.client(keys[1]["value"]))
    assert told_a[("completions", CHAT, "output")] > 0 and told_a[("embeddings", EMBED, "input")] > 0
    assert recorded(restartable, start, pid, keys[0]["id"]) == told_a
    assert recorded(restartable, start, pid, keys[1]["id"]) == told_b

    assert stop_server(restartable, signal.SIGTERM) == 0
    again = start_server(restartable.data_dir, admin_key=restartable.admin_key)
    restartable.process, restartable.url = again.process, again.url
    assert recorded(restartable, start, pid) == told_a + told_b  # nothing lost, nothing twice
    told_c = make_requests(restartable.client(keys[0]["value"]))
    assert recorded(restartable, start, pid) == told_a + told_b + told_c


def test_costs_follow_the_admin_set_prices(restartable):
    start = int(time.time()) - 60
    with restartable.http() as http:
        pid = http.post("/v1/organization/projects", json={"name": "priced"}).json()["id"]
        key = http.post(f"/v1/organization/projects/{pid}/api_keys", json={}).json()["value"]
        http.post(f"/v1/organization/prices/{CHAT}", json={"input_per_1m": 2.0, "output_per_1m": 8.0})
        http.post(f"/v1/organization/prices/{EMBED}", json={"input_per_1m": 0.5})
    told = make_requests(restartable.client(key))
    expected = (told[("completions", CHAT, "input")] * 2.0 + told[("completions", CHAT, "output")] * 8.0
                + told[("embeddings", EMBED, "input")] * 0.5) / 1e6
    with restartable.http() as http:
        r = http.get("/v1/organization/costs", params={"start_time": start, "group_by": ["project_id", "line_item"],
                                                       "project_ids": [pid]})
        assert r.status_code == 200, r.text
        results = [res for bucket in r.json()["data"] for res in bucket["results"]]
        assert {res["line_item"] for res in results} == {CHAT, EMBED}
        assert all(res["object"] == "organization.costs.result" and res["amount"]["currency"] == "usd"
                   for res in results)
        assert sum(res["amount"]["value"] for res in results) == pytest.approx(expected, rel=1e-9)
        bad = http.get("/v1/organization/usage/completions", params={"start_time": start, "bucket_width": "2h"})
        assert bad.status_code == 400 and bad.json()["error"]["param"] == "bucket_width"
