"""A project's `storage_bytes` quota on uploads (docs/usage.md "Storage quota"): over it → 413
`storage_quota_exceeded` and no bytes kept on disk, also when four uploads race for the last
bytes (exactly as many as fit are admitted)."""

from __future__ import annotations

import io
import os
from concurrent.futures import ThreadPoolExecutor

import openai
import pytest

from test_files import artifacts

pytestmark = pytest.mark.timeout(300)


def set_storage(server, project: str, limit: int | None) -> None:
    with server.http() as http:
        r = http.put(f"/v1/organization/projects/{project}/quota", json={"storage_bytes": limit})
        assert r.status_code == 200, r.text


def upload(client, data: bytes, name: str = "f.jsonl"):
    return client.files.create(file=(name, io.BytesIO(data)), purpose="user_data")


def test_upload_over_the_storage_quota_is_413_and_keeps_nothing(server):
    client = server.client(server.new_key("store-one"))
    set_storage(server, "store-one", 1000)
    first = upload(client, os.urandom(600))
    before = artifacts(server)
    with pytest.raises(openai.APIStatusError) as refused:
        upload(client, os.urandom(500))
    error = refused.value.body
    assert refused.value.status_code == 413 and error["code"] == "storage_quota_exceeded", error
    assert "600 of its 1000 bytes" in error["message"] and "100 bytes over" in error["message"], error
    assert refused.value.response.headers["x-should-retry"] == "false"
    assert artifacts(server) == before  # neither the bytes nor a temporary file remain
    assert [f.id for f in client.files.list()] == [first.id]
    # A file that streams past the quota is cut off as it streams: still nothing kept.
    with pytest.raises(openai.APIStatusError) as big:
        upload(client, os.urandom(4 * 2**20))
    assert big.value.status_code == 413 and big.value.body["code"] == "storage_quota_exceeded"
    assert artifacts(server) == before
    # What fits still fits, to the byte; deleting a file frees its bytes; no quota, no limit.
    assert upload(client, os.urandom(400)).bytes == 400
    with pytest.raises(openai.APIStatusError):
        upload(client, b"x")
    client.files.delete(first.id)
    assert upload(client, os.urandom(600)).bytes == 600
    set_storage(server, "store-one", None)
    assert upload(client, os.urandom(5000)).bytes == 5000


def test_four_concurrent_uploads_racing_for_the_last_bytes_admit_only_what_fits(server):
    client = server.client(server.new_key("store-race"))
    set_storage(server, "store-race", 1000)
    upload(client, os.urandom(300))
    before = artifacts(server)
    payloads = [os.urandom(300) for _ in range(4)]  # 700 bytes left: two of four fit

    def attempt(data: bytes):
        try:
            return upload(client, data)
        except openai.APIStatusError as e:
            return e

    with ThreadPoolExecutor(4) as pool:
        results = list(pool.map(attempt, payloads))
    stored = [r for r in results if not isinstance(r, Exception)]
    refused = [r for r in results if isinstance(r, Exception)]
    assert len(stored) == 2, results
    assert all(e.status_code == 413 and e.body["code"] == "storage_quota_exceeded" for e in refused), refused
    assert sum(f.bytes for f in client.files.list()) == 900
    kept = {r.model_extra["sha256"] for r in stored}
    assert artifacts(server) - before == kept  # the refused uploads left no bytes behind


def test_an_upload_announcing_more_than_fits_is_refused_at_create_and_complete(server):
    """/v1/uploads: refused when created (its size is announced) and, if the quota shrank
    meanwhile, when completed; the parts are kept only until cancel/expiry, never as a file."""
    client = server.client(server.new_key("store-uploads"))
    set_storage(server, "store-uploads", 1000)
    with pytest.raises(openai.APIStatusError) as refused:
        client.uploads.create(filename="big.jsonl", purpose="user_data", bytes=1001, mime_type="text/jsonl")
    assert refused.value.status_code == 413 and refused.value.body["code"] == "storage_quota_exceeded"
    up = client.uploads.create(filename="ok.jsonl", purpose="user_data", bytes=800, mime_type="text/jsonl")
    part = client.uploads.parts.create(up.id, data=os.urandom(800))
    set_storage(server, "store-uploads", 500)
    with pytest.raises(openai.APIStatusError) as late:
        client.uploads.complete(up.id, part_ids=[part.id])
    assert late.value.status_code == 413 and late.value.body["code"] == "storage_quota_exceeded"
    assert client.files.list().data == []
