"""Request logging: policies asserted on the database, store=true, OpenAI's stored-completions
routes through the official client, search, PII redaction, feedback validation, isolation."""

from __future__ import annotations

import time

import openai
import pytest

from conftest import CHAT
from test_deployments import db_rows

pytestmark = pytest.mark.timeout(600)
ASK = [{"role": "user", "content": "Name a colour."}]


@pytest.fixture(scope="module")
def env(server):
    """Project a with deployments under each policy, and an unrelated project b."""
    a, b = server.new_key(f"logs-a-{server.backend}"), server.new_key(f"logs-b-{server.backend}")
    with server.http(a) as http:
        for name, policy, redact in (("full-bot", "full", False), ("meta-bot", "metadata-only", False),
                                     ("off-bot", "off", False), ("pii-bot", "full", True)):
            r = http.post("/v1/deployments", json={"name": name, "model": CHAT, "logging": policy,
                                                   "redact_pii": redact})
            assert r.status_code == 200, r.text
        deps = {d["name"]: d["id"] for d in http.get("/v1/deployments").json()["data"]}
    return {"a": a, "b": b, "client_a": server.client(a), "client_b": server.client(b), "deps": deps}


def chat(client, model: str, **kw):
    return client.chat.completions.create(model=model, messages=kw.pop("messages", ASK), max_tokens=4,
                                          temperature=0, **kw)


def flush(server, key: str) -> None:
    """Any read of the logs waits for the background writer to store what it was given."""
    with server.http(key) as http:
        assert http.get("/v1/logs", params={"limit": 1}).status_code == 200


def test_policy_off_stores_nothing(server, env):
    for _ in range(3):
        chat(env["client_a"], "off-bot", store=True, metadata={"k": "v"})
    flush(server, env["a"])
    assert db_rows(server, "SELECT count(*) FROM request_logs WHERE deployment_id = :d",
                   d=env["deps"]["off-bot"]) == [(0,)]


def test_policy_metadata_only_stores_no_text(server, env):
    r = chat(env["client_a"], "meta-bot", metadata={"ticket": "T-1"}, user="u-7")
    flush(server, env["a"])
    rows = db_rows(server, "SELECT request, response, text, meta, \"user\", model_id, policy, status, "
                   "prompt_tokens, completion_tokens, latency_ms FROM request_logs WHERE id = :id", id=r.id)
    assert len(rows) == 1
    request, response, text_, meta, user, model, policy, status, pt, ct, latency = rows[0]
    assert request is None and response is None and text_ is None
    assert "T-1" in str(meta) and user == "u-7" and model == CHAT and policy == "metadata-only"
    assert status == "completed" and pt > 0 and ct > 0 and latency > 0


def test_policy_full_stores_request_response_and_streams(server, env):
    r = chat(env["client_a"], "full-bot", metadata={"ticket": "T-2"}, user="u-8")
    stream = env["client_a"].chat.completions.create(model="full-bot", messages=ASK, max_tokens=4, stream=True)
    streamed_id, streamed_text = None, ""
    for chunk in stream:
        streamed_id = chunk.id
        streamed_text += "".join(c.delta.content or "" for c in chunk.choices)
    with server.http(env["a"]) as http:
        logs = {row["id"]: row for row in http.get("/v1/logs", params={"deployment": "full-bot"}).json()["data"]}
    one, two = logs[r.id], logs[streamed_id]
    assert one["request"]["messages"] == ASK and one["metadata"] == {"ticket": "T-2"} and one["user"] == "u-8"
    assert one["response"]["choices"][0]["message"]["content"] == r.choices[0].message.content
    assert one["model"] == CHAT and one["usage"]["completion_tokens"] == r.usage.completion_tokens
    assert two["request"]["stream"] is True and two["status"] == "completed"
    assert two["response"]["choices"][0]["message"]["content"] == streamed_text


def test_cancelled_stream_is_logged_as_cancelled(server, env):
    stream = env["client_a"].chat.completions.create(model="full-bot", max_tokens=400, stream=True,
                                                     messages=[{"role": "user", "content": "Write a long story."}])
    first = next(iter(stream))
    stream.close()
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        flush(server, env["a"])
        rows = db_rows(server, "SELECT status, completion_tokens FROM request_logs WHERE id = :id", id=first.id)
        if rows:
            break
        time.sleep(0.5)
    assert rows and rows[0][0] == "cancelled"


def test_store_true_logs_any_model_and_default_does_not(server, env):
    stored = chat(env["client_a"], CHAT, store=True, metadata={"topic": "colours"})
    unstored = chat(env["client_a"], CHAT)
    flush(server, env["a"])
    assert db_rows(server, "SELECT deployment_id, policy FROM request_logs WHERE id = :id", id=stored.id) == [
        (None, "full")]
    assert db_rows(server, "SELECT count(*) FROM request_logs WHERE id = :id", id=unstored.id) == [(0,)]


def test_openai_stored_completions_routes(env):
    client = env["client_a"]
    made = chat(client, CHAT, store=True, metadata={"suite": "stored", "n": "1"})
    chat(client, CHAT, store=True, metadata={"suite": "stored", "n": "2"})
    listed = client.chat.completions.list(model=CHAT, metadata={"suite": "stored"}, limit=10)
    assert [c.metadata["n"] for c in listed.data] == ["1", "2"]  # order asc by default
    first_page = client.chat.completions.list(metadata={"suite": "stored"}, limit=1)
    assert first_page.has_more and first_page.data[0].id == made.id
    rest = client.chat.completions.list(metadata={"suite": "stored"}, limit=10, after=made.id)
    assert [c.metadata["n"] for c in rest.data] == ["2"]
    got = client.chat.completions.retrieve(made.id)
    assert got.id == made.id and got.choices[0].message.content == made.choices[0].message.content
    updated = client.chat.completions.update(made.id, metadata={"suite": "stored", "n": "1", "checked": "yes"})
    assert updated.metadata["checked"] == "yes"
    assert client.chat.completions.retrieve(made.id).metadata["checked"] == "yes"
    messages = client.chat.completions.messages.list(made.id)
    assert [(m.role, m.content) for m in messages.data] == [("user", ASK[0]["content"])]
    deleted = client.chat.completions.delete(made.id)
    assert deleted.deleted and deleted.id == made.id
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.retrieve(made.id)


