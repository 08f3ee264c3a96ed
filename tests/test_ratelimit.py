"""Rate limits, budgets, read-only keys and the audit log, against a live server (issue 12 item 5):
a limit of N requests per minute admits exactly N of 16 concurrent clients, every model answer
carries OpenAI's x-ratelimit-* headers, a spent budget answers 429 insufficient_quota (not to be
retried), and a read-only key is refused on every write route of the OpenAPI document."""

from __future__ import annotations

import re
import secrets
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from conftest import CHAT, EMBED

HEADERS = ("x-ratelimit-limit-requests", "x-ratelimit-remaining-requests", "x-ratelimit-reset-requests",
           "x-ratelimit-limit-tokens", "x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens")
MESSAGES = [{"role": "user", "content": "Say hi."}]


def new_project(server, **key_options) -> tuple[str, str]:
    """A fresh project (its own limits) and a key of it, made over the Admin API."""
    with server.http() as http:
        project = http.post("/v1/organization/projects", json={"name": "rl-" + secrets.token_hex(4)})
        assert project.status_code == 200, project.text
        pid = project.json()["id"]
        key = http.post(f"/v1/organization/projects/{pid}/api_keys", json=key_options)
        assert key.status_code == 200, key.text
        return pid, key.json()["value"]


def set_limit(server, pid: str, model: str, **limits) -> dict:
    with server.http() as http:
        r = http.post(f"/v1/organization/projects/{pid}/rate_limits/rl-{model}", json=limits)
    assert r.status_code == 200, r.text
    return r.json()


def test_requests_per_minute_are_exact_under_16_concurrent_clients(server):
    pid, key = new_project(server)
    assert set_limit(server, pid, EMBED, max_requests_per_1_minute=10)["max_requests_per_1_minute"] == 10
    client = server.client(key)

    def call(i):
        try:
            client.embeddings.create(model=EMBED, input=f"text {i}")
            return "ok", None
        except openai.RateLimitError as e:
            return e.code, e.response.headers

    with ThreadPoolExecutor(16) as pool:
        outcomes = list(pool.map(call, range(16)))
    assert sum(1 for what, _ in outcomes if what == "ok") == 10
    refused = [headers for what, headers in outcomes if what != "ok"]
    assert [what for what, _ in outcomes if what != "ok"] == ["rate_limit_exceeded"] * 6
    for headers in refused:
        assert 1 <= int(headers["retry-after"]) <= 60
        assert headers["x-ratelimit-remaining-requests"] == "0"
    # the limit is per model: another model of the same project still answers
    assert client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=1).choices


def test_every_model_answer_carries_the_ratelimit_headers(server):
    pid, key = new_project(server)
    set_limit(server, pid, CHAT, max_requests_per_1_minute=50, max_tokens_per_1_minute=100_000)
    client = server.client(key)
    answers = [
        client.chat.completions.with_raw_response.create(model=CHAT, messages=MESSAGES, max_tokens=2),
        client.chat.completions.with_raw_response.create(model=CHAT, messages=MESSAGES, max_tokens=2, stream=True),
        client.completions.with_raw_response.create(model=CHAT, prompt="Hello", max_tokens=2),
        client.embeddings.with_raw_response.create(model=EMBED, input="hello"),
    ]
    assert list(answers[1].parse())[-1].choices[0].finish_reason  # read the stream to its end
    for raw in answers:
        assert all(name in raw.headers for name in HEADERS), dict(raw.headers)
        assert re.fullmatch(r"(\d+m)?\d+(\.\d+)?(ms|s)", raw.headers["x-ratelimit-reset-requests"])
    chat = [int(raw.headers["x-ratelimit-remaining-requests"]) for raw in answers[:3]]
    assert chat == [49, 48, 47]  # chat and completions of one model share its limit
    assert answers[0].headers["x-ratelimit-limit-tokens"] == "100000"


def test_tokens_per_minute_limit_refuses_once_spent(server):
    pid, key = new_project(server)
    set_limit(server, pid, CHAT, max_tokens_per_1_minute=5)
    client = server.client(key)
    first = client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=3)
    assert first.usage.total_tokens > 5
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=3)
    assert refused.value.code == "rate_limit_exceeded"
    assert "tokens per minute" in refused.value.message
    assert refused.value.response.headers["x-ratelimit-remaining-tokens"] == "0"


