"""/v1/batches with the official client: a small batch completes with one output line per
custom_id and its usage metered; bad lines go to the error file; a batch cancelled midway
keeps what was answered; a gateway killed mid-batch resumes it from the answered lines."""

from __future__ import annotations

import io
import json
import os
import secrets
import signal
import time
from collections import Counter

import openai
import pytest

from conftest import start_server, stop_server
from test_compute_usage import recorded

CHAT = "smollm2-135m-instruct"
EMBED = "all-minilm-l6-v2"


def chat_line(custom_id: str, text: str = "Say hi", max_tokens: int = 4, url: str = "/v1/chat/completions") -> dict:
    return {"custom_id": custom_id, "method": "POST", "url": url,
            "body": {"model": CHAT, "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
                     "temperature": 0}}


def jsonl(lines: list) -> bytes:
    return b"".join((line if isinstance(line, bytes) else json.dumps(line).encode()) + b"\n" for line in lines)


def submit(client, lines: list, endpoint: str = "/v1/chat/completions"):
    source = client.files.create(file=("requests.jsonl", io.BytesIO(jsonl(lines))), purpose="batch")
    return client.batches.create(input_file_id=source.id, endpoint=endpoint, completion_window="24h",
                                 metadata={"run": "test"})


def wait_for(client, batch_id: str, done=lambda b: b.status in ("completed", "failed", "cancelled", "expired"),
             timeout: float = 300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        batch = client.batches.retrieve(batch_id)
        if done(batch):
            return batch
        time.sleep(0.3)
    raise AssertionError(f"batch {batch_id} still {batch.status}: {batch.request_counts}")


def file_lines(client, file_id: str | None) -> list[dict]:
    return [json.loads(line) for line in client.files.content(file_id).read().splitlines()] if file_id else []


def project_id(server, name: str) -> str:
    with server.http() as http:
        return next(p["id"] for p in http.get("/v1/organization/projects", params={"limit": 100}).json()["data"]
                    if p["name"] == name)


def test_small_batch_completes_and_is_metered(server):
    client = server.client(server.new_key("batches-small"))
    start = int(time.time()) - 60
    batch = submit(client, [chat_line(f"req-{i}", f"Count to {i}") for i in range(3)])
    assert batch.object == "batch" and batch.status == "validating" and batch.metadata == {"run": "test"}
    assert batch.expires_at - batch.created_at == 24 * 3600
    done = wait_for(client, batch.id)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (3, 3, 0)
    assert done.completed_at and done.in_progress_at and done.error_file_id is None
    output = file_lines(client, done.output_file_id)
    assert [line["custom_id"] for line in output] == ["req-0", "req-1", "req-2"]
    assert all(line["response"]["status_code"] == 200 and line["error"] is None for line in output)
    assert all(line["response"]["body"]["object"] == "chat.completion" for line in output)
    assert client.files.retrieve(done.output_file_id).purpose == "batch_output"
    told = sum(line["response"]["body"]["usage"]["completion_tokens"] for line in output)
    got = recorded(server, start, project_id(server, "batches-small"))
    assert got[("completions", CHAT, "requests")] == 3 and got[("completions", CHAT, "output")] == told
    assert done.id in [b.id for b in client.batches.list(limit=5)]


def test_embeddings_batch_and_listing_pages(server):
    client = server.client(server.new_key("batches-embed"))
    lines = [{"custom_id": f"e{i}", "method": "POST", "url": "/v1/embeddings",
              "body": {"model": EMBED, "input": f"text {i}"}} for i in range(2)]
    first = submit(client, lines, endpoint="/v1/embeddings")
    done = wait_for(client, first.id)
    assert done.status == "completed", done
    vectors = [line["response"]["body"]["data"][0]["embedding"] for line in file_lines(client, done.output_file_id)]
    assert len(vectors) == 2 and len(vectors[0]) == 384
    second = submit(client, lines, endpoint="/v1/embeddings")
    page = client.batches.list(limit=1)
    assert [b.id for b in page.data] == [second.id] and page.has_more
    assert [b.id for b in client.batches.list(limit=1, after=second.id).data] == [first.id]
    wait_for(client, second.id)


def test_bad_lines_go_to_the_error_file(server):
    client = server.client(server.new_key("batches-bad"))
    lines = [chat_line("good-1"), b"{not json", chat_line("wrong-url", url="/v1/embeddings"),
             {"custom_id": "no-body", "method": "POST", "url": "/v1/chat/completions"},
             {**chat_line("unknown-model"), "body": {"model": "nope", "messages": [{"role": "user", "content": "x"}]}},
             {**chat_line("bad-param"), "body": {**chat_line("x")["body"], "temperature": 9}},
             chat_line("good-1"), chat_line("good-2")]
    done = wait_for(client, submit(client, lines).id)
    assert done.status == "completed", done
    assert (done.request_counts.total, done.request_counts.completed, done.request_counts.failed) == (8, 2, 6)
    assert [line["custom_id"] for line in file_lines(client, done.output_file_id)] == ["good-1", "good-2"]
    errors = {line["custom_id"]: line for line in file_lines(client, done.error_file_id)}
    assert errors[None]["error"]["message"].startswith("line 2 is not valid JSON")
    assert "endpoint" in errors["wrong-url"]["error"]["message"]
    assert "'body'" in errors["no-body"]["error"]["message"]
    assert errors["unknown-model"]["response"]["status_code"] == 404
    assert errors["unknown-model"]["response"]["body"]["error"]["code"] == "model_not_found"
    assert errors["bad-param"]["response"]["status_code"] == 400
    assert errors["bad-param"]["response"]["body"]["error"]["param"] == "temperature"
    assert "unique" in errors["good-1"]["error"]["message"]  # the second line with that custom_id


def test_bad_create_requests(server):
    client = server.client(server.new_key("batches-create"))
    source = client.files.create(file=("r.jsonl", jsonl([chat_line("a")])), purpose="batch")
    other = client.files.create(file=("r.jsonl", jsonl([chat_line("a")])), purpose="fine-tune")
    for args, param in [({"endpoint": "/v1/moderations"}, "endpoint"), ({"completion_window": "1h"}, "completion_window"),
                        ({"input_file_id": other.id}, "input_file_id")]:
        with pytest.raises(openai.BadRequestError) as e:
            client.batches.create(**{"input_file_id": source.id, "endpoint": "/v1/chat/completions",
                                     "completion_window": "24h", **args})
        assert e.value.body["param"] == param
    with pytest.raises(openai.NotFoundError):
        client.batches.create(input_file_id="file-nope", endpoint="/v1/chat/completions", completion_window="24h")
    blank = client.files.create(file=("r.jsonl", b"\n\n"), purpose="batch")
    failed = wait_for(client, client.batches.create(input_file_id=blank.id, endpoint="/v1/chat/completions",
                                                    completion_window="24h").id)
    assert failed.status == "failed" and failed.errors.data[0].code == "empty_file" and failed.failed_at
    batch = client.batches.create(input_file_id=source.id, endpoint="/v1/chat/completions", completion_window="24h")
    intruder = server.client(server.new_key("batches-intruder"))
    with pytest.raises(openai.NotFoundError):
        intruder.batches.retrieve(batch.id)
    with pytest.raises(openai.NotFoundError):
        intruder.batches.cancel(batch.id)
    wait_for(client, batch.id)


def test_cancel_midway_keeps_the_answered_lines(server):
    client = server.client(server.new_key("batches-cancel"))
    batch = submit(client, [chat_line(f"c{i}", f"Write a story number {i}", max_tokens=16) for i in range(48)])
    wait_for(client, batch.id, done=lambda b: b.request_counts and b.request_counts.completed >= 1)
    cancelling = client.batches.cancel(batch.id)
    assert cancelling.status in ("cancelling", "cancelled") and cancelling.cancelling_at
    done = wait_for(client, batch.id, done=lambda b: b.status == "cancelled")
    answered = file_lines(client, done.output_file_id)
    assert 1 <= len(answered) == done.request_counts.completed < 48
    order = [int(line["custom_id"][1:]) for line in answered]  # answered ones, in input order
    assert order == sorted(set(order)) and all(line["response"]["status_code"] == 200 for line in answered)
    with pytest.raises(openai.ConflictError):
        client.batches.cancel(batch.id)


@pytest.mark.slow  # two gateway starts: minutes on a loaded 2-core CI
def test_a_killed_gateway_resumes_the_batch(tmp_path):
    """kill -9 of the gateway (and its Ray) mid-batch; at the next start the batch goes on
    from the answered lines: every line answered exactly once in its answers log."""
    data, admin = tmp_path / "data", "rx-admin-" + secrets.token_hex(8)
    first = start_server(data, admin_key=admin)
    try:
        key = first.new_key("batches-restart")
        client = first.client(key)
        batch = submit(client, [chat_line(f"r{i}", f"Tell me about number {i}", max_tokens=16) for i in range(12)])
        wait_for(client, batch.id, done=lambda b: b.request_counts and b.request_counts.completed >= 3)
        os.killpg(first.process.pid, signal.SIGKILL)
        first.process.wait(30)
    finally:
        stop_server(first)
    log = data / "jobs" / batch.id / "answers.jsonl"
    before = len(log.read_text().splitlines())
    assert 3 <= before < 12
    second = start_server(data, admin_key=admin)
    try:
        client = second.client(key)
        done = wait_for(client, batch.id)
        output = file_lines(client, done.output_file_id)
    finally:
        stop_server(second)
    assert done.status == "completed" and done.request_counts.completed == 12, done
    assert [line["custom_id"] for line in output] == [f"r{i}" for i in range(12)]
    answered = Counter(json.loads(line)["index"] for line in log.read_text().splitlines())
    assert sorted(answered) == list(range(12)) and set(answered.values()) == {1}
