"""`rixin up` as a user meets it: first start prints an admin key, SIGTERM stops it, a
restart keeps every project and key, and the printed key still works."""

from __future__ import annotations

import re
import signal
import time

import httpx
import openai

from conftest import CHAT, start_server, stop_server, wait_healthy


def printed_admin_key(server, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        lines = server.output().splitlines()
        for i, line in enumerate(lines):
            if "Admin API key" in line and i + 1 < len(lines) and re.fullmatch(r"rx-\S+", lines[i + 1].strip()):
                return lines[i + 1].strip()
        time.sleep(0.3)
    raise AssertionError(f"no admin key printed:\n{server.output()}")


def test_first_start_prints_key_restart_keeps_state(tmp_path):
    data = tmp_path / "data"
    first = start_server(data, wait=False)
    try:
        admin_key = printed_admin_key(first)
        assert "curl http://127.0.0.1:" in first.output()
        wait_healthy(first)
        first.admin_key = admin_key
        assert CHAT in {m.id for m in first.client().models.list()}
        project_key = first.new_key("persist")
        with httpx.Client(base_url=first.url) as http:
            assert http.get("/v1/models").status_code == 401
    finally:
        assert stop_server(first, signal.SIGTERM) == 0, first.output()

    second = start_server(data, wait=False)
    try:
        wait_healthy(second)
        assert second.output().count("Admin API key") == 1  # printed once, on the first start only
        second.admin_key = admin_key
        assert CHAT in {m.id for m in second.client().models.list()}
        me = second.http(project_key).get("/v1/me").json()
        assert me["project"] == "persist" and me["admin"] is False
        r = second.client(project_key).chat.completions.create(
            model=CHAT, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
        assert r.usage.completion_tokens > 0
    finally:
        assert stop_server(second, signal.SIGINT) == 0, second.output()


def test_rixin_admin_key_env_is_accepted(tmp_path):
    server = start_server(tmp_path / "data", admin_key="rx-bootstrap-secret")
    try:
        assert "Admin API key" not in server.output()
        assert server.http().get("/v1/projects").status_code == 200
        try:
            server.client("rx-wrong").models.list()
            raise AssertionError("a wrong key was accepted")
        except openai.AuthenticationError as e:
            assert e.status_code == 401 and e.body["code"] == "invalid_api_key"
    finally:
        stop_server(server)
