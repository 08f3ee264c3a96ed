"""Deployments: stable names over models, CRUD and bad input, name collisions, switches that are
recorded, and a rollback that is atomic while requests hammer the name."""

from __future__ import annotations

import threading
import time

import openai
import pytest
from sqlalchemy import create_engine, text

from conftest import CHAT, EMBED

pytestmark = pytest.mark.timeout(600)


def db_rows(server, sql: str, **params) -> list[tuple]:
    url = server.env.get("RIXIN_DATABASE_URL") or f"sqlite:///{server.data_dir / 'rixin.db'}"
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return [tuple(r) for r in conn.execute(text(sql), params)]
    finally:
        engine.dispose()


@pytest.fixture(scope="module")
def keys(server):
    return {"a": server.new_key(f"dep-a-{server.backend}"), "b": server.new_key(f"dep-b-{server.backend}")}


@pytest.fixture(scope="module")
def second_model(server, keys, tmp_path_factory):
    """A second chat model visible to project a: the bundled GGUF under another id."""
    row = db_rows(server, "SELECT path FROM models WHERE id = :id", id=CHAT)[0]
    model_id = f"smol-copy-{server.backend}"
    server.offline("models", "add", row[0], "--id", model_id, "--project", f"dep-a-{server.backend}")
    return model_id


def test_create_get_list_update_delete(server, keys):
    with server.http(keys["a"]) as http:
        r = http.post("/v1/deployments", json={"name": "crud-bot", "model": CHAT})
        assert r.status_code == 200, r.text
        dep = r.json()
        assert dep["name"] == "crud-bot" and dep["model"] == CHAT and dep["logging"] == "full"
        assert dep["version"] == 1 and dep["redact_pii"] is False
        assert http.get("/v1/deployments/crud-bot").json()["id"] == dep["id"]
        assert [d["name"] for d in http.get("/v1/deployments").json()["data"]] == ["crud-bot"]
        r = http.post("/v1/deployments/crud-bot", json={"logging": "metadata-only", "redact_pii": True,
                                                        "flywheel": {"margin": 0.1, "every": "1d"}})
        assert r.status_code == 200, r.text
        updated = r.json()
        assert updated["logging"] == "metadata-only" and updated["redact_pii"] is True
        assert updated["flywheel"]["margin"] == 0.1 and updated["flywheel"]["every"] == "1d"
        assert updated["version"] == 1  # no target switch, no version bump
        assert http.delete("/v1/deployments/crud-bot").json()["deleted"] is True
        assert http.get("/v1/deployments/crud-bot").status_code == 404
    with server.http(keys["b"]) as http:  # another project sees nothing
        assert http.get("/v1/deployments").json()["data"] == []


@pytest.mark.parametrize("body, param, status", [
    ({"name": "bad name!", "model": CHAT}, "name", 400),
    ({"name": "x", "model": "no-such-model"}, "model", 404),
    ({"name": "x", "model": EMBED}, "model", 400),
    ({"name": "x", "model": CHAT, "logging": "sometimes"}, "logging", 400),
    ({"name": "x", "model": CHAT, "flywheel": {"margin": "big"}}, "flywheel.margin", 400),
    ({"name": "x", "model": CHAT, "flywheel": {"nope": 1}}, "flywheel.nope", 400),
    ({"name": "x", "model": CHAT, "flywheel": {"every": "daily"}}, "flywheel.every", 400),
    ({"name": "x", "model": CHAT, "colour": "red"}, "colour", 400),
    ({"model": CHAT}, "name", 400),
    ({"name": CHAT, "model": CHAT}, "name", 400),  # collides with a model id
])
def test_bad_input_is_a_clear_4xx(server, keys, body, param, status):
    with server.http(keys["a"]) as http:
        r = http.post("/v1/deployments", json=body)
    assert r.status_code == status, r.text
    error = r.json()["error"]
    assert error["param"] == param and error["message"]