def test_search_filters(server, env):
    # A deployment of this test's own: other tests log through the shared ones in the same second.
    with server.http(env["a"]) as http:
        r = http.post("/v1/deployments", json={"name": "search-bot", "model": CHAT, "logging": "full"})
        assert r.status_code == 200, r.text
    start = int(time.time()) - 1
    chat(env["client_a"], "search-bot", messages=[{"role": "user", "content": "Tell me about zebrafish."}],
         metadata={"team": "bio"})
    chat(env["client_a"], "search-bot", messages=[{"role": "user", "content": "Tell me about granite."}],
         metadata={"team": "geo"})
    with server.http(env["a"]) as http:
        def ids(**params):
            r = http.get("/v1/logs", params=params)
            assert r.status_code == 200, r.text
            return [row["metadata"].get("team") for row in r.json()["data"]]

        assert ids(q="zebrafish") == ["bio"]
        assert ids(**{"metadata[team]": "geo"}) == ["geo"]
        assert ids(metadata="team:bio", deployment="search-bot") == ["bio"]
        assert ids(since=start, deployment="search-bot", order="asc") == ["bio", "geo"]
        assert ids(until=start, q="zebrafish") == []
        assert ids(deployment="meta-bot", q="colour") == []  # no text kept to search
        mine = {"since": start, "deployment": "search-bot"}
        page = http.get("/v1/logs", params={**mine, "limit": 1}).json()
        assert page["has_more"] and len(page["data"]) == 1
        after = http.get("/v1/logs", params={**mine, "after": page["last_id"]}).json()["data"]
        assert len(after) == 1 and after[0]["id"] != page["last_id"]
        for bad in ({"limit": 0}, {"order": "up"}, {"since": "yesterday"}, {"metadata": "nocolon"}):
            r = http.get("/v1/logs", params=bad)
            assert r.status_code == 400, (bad, r.text)
        assert http.get("/v1/logs", params={"deployment": "ghost"}).status_code == 404


def test_pii_is_redacted_at_write_time(server, env):
    r = chat(env["client_a"], "pii-bot", messages=[
        {"role": "user", "content": "My email is alice.smith@example.com, reply to it."}])
    flush(server, env["a"])
    (request, text_), = db_rows(server, "SELECT request, text FROM request_logs WHERE id = :id", id=r.id)
    assert "alice.smith@example.com" not in str(request) + text_
    assert "<EMAIL>" in str(request) and "<EMAIL>" in text_


def test_feedback_validation(server, env):
    r = chat(env["client_a"], "full-bot")
    with server.http(env["a"]) as http:
        ok = http.post("/v1/feedback", json={"completion_id": r.id, "thumb": "up", "score": 5,
                                             "comment": "good", "correction": "Blue."})
        assert ok.status_code == 200, ok.text
        assert ok.json()["completion_id"] == r.id and ok.json()["score"] == 5
        for body, param in (({"completion_id": r.id}, "thumb"), ({"completion_id": r.id, "comment": "  "}, "thumb"),
                            ({"completion_id": r.id, "thumb": "sideways"}, "thumb"),
                            ({"completion_id": r.id, "score": 6}, "score"),
                            ({"completion_id": r.id, "score": "5"}, "score"),
                            ({"thumb": "up"}, "completion_id"),
                            ({"completion_id": r.id, "thumb": "up", "extra": 1}, "extra")):
            bad = http.post("/v1/feedback", json=body)
            assert bad.status_code == 400 and bad.json()["error"]["param"] == param, (body, bad.text)
        missing = http.post("/v1/feedback", json={"completion_id": "chatcmpl-nope", "thumb": "up"})
        assert missing.status_code == 404
        listed = http.get("/v1/feedback", params={"completion_id": r.id}).json()["data"]
        assert [f["comment"] for f in listed] == ["good"]
        assert http.get("/v1/feedback", params={"deployment": "full-bot"}).json()["data"]


def test_isolation(server, env):
    """Project b cannot list, search, retrieve or give feedback on project a's logs."""
    mine = chat(env["client_a"], "full-bot", store=True, metadata={"secret": "a"})
    flush(server, env["a"])
    client_b = env["client_b"]
    assert client_b.chat.completions.list(limit=100).data == []
    with pytest.raises(openai.NotFoundError):
        client_b.chat.completions.retrieve(mine.id)
    with pytest.raises(openai.NotFoundError):
        client_b.chat.completions.update(mine.id, metadata={"x": "y"})
    with pytest.raises(openai.NotFoundError):
        client_b.chat.completions.delete(mine.id)
    with server.http(env["b"]) as http:
        assert http.get("/v1/logs", params={"limit": 1000}).json()["data"] == []
        assert http.get("/v1/logs", params={"deployment": "full-bot"}).status_code == 404
        r = http.post("/v1/feedback", json={"completion_id": mine.id, "thumb": "down"})
        assert r.status_code == 404
        assert http.get("/v1/feedback").json()["data"] == []
    assert env["client_a"].chat.completions.retrieve(mine.id).id == mine.id  # still there for a
