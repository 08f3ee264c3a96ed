"""A crashed engine replica: the request that hit it fails fast (never hangs), Ray restarts
the replica, and the next request succeeds."""

from __future__ import annotations

import os
import signal
import threading
import time

import httpx
import openai
import pytest

from conftest import CHAT

STORY = [{"role": "user", "content": "Write a very long story about the sea."}]


def engine_pid(server, model: str) -> int:
    with server.http() as http:
        engines = http.get("/v1/engines").json()["data"]
    return next(e["pid"] for e in engines if e["model"] == model and e["state"] == "running")


def wait_for_new_pid(server, old: int, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid = engine_pid(server, CHAT)
            if pid != old:
                return pid
        except StopIteration:
            pass
        time.sleep(0.5)
    raise AssertionError("the engine replica was not restarted")


def test_kill_during_stream_gives_error_event_then_next_request_succeeds(own_server):
    client = own_server.client()
    pid = engine_pid(own_server, CHAT)
    stream = client.chat.completions.create(model=CHAT, messages=STORY, max_tokens=1500, stream=True)
    received, killed_at = 0, None
    with pytest.raises(openai.APIError) as e:
        for chunk in stream:
            received += 1
            if received == 3:
                os.kill(pid, signal.SIGKILL)
                killed_at = time.monotonic()
    assert killed_at is not None and time.monotonic() - killed_at < 10
    assert "engine" in str(e.value.message).lower()
    r = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}], max_tokens=3)
    assert r.choices[0].message.content and r.usage.completion_tokens > 0
    assert wait_for_new_pid(own_server, pid) != pid


def first_tokens(server) -> float:
    """How many generations have delivered their first text to the gateway (TTFT count)."""
    text = server.http().get("/metrics", timeout=30).text  # the admin key may read /metrics
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("rixin_time_to_first_token_seconds_count") and CHAT in line)


def test_kill_during_non_streaming_request_gives_503_retryable(own_server):
    pid = engine_pid(own_server, CHAT)
    result = {}

    def call():
        with own_server.http() as http:
            result["response"] = http.post("/v1/chat/completions", json={
                "model": CHAT, "messages": STORY, "max_tokens": 1500, "temperature": 0})

    before = first_tokens(own_server)
    thread = threading.Thread(target=call)
    thread.start()
    # Kill once the gateway has received generated text (1500 tokens take far longer): a
    # replica that dies before that is waited for and the request retried, by design.
    deadline = time.monotonic() + 120
    while first_tokens(own_server) == before and time.monotonic() < deadline:
        time.sleep(0.1)
    os.kill(pid, signal.SIGKILL)
    killed_at = time.monotonic()
    thread.join(30)
    assert not thread.is_alive() and time.monotonic() - killed_at < 10
    response: httpx.Response = result["response"]
    assert response.status_code == 503, response.text
    assert response.headers["x-should-retry"] == "true"
    assert response.json()["error"]["code"] == "engine_unavailable"
    r = own_server.client().chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}],
                                                     max_tokens=3)
    assert r.usage.completion_tokens > 0


def engine_stats(server) -> dict:
    with server.http() as http:
        return next(e for e in http.get("/v1/engines").json()["data"] if e["model"] == CHAT)


def test_client_disconnect_cancels_the_generation(own_server):
    """Closing a stream early stops the engine's generation instead of running to max_tokens."""
    client = own_server.client()
    before = engine_stats(own_server)["cancelled"]
    stream = client.chat.completions.create(model=CHAT, messages=STORY, max_tokens=1800, stream=True)
    for i, _chunk in enumerate(stream):
        if i == 2:
            break
    stream.close()
    deadline = time.monotonic() + 60
    while engine_stats(own_server)["cancelled"] == before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert engine_stats(own_server)["cancelled"] == before + 1
    r = client.chat.completions.create(model=CHAT, messages=[{"role": "user", "content": "hi"}], max_tokens=2)
    assert r.usage.completion_tokens > 0


def test_full_queue_answers_429_with_retry_after(own_server):
    """With room for 2 requests per engine, a third concurrent one is refused, not queued forever."""
    results: list[httpx.Response] = []

    def call():
        with own_server.http() as http:
            results.append(http.post("/v1/chat/completions", json={
                "model": CHAT, "messages": STORY, "max_tokens": 200, "temperature": 0}))

    threads = [threading.Thread(target=call) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    codes = sorted(r.status_code for r in results)
    assert len(codes) == 5 and 200 in codes and 429 in codes, codes
    refused = next(r for r in results if r.status_code == 429)
    assert refused.headers["retry-after"] == "1" and refused.headers["x-should-retry"] == "true"
    assert refused.json()["error"]["type"] == "rate_limit_error"
    with own_server.http() as http:
        assert http.post("/v1/chat/completions", json={"model": CHAT, "messages": STORY, "max_tokens": 2}).status_code == 200