def test_duplicate_name_and_unknown_deployment(server, keys):
    with server.http(keys["a"]) as http:
        assert http.post("/v1/deployments", json={"name": "dup-bot", "model": CHAT}).status_code == 200
        r = http.post("/v1/deployments", json={"name": "dup-bot", "model": CHAT})
        assert r.status_code == 409 and r.json()["error"]["param"] == "name"
        assert http.post("/v1/deployments/dup-bot/rollback").status_code == 400  # never switched
        for path in ("/v1/deployments/ghost", "/v1/deployments/ghost/changes"):
            assert http.get(path).status_code == 404
        assert http.post("/v1/deployments/ghost/rollback").status_code == 404
    with server.http(keys["b"]) as http:  # b can neither see nor use a's deployment
        assert http.get("/v1/deployments/dup-bot").status_code == 404
        assert http.delete("/v1/deployments/dup-bot").status_code == 404
        r = http.post("/v1/chat/completions", json={"model": "dup-bot", "messages": [
            {"role": "user", "content": "hi"}], "max_tokens": 2})
        assert r.status_code == 404 and r.json()["error"]["code"] == "model_not_found"


def test_name_is_usable_as_model(server, keys):
    client = server.client(keys["a"])
    client.post("/deployments", body={"name": "model-bot", "model": CHAT}, cast_to=object)
    chat = client.chat.completions.create(model="model-bot", messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=4, temperature=0)
    assert chat.model == "model-bot" and chat.choices[0].message.content
    base = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "Hi"}],
                                          max_tokens=4, temperature=0)
    assert chat.choices[0].message.content == base.choices[0].message.content
    done = client.completions.create(model="model-bot", prompt="Once upon a time", max_tokens=4)
    assert done.model == "model-bot" and done.choices[0].text
    stream = client.chat.completions.create(model="model-bot", messages=[{"role": "user", "content": "Hi"}],
                                            max_tokens=4, stream=True)
    assert {c.model for c in stream} == {"model-bot"}


def test_rollback_is_atomic_under_concurrent_requests(server, keys, second_model):
    """Threads chat through the name while it is switched back and forth; no request fails and
    each answer's concrete model (from the request log) is one of the two targets."""
    with server.http(keys["a"]) as http:
        r = http.post("/v1/deployments", json={"name": "flip-bot", "model": CHAT})
        assert r.status_code == 200, r.text
    client = server.client(keys["a"])
    for model in (CHAT, second_model):  # both replicas warm before the race
        client.chat.completions.create(model=model, max_tokens=1, messages=[{"role": "user", "content": "Hi"}])
    ids, errors, stop = [], [], threading.Event()

    def hammer():
        while not stop.is_set():
            try:
                r = client.chat.completions.create(model="flip-bot", max_tokens=2,
                                                   messages=[{"role": "user", "content": "Say hi"}])
                ids.append(r.id)
            except openai.APIError as e:  # noqa: PERF203 - any error fails the test below
                errors.append(repr(e))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    switches = 0
    with server.http(keys["a"]) as http:
        r = http.post("/v1/deployments/flip-bot", json={"model": second_model, "reason": "try the copy"})
        assert r.status_code == 200 and r.json()["version"] == 2, r.text
        for i in range(8):
            # 4 threads have at most 4 requests in flight: the 5th answer after a switch was
            # asked after it, so every target really serves some requests
            mark, deadline = len(ids), time.monotonic() + 120
            while len(ids) < mark + 5 and not errors and time.monotonic() < deadline:
                time.sleep(0.05)
            r = http.post("/v1/deployments/flip-bot/rollback", json={"reason": f"flip {i}"})
            assert r.status_code == 200, r.text
            switches += 1
        final = http.get("/v1/deployments/flip-bot").json()
        changes = http.get("/v1/deployments/flip-bot/changes").json()["data"]
    stop.set()
    for t in threads:
        t.join(60)
    assert not errors, errors[:3]
    assert len(ids) >= 40
    assert final["version"] == 2 + switches and final["model"] == second_model  # an even number of flips
    assert [c["action"] for c in changes] == ["create", "update"] + ["rollback"] * switches
    assert [c["version"] for c in changes] == list(range(1, 3 + switches))
    assert changes[1]["reason"] == "try the copy" and changes[2]["reason"] == "flip 0"
    for before, after in zip(changes[1:], changes[2:]):
        assert after["from_model"] == before["to_model"] and after["to_model"] == before["from_model"]
    assert all(c["actor"].startswith("key-") for c in changes)
    with server.http(keys["a"]) as http:  # reading the logs flushes the writer
        logged = http.get("/v1/logs", params={"deployment": "flip-bot", "limit": 1000}).json()["data"]
    by_id = {row["id"]: row for row in logged}
    assert set(ids) <= set(by_id)
    assert {by_id[i]["model"] for i in ids} == {CHAT, second_model}
    assert all(by_id[i]["status"] == "completed" for i in ids)
