"""/v1/files with the official client: upload, list, retrieve, content, delete; limits,
checksums, isolation, and no partial files from failed uploads."""

from __future__ import annotations

import hashlib
import io
import socket
import time

import httpx
import openai
import psutil
import pytest

CHAT_LINE = b'{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}\n'


def artifacts(server) -> set[str]:
    root = server.data_dir / "artifacts"
    return {p.name for p in (root / "sha256").rglob("*") if p.is_file()} | {
        "tmp/" + p.name for p in (root / "tmp").glob("*")}


def test_upload_list_retrieve_content_delete(server):
    client = server.client(server.new_key("files-a"))
    data = CHAT_LINE * 20
    created = client.files.create(file=("train.jsonl", io.BytesIO(data)), purpose="fine-tune")
    assert created.id.startswith("file-") and created.bytes == len(data)
    assert created.filename == "train.jsonl" and created.purpose == "fine-tune"
    assert created.model_extra["sha256"] == hashlib.sha256(data).hexdigest()
    assert client.files.retrieve(created.id).id == created.id
    assert client.files.content(created.id).read() == data
    assert created.id in [f.id for f in client.files.list()]
    assert [f.id for f in client.files.list(purpose="evals")] == []
    deleted = client.files.delete(created.id)
    assert deleted.deleted and deleted.id == created.id
    with pytest.raises(openai.NotFoundError):
        client.files.retrieve(created.id)


@pytest.mark.parametrize("purpose", ["fine-tune", "batch", "evals", "user_data", "raw"])
def test_every_purpose_is_accepted(server, purpose):
    client = server.client(server.new_key("files-purposes"))
    assert client.files.create(file=("x.txt", b"some text"), purpose=purpose).purpose == purpose


def test_pagination_newest_first(server):
    client = server.client(server.new_key(f"files-pages-{server.backend}"))
    ids = [client.files.create(file=(f"{i}.txt", f"file {i}".encode()), purpose="raw").id for i in range(5)]
    page = client.files.list(limit=2)
    assert [f.id for f in page.data] == ids[::-1][:2] and page.has_more
    rest = client.files.list(limit=10, after=page.data[-1].id)
    assert [f.id for f in rest.data] == ids[::-1][2:] and not rest.has_more
    oldest = client.files.list(limit=2, order="asc")
    assert [f.id for f in oldest.data] == ids[:2]


def test_other_projects_files_are_404(server):
    a = server.client(server.new_key("files-owner"))
    b = server.client(server.new_key("files-other"))
    f = a.files.create(file=("secret.txt", b"private"), purpose="raw")
    for call in (b.files.retrieve, b.files.content, b.files.delete):
        with pytest.raises(openai.NotFoundError):
            call(f.id)
    assert f.id not in [x.id for x in b.files.list()]
    assert a.files.retrieve(f.id).id == f.id


def test_same_bytes_twice_share_one_artifact_until_both_are_deleted(server):
    client = server.client(server.new_key("files-dedup"))
    data = b"identical bytes " + server.backend.encode()
    one = client.files.create(file=("a.txt", data), purpose="raw")
    two = client.files.create(file=("b.txt", data), purpose="raw")
    digest = hashlib.sha256(data).hexdigest()
    assert digest in artifacts(server)
    client.files.delete(one.id)
    assert client.files.content(two.id).read() == data
    client.files.delete(two.id)
    assert digest not in artifacts(server)


@pytest.mark.parametrize("fields, files, param", [
    ({"purpose": "nonsense"}, {"file": ("a.txt", b"x")}, "purpose"),
    ({}, {"file": ("a.txt", b"x")}, "purpose"),
    ({"purpose": "raw"}, None, "file"),
])
def test_bad_uploads_are_400(server, fields, files, param):
    with server.http() as http:
        r = http.post("/v1/files", data=fields, files=files or {"other": ("a.txt", b"x")})
    assert r.status_code == 400, r.text
    assert r.json()["error"]["param"] == param


def test_not_multipart_is_400(server):
    with server.http() as http:
        r = http.post("/v1/files", json={"purpose": "raw"})
    assert r.status_code == 400 and r.json()["error"]["param"] == "file"


def server_rss(server) -> int:
    proc = psutil.Process(server.process.pid)
    return proc.memory_info().rss


def test_600_mb_upload_is_refused_with_413_in_bounded_memory(server):
    before_files, rest = artifacts(server), server_rss(server)
    size, chunk = 600 * 2**20, b"x" * 2**20
    peak = rest

    def body():
        nonlocal peak
        for i in range(size // len(chunk)):
            if i % 64 == 0:
                peak = max(peak, server_rss(server))
            yield chunk

    boundary = "rixinboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nraw\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.bin\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode()

    def chunked():
        yield head
        yield from body()
        yield f"\r\n--{boundary}--\r\n".encode()

    headers = {"Authorization": f"Bearer {server.admin_key}",
               "Content-Type": f"multipart/form-data; boundary={boundary}"}
    try:
        r = httpx.post(server.v1 + "/files", content=chunked(), headers=headers, timeout=300)
        assert r.status_code == 413 and r.json()["error"]["code"] == "payload_too_large"
    except (httpx.WriteError, httpx.RemoteProtocolError, httpx.ReadError):
        pass  # the server may close the connection while we are still sending; checked below
    peak = max(peak, server_rss(server))
    assert peak - rest < 200 * 2**20, f"server grew by {(peak - rest) / 2**20:.0f} MiB"
    # With the length announced, the refusal comes before the body is read.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=30) as sock:
        sock.sendall((f"POST /v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.admin_key}\r\n"
                      f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
                      f"Content-Length: {size}\r\n\r\n").encode() + head)
        status_line = sock.recv(4096).split(b"\r\n", 1)[0]
    assert status_line.startswith(b"HTTP/1.1 413"), status_line
    assert artifacts(server) == before_files  # nothing partial left behind
    assert "big.bin" not in [f.filename for f in server.client().files.list()]


def test_killed_upload_leaves_no_partial_file(server):
    before = artifacts(server)
    host, port = server.url.removeprefix("http://").split(":")
    boundary = "killme"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"purpose\"\r\n\r\nraw\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"half.bin\"\r\n\r\n")
    request = (f"POST /v1/files HTTP/1.1\r\nHost: {host}\r\nAuthorization: Bearer {server.admin_key}\r\n"
               f"Content-Type: multipart/form-data; boundary={boundary}\r\nContent-Length: {50 * 2**20}\r\n\r\n")
    with socket.create_connection((host, int(port))) as sock:
        sock.sendall(request.encode() + head.encode())
        for _ in range(8):
            sock.sendall(b"y" * 2**20)
        time.sleep(0.5)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
    deadline = time.monotonic() + 20
    while artifacts(server) != before and time.monotonic() < deadline:
        time.sleep(0.2)
    assert artifacts(server) == before
    assert "half.bin" not in [f.filename for f in server.client().files.list()]
