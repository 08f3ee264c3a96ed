"""Storage faults caused for real against a real `rixin up` (issue 18, finding 8 and the
kill -9 part of finding 9): a full tmpfs data dir, a database made immutable with chattr,
and kill -9 of the gateway mid-upload and mid-stream. Nothing acknowledged is lost, nothing
half-written is listed, and /health tells the truth. Needs root (mount, chattr); each test
undoes its mount and flags in `finally`, even when it fails."""

from __future__ import annotations

import hashlib
import io
import os
import secrets
import signal
import subprocess
import threading
import time
from pathlib import Path

import httpx
import openai
import pytest

from conftest import CHAT, start_server, stop_server

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="mounts a tmpfs and sets chattr +i: needs root")

LINE = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'
ASK = [{"role": "user", "content": "Say hello."}]


def wait_for(predicate, timeout: float = 60, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def health(server) -> tuple[int, dict]:
    r = httpx.get(server.url + "/health", timeout=30)
    return r.status_code, r.json()


def leftovers(data_dir: Path) -> list[str]:
    tmp = data_dir / "artifacts" / "tmp"
    return sorted(p.name for p in tmp.iterdir()) if tmp.is_dir() else []


def blobs(data_dir: Path) -> set[str]:
    return {p.name for p in (data_dir / "artifacts" / "sha256").rglob("*") if p.is_file()}


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem says ENOSPC; returns it."""
    filler = directory / "filler"
    # Unbuffered: the write that hits ENOSPC raises here, and closing has nothing left to flush.
    with filler.open("wb", buffering=0) as f:
        try:
            while True:
                f.write(b"\0" * 65536)
        except OSError as e:
            assert e.errno == 28, e  # ENOSPC, nothing else
    return filler


def chattr(flag: str, paths: list[Path]) -> None:
    subprocess.run(["chattr", flag, *[str(p) for p in paths if p.exists()]], check=True)


def storage_error(call) -> openai.APIStatusError:
    with pytest.raises(openai.APIStatusError) as info:
        call()
    return info.value


def server_env() -> tuple[dict, str]:
    return {"RIXIN_ENGINE_QUEUE_SIZE": "8"}, "rx-admin-" + secrets.token_hex(8)


@pytest.mark.timeout(500)
def test_full_disk_gives_507_keeps_nothing_half_written_and_health_says_so(tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64m", "tmpfs", str(data)], check=True)
    server = None
    try:
        (data / "server.log").symlink_to(tmp_path / "server.log")  # the log is not what we fill
        env, admin = server_env()
        server = start_server(data, env, admin_key=admin)
        client = server.client(server.new_key("full-disk"))
        kept = client.files.create(file=("kept.jsonl", io.BytesIO(LINE * 50)), purpose="fine-tune")
        with server.http(client.api_key) as http:
            assert http.post("/v1/datasets", json={"name": "before", "files": [kept.id]}).status_code == 200
            blobs_before = blobs(data)

            filler = fill(data)
            err = storage_error(lambda: client.files.create(
                file=("big.jsonl", io.BytesIO(LINE * 40000)), purpose="fine-tune"))
            assert err.status_code == 507 and err.body["code"] == "insufficient_storage", err.body
            assert err.response.headers["x-should-retry"] == "false"
            r = http.post("/v1/datasets", json={"name": "during", "files": [kept.id]})
            assert r.status_code == 507 and r.json()["error"]["code"] == "insufficient_storage", r.text

            # nothing half-written: no partial upload, no new blob, no listed file or dataset
            assert leftovers(data) == []
            assert blobs(data) == blobs_before
            assert [f.id for f in client.files.list()] == [kept.id]
            assert [d["name"] for d in http.get("/v1/datasets").json()["data"]] == ["before"]
            # reads still work, and health tells the truth
            assert client.files.content(kept.id).read() == LINE * 50
            status, body = wait_for(lambda: (s := health(server))[0] == 503 and s, what="/health 503")
            assert body["code"] == "insufficient_storage", body
            # a stored chat is stored or refused, never answered and lost
            try:
                made = client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=4, store=True)
            except openai.APIStatusError as e:
                assert e.status_code in (503, 507), e.body
            else:
                assert client.chat.completions.retrieve(made.id).id == made.id

            filler.unlink()
            wait_for(lambda: health(server)[0] == 200, what="/health back to 200")
            again = client.files.create(file=("after.jsonl", io.BytesIO(LINE * 10)), purpose="fine-tune")
            assert client.files.content(again.id).read() == LINE * 10
    finally:
        if server is not None:
            stop_server(server)
        subprocess.run(["umount", "-l", str(data)], check=False)


@pytest.mark.timeout(500)
def test_read_only_database_gives_503_and_health_recovers_by_itself(tmp_path):
    data = tmp_path / "data"
    env, admin = server_env()
    server = start_server(data, env, admin_key=admin)
    # Not the -shm file: SQLite maps it, and a write into a mapping of an immutable file is
    # SIGBUS for every process that has the database open (kernel behaviour, not ours).
    frozen = [data / "rixin.db", data / "rixin.db-wal", data]
    try:
        client = server.client(server.new_key("read-only"))
        kept = client.files.create(file=("kept.jsonl", io.BytesIO(LINE * 5)), purpose="fine-tune")
        blobs_before = blobs(data)
        chattr("+i", frozen)

        err = storage_error(lambda: client.files.create(
            file=("refused.jsonl", io.BytesIO(LINE * 7)), purpose="fine-tune"))
        assert err.status_code == 503 and err.body["code"] == "store_unavailable", err.body
        assert err.response.headers["x-should-retry"] == "true"
        assert leftovers(data) == [] and blobs(data) == blobs_before  # the bytes went with the row
        err = storage_error(lambda: client.chat.completions.create(
            model=CHAT, messages=ASK, max_tokens=4, store=True))
        assert err.status_code == 503 and err.body["code"] == "store_unavailable", err.body
        with pytest.raises(openai.APIError):  # a stored stream ends with an error event, not [DONE]
            for _ in client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=4, store=True,
                                                     stream=True):
                pass
        # reads and unstored inference still work; health says the store is not ready
        assert [f.id for f in client.files.list()] == [kept.id]
        answered = client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=4)
        assert answered.choices  # its usage row waits in the on-disk spool (compute/metering.py)
        status, body = wait_for(lambda: (s := health(server))[0] == 503 and s, what="/health 503")
        assert body["code"] == "store_unavailable", body

        chattr("-i", frozen)
        wait_for(lambda: health(server)[0] == 200, what="/health back to 200")
        made = client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=4, store=True)
        assert client.chat.completions.retrieve(made.id).id == made.id
        # both answers are metered, the one given while the database refused writes too
        wait_for(lambda: metered(server, admin) == (2, answered.usage.prompt_tokens + made.usage.prompt_tokens,
                                                    answered.usage.completion_tokens + made.usage.completion_tokens),
                 what="the spooled usage row written")
        assert len(client.files.list().data) == 1
        client.files.create(file=("after.jsonl", io.BytesIO(LINE * 7)), purpose="fine-tune")
    finally:
        subprocess.run(["chattr", "-i", *[str(p) for p in frozen if p.exists()]], check=False)
        stop_server(server)


def metered(server, admin: str) -> tuple[int, int, int]:
    """(requests, input tokens, output tokens) the usage API reports for the last hour."""
    r = httpx.get(server.v1 + "/organization/usage/completions", params={"start_time": int(time.time()) - 3600,
                  "bucket_width": "1h"}, headers={"Authorization": f"Bearer {admin}"}, timeout=30)
    assert r.status_code == 200, r.text
    results = [res for bucket in r.json()["data"] for res in bucket["results"]]
    return (sum(r["num_model_requests"] for r in results), sum(r["input_tokens"] for r in results),
            sum(r["output_tokens"] for r in results))


def _slow_upload(server, key: str, sent: list[int], release: threading.Event) -> None:
    """A large streamed upload that stops sending after 48 MiB until `release` (never, here)."""
    boundary = "storage-kill"

    def body():
        yield (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nraw\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.bin\"\r\n"
               "\r\n").encode()
        for _ in range(48):
            sent[0] += 2**20
            yield b"h" * 2**20
        release.wait(120)

    try:
        httpx.post(server.v1 + "/files", content=body(), timeout=180,
                   headers={"Authorization": f"Bearer {key}",
                            "Content-Type": f"multipart/form-data; boundary={boundary}"})
    except httpx.HTTPError:
        pass  # the gateway is killed under it


def _stream(client, seen: list[str]) -> None:
    try:
        for chunk in client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=400, store=True,
                                                     stream=True):
            seen.append(chunk.id)
    except (openai.APIError, httpx.HTTPError):
        pass


@pytest.mark.timeout(600)
def test_kill_9_mid_upload_and_mid_stream_loses_nothing_acknowledged(tmp_path):
    data = tmp_path / "data"
    env, admin = server_env()
    server = start_server(data, env, admin_key=admin)
    release = threading.Event()
    try:
        key = server.new_key("kill-9")
        client = server.client(key)
        uploads = {}
        for i, size in enumerate((1000, 20000, 60000)):
            payload = LINE * size
            f = client.files.create(file=(f"acked-{i}.jsonl", io.BytesIO(payload)), purpose="fine-tune")
            uploads[f.id] = hashlib.sha256(payload).hexdigest()
        stored = [client.chat.completions.create(model=CHAT, messages=ASK, max_tokens=8, store=True).id
                  for _ in range(3)]
        streamed = [c.id for c in client.chat.completions.create(
            model=CHAT, messages=ASK, max_tokens=8, store=True, stream=True)]
        stored.append(streamed[-1])  # [DONE] came: acknowledged

        sent, seen = [0], []
        threads = [threading.Thread(target=_slow_upload, args=(server, key, sent, release), daemon=True),
                   threading.Thread(target=_stream, args=(client, seen), daemon=True)]
        for t in threads:
            t.start()
        # mid-upload: a partial file of tens of MB in the tmp dir; mid-stream: tokens flowing
        tmp = data / "artifacts" / "tmp"
        wait_for(lambda: any(p.stat().st_size > 16 * 2**20 for p in tmp.iterdir()), what="a partial upload")
        wait_for(lambda: seen, what="a stream in progress")
        os.kill(server.process.pid, signal.SIGKILL)
        server.process.wait(30)
        os.killpg(server.process.pid, signal.SIGKILL)  # its Ray, orphaned by the kill
        release.set()
        assert leftovers(data), "the kill should have left a partial upload behind"

        restarted = start_server(data, env, admin_key=admin)
        server = restarted
        assert leftovers(data) == []  # swept at start-up: no live upload owns them
        client = server.client(key)
        listed = {f.id: f for f in client.files.list()}
        assert set(listed) == set(uploads)  # every acknowledged upload, no half file
        for file_id, digest in uploads.items():
            assert hashlib.sha256(client.files.content(file_id).read()).hexdigest() == digest
            assert listed[file_id].model_extra["sha256"] == digest
        for cid in stored:
            assert client.chat.completions.retrieve(cid).id == cid
    finally:
        release.set()
        stop_server(server)
        try:
            os.killpg(server.process.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