def test_a_spent_monthly_budget_answers_insufficient_quota(server):
    pid, key = new_project(server)
    with server.http() as http:
        price = http.post(f"/v1/organization/prices/{CHAT}", json={"input_per_1m": 1000, "output_per_1m": 1000})
        assert price.status_code == 200, price.text
        budget = http.post(f"/v1/organization/projects/{pid}/budget", json={"monthly_usd": 0.001})
        assert budget.json()["monthly_usd"] == 0.001
    client = server.client(key)
    first = client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=2)
    assert first.usage.total_tokens * 1000 / 1e6 >= 0.001  # this answer spends the budget
    with pytest.raises(openai.RateLimitError) as refused:
        client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=2)
    assert refused.value.code == "insufficient_quota"
    assert refused.value.type == "insufficient_quota"
    assert refused.value.response.headers["x-should-retry"] == "false"
    with server.http() as http:  # raising the budget lets the project work again
        http.post(f"/v1/organization/projects/{pid}/budget", json={"monthly_usd": 100})
    assert client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=1).choices


def test_read_only_key_reads_and_is_refused_on_every_write_route(server):
    _, key = new_project(server, read_only=True)
    client = server.client(key)
    assert client.models.list().data  # reading works
    with server.http(key) as http:
        writes = [(method.upper(), path) for path, ops in http.get("/openapi.json").json()["paths"].items()
                  for method in ops if method.upper() not in ("GET", "HEAD") and path.startswith("/v1")]
        assert len(writes) > 30
        for method, path in writes:
            r = http.request(method, re.sub(r"\{[^}]+\}", "x", path), json={})
            assert r.status_code == 403, (method, path, r.status_code, r.text)
            assert r.json()["error"]["code"] == "insufficient_permissions"
    with pytest.raises(openai.PermissionDeniedError):
        client.chat.completions.create(model=CHAT, messages=MESSAGES, max_tokens=1)


def test_cli_creates_a_read_only_key(server):
    out = server.offline("keys", "create", "--project", "readers", "--read-only").stdout
    assert "(read-only)" in out
    key = out.strip().splitlines()[-1]
    with server.http(key) as http:
        assert http.get("/v1/models").status_code == 200
        assert http.post("/v1/files").status_code == 403


def test_admin_actions_are_in_the_audit_log_and_need_an_admin_key(server):
    pid, key = new_project(server)
    set_limit(server, pid, CHAT, max_requests_per_1_minute=7)
    with server.http() as http:
        logs = http.get("/v1/organization/audit_logs", params={"limit": 100}).json()
    mine = [e for e in logs["data"] if (e["project"] or {}).get("id") == pid]
    assert [e["type"] for e in mine] == ["rate_limit.updated", "api_key.created"]
    assert all(e["object"] == "organization.audit_log" and e["actor"]["type"] == "api_key" for e in mine)
    with server.http(key) as http:  # a project key: no admin API
        for path in ("/v1/organization/audit_logs", "/v1/organization/projects",
                     "/v1/organization/usage/completions?start_time=0", "/v1/organization/costs?start_time=0"):
            assert http.get(path).status_code == 403, path


def test_a_deployment_switch_by_a_project_key_is_audited(server):
    pid, key = new_project(server)
    with server.http(key) as http:
        assert http.post("/v1/deployments", json={"name": "audited-bot", "model": CHAT}).status_code == 200
        assert http.post("/v1/deployments/audited-bot", json={"model": CHAT}).status_code == 200
        assert http.delete("/v1/deployments/audited-bot").status_code == 200
    with server.http() as http:
        logs = http.get("/v1/organization/audit_logs", params={"limit": 100}).json()["data"]
    mine = [e for e in logs if (e["project"] or {}).get("id") == pid and e["type"].startswith("deployment.")]
    assert [e["type"] for e in mine] == ["deployment.deleted", "deployment.updated", "deployment.created"]
    assert {e["details"]["path"] for e in mine} == {"/v1/deployments", "/v1/deployments/audited-bot"}
